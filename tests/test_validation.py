import math

import pytest

from zimage import presets
from zimage.validation import (
    InputError,
    check_integer,
    check_number,
    check_prompt,
    choose_seed,
    parse_resolution,
)


def test_every_preset_is_a_valid_resolution() -> None:
    for category, resolutions in presets.RESOLUTION_PRESETS.items():
        assert len(resolutions) == 11
        assert len(set(resolutions)) == 11
        for resolution in resolutions:
            width, height = parse_resolution(resolution)
            assert max(width, height) >= int(category)


def test_presets_are_labelled_with_their_aspect_ratio_as_the_official_space_does() -> None:
    assert presets.resolution_label("1280x720") == "1280x720 ( 16:9 )"
    assert presets.resolution_label("576x1344") == "576x1344 ( 9:21 )"
    assert presets.resolution_label("2016x864") == "2016x864 ( 21:9 )"
    assert presets.resolution_label("256x256") == "256x256"  # not a preset: as typed
    for resolutions in presets.RESOLUTION_PRESETS.values():
        for resolution in resolutions:
            label = presets.resolution_label(resolution)
            width, height = parse_resolution(resolution)
            across, down = (int(part) for part in label.split("( ")[1].rstrip(" )").split(":"))
            assert width * down == height * across, label
            assert parse_resolution(label) == (width, height)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512x512", (512, 512)),
        ("1024X768", (1024, 768)),
        (" 256 x 2048", (256, 2048)),
        ("1152x896 ( 9:7 )", (1152, 896)),
    ],
)
def test_resolution_is_parsed(text: str, expected: tuple[int, int]) -> None:
    assert parse_resolution(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "WIDTHxHEIGHT"),
        ("big", "WIDTHxHEIGHT"),
        ("500x512", "multiple of 16"),
        ("240x512", "from 256 to 2048"),
        ("4096x256", "from 256 to 2048"),
        ("2048x2048", "4 megapixels"),
    ],
)
def test_bad_resolution_is_explained(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_resolution(text)


def test_prompt_is_stripped_and_limited() -> None:
    assert check_prompt("  a cat  ") == "a cat"
    for empty in ("", "   \n\t", None, 42):
        with pytest.raises(InputError, match="prompt is empty"):
            check_prompt(empty)
    with pytest.raises(InputError, match="limit is"):
        check_prompt("x" * (presets.MAX_PROMPT_CHARS + 1))


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 0, 51, "8", None, True])
def test_out_of_range_or_non_numbers_are_refused(value: object) -> None:
    with pytest.raises(InputError, match="Steps"):
        check_integer(value, "Steps", 1, 50)


def test_numbers_in_range_pass() -> None:
    assert check_integer(8.0, "Steps", 1, 50) == 8
    assert check_number(3, "Time shift", 1.0, 10.0) == 3.0
    with pytest.raises(InputError, match="whole number"):
        check_integer(7.5, "Steps", 1, 50)


def test_seed_is_kept_or_drawn() -> None:
    assert choose_seed(1234, randomize=False) == 1234
    drawn = {choose_seed(None, randomize=True) for _ in range(20)}
    assert len(drawn) > 1
    assert all(0 <= seed <= presets.MAX_SEED for seed in drawn)
    with pytest.raises(InputError, match="Seed"):
        choose_seed(-1, randomize=False)
    with pytest.raises(InputError, match="Seed"):
        choose_seed(presets.MAX_SEED + 1, randomize=False)


@pytest.mark.parametrize(
    "invisible",
    [
        "\u200b\u200c\u200d",  # zero-width space, non-joiner, joiner
        "\ufeff \u2060",  # byte order mark, word joiner
        "\u202e\u2066\u2069",  # bidi override and isolates
        "\u00ad\u180e",  # soft hyphen, Mongolian vowel separator
        "\x00\x07\x7f\x85",  # control characters
        "\u3164\u115f\uffa0",  # Hangul fillers
        "\u2800\u034f\ufe0f",  # blank Braille, grapheme joiner, variation selector
        "\U000e0041\U000e007f",  # tag characters
        "\u2028\u2029\u3000\u00a0",  # line and paragraph separators, wide and no-break spaces
    ],
)
def test_a_prompt_of_invisible_characters_is_empty(invisible: str) -> None:
    with pytest.raises(InputError, match="prompt is empty"):
        check_prompt(invisible)
    assert check_prompt(f"\u200ba cat{invisible}") == f"\u200ba cat{invisible}".strip()


def test_a_lone_surrogate_is_refused_readably() -> None:
    for broken in ("a \ud800 cat", "\udfff", "cat\udc00"):
        with pytest.raises(InputError, match="broken character"):
            check_prompt(broken, what="instruction")
    assert check_prompt("a \U0001f431 cat") == "a \U0001f431 cat"  # a real pair is fine


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (10**400, "a number of about 401 digits"),
        (-(10**5000), "a number of about 5001 digits"),
        (2**63, "9223372036854775808"),
        (1e308 * 10, "inf"),
    ],
    ids=["10**400", "-10**5000", "2**63", "inf"],
)
def test_huge_numbers_are_refused_without_overflow(value: object, shown: str) -> None:
    with pytest.raises(InputError, match=rf"^Seed must be from 0 to 2147483647 \(got {shown}\)\.$"):
        choose_seed(value, randomize=False)
