import math

import pytest

from zimage import presets
from zimage.tools.checks import (
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
    assert 0 <= choose_seed(-1, randomize=False) <= presets.MAX_SEED  # -1 asks for a random one
    with pytest.raises(InputError, match="Seed"):
        choose_seed(-2, randomize=False)
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


# -- limits are inclusive: the top and bottom of each range pass, one step past them does not --


def test_four_megapixels_is_allowed_exactly_and_not_one_step_more() -> None:
    assert 2000 * 2000 == presets.MAX_PIXELS
    assert parse_resolution("2000x2000") == (2000, 2000)
    for over in ("2016x2000", "2000x2016"):
        with pytest.raises(InputError, match=rf"^Resolution {over} is over the limit of 4 "):
            parse_resolution(over)


def test_smallest_and_largest_sides_are_allowed() -> None:
    low, high = presets.MIN_SIDE, presets.MAX_SIDE
    assert parse_resolution(f"{low}x{low}") == (low, low)
    assert parse_resolution(f"{high}x{low}") == (high, low)
    assert parse_resolution(f"{low}x{high}") == (low, high)
    for outside in (f"{low - 16}x{low}", f"{low}x{high + 16}"):
        with pytest.raises(InputError, match=f"each side must be from {low} to {high} px"):
            parse_resolution(outside)


def test_no_resolution_at_all_is_explained() -> None:
    with pytest.raises(InputError, match=r"^Resolution None is not WIDTHxHEIGHT, for example"):
        parse_resolution(None)  # type: ignore[arg-type]


def test_a_prompt_of_exactly_the_character_limit_is_accepted() -> None:
    limit = presets.MAX_PROMPT_CHARS
    assert check_prompt("y" * limit) == "y" * limit
    assert check_prompt(f"  {'y' * limit}\n") == "y" * limit  # counted after stripping
    with pytest.raises(
        InputError, match=rf"^The prompt has {limit + 1} characters; the limit is {limit}\.$"
    ):
        check_prompt("y" * (limit + 1))


def test_a_lone_surrogate_message_says_what_to_do() -> None:
    with pytest.raises(InputError) as refused:
        check_prompt("a \ud800 cat")
    assert str(refused.value) == (
        "The prompt contains a broken character (half of a UTF-16 surrogate pair): "
        "please retype it."
    )


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [
        ("Steps", presets.MIN_STEPS, presets.MAX_STEPS),
        ("Number of images", 1, presets.MAX_IMAGES_PER_RUN),
        ("Seed", 0, presets.MAX_SEED),
    ],
)
def test_every_whole_number_range_includes_both_ends(name: str, low: int, high: int) -> None:
    assert check_integer(low, name, low, high) == low
    assert check_integer(high, name, low, high) == high
    for outside in (low - 1, high + 1):
        with pytest.raises(InputError, match=rf"^{name} must be from {low} to {high} \(got "):
            check_integer(outside, name, low, high)


@pytest.mark.parametrize(
    ("name", "low", "high", "shown"),
    [
        ("Time shift", presets.MIN_SHIFT, presets.MAX_SHIFT, "1 to 10"),
        ("Strength", presets.MIN_STRENGTH, presets.MAX_STRENGTH, "0.05 to 1"),
    ],
)
def test_every_decimal_range_includes_both_ends(
    name: str, low: float, high: float, shown: str
) -> None:
    assert check_number(low, name, low, high) == low
    assert check_number(high, name, low, high) == high
    for outside in (low - 0.01, high + 0.01, math.nan):
        with pytest.raises(InputError, match=rf"^{name} must be from {shown} \(got "):
            check_number(outside, name, low, high)
    with pytest.raises(InputError, match=rf"^{name} must be a number from {shown}\.$"):
        check_number("5", name, low, high)


def test_a_given_seed_leaves_room_for_the_rest_of_the_batch() -> None:
    room = 3  # a batch of four images uses seed, seed + 1, seed + 2, seed + 3
    top = presets.MAX_SEED - room
    assert choose_seed(top, randomize=False, room=room) == top
    with pytest.raises(InputError, match=rf"^Seed must be from 0 to {top} \(got {top + 1}\)"):
        choose_seed(top + 1, randomize=False, room=room)


def test_random_seeds_cover_the_whole_allowed_range_and_nothing_past_it() -> None:
    # With room for all seeds but two, only 0 and 1 may be drawn: 64 draws show both (a chance
    # of 2**-63 to miss one) and never a 2.
    drawn = {choose_seed(None, randomize=True, room=presets.MAX_SEED - 1) for _ in range(64)}
    assert drawn == {0, 1}
    assert choose_seed(None, randomize=True, room=presets.MAX_SEED) == 0


def test_a_number_just_past_64_bits_is_described_not_printed() -> None:
    with pytest.raises(InputError, match=r"\(got a number of about 20 digits\)\.$"):
        choose_seed(2**64, randomize=False)
