"""Optional moderation: the prompt blocklist, the output classifier (a tiny offline model), the facade."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from zimage.service.moderation import (
    IMAGE_WITHHELD,
    PROMPT_REFUSED,
    ContentFlagged,
    ImageSafetyClassifier,
    Moderation,
    PromptBlocklist,
)


def save_tiny_safety_model(path: Path, flag_everything: bool, multi_label: bool = False) -> Path:
    """Save a 32x32 ViT classifier with labels 'normal'/'nsfw' whose answer ignores the image.

    The head's weight is zero, so the logits are its bias: 'nsfw' always wins (p ~ 0.993) when
    flag_everything, else 'normal' always wins (p(nsfw) ~ 0.007). Loads with from_pretrained.
    """
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessorPil

    config = ViTConfig(
        image_size=32,
        patch_size=16,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=2,
        id2label={0: "normal", 1: "nsfw"},
        label2id={"normal": 0, "nsfw": 1},
        problem_type="multi_label_classification" if multi_label else None,
    )
    torch.manual_seed(0)
    model = ViTForImageClassification(config)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([0.0, 5.0] if flag_everything else [5.0, 0.0]))
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(path)
    return path


def write_blocklist(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "blocklist.txt"
    path.write_text(text, encoding="utf-8")
    return path


BLOCKLIST = """\
# Operator's list: comments and blank lines are ignored.

gore
blood bath
   # an indented comment
re:k[i1]ll(ing)?\\s+spree
"""


@pytest.fixture
def blocklist(tmp_path: Path) -> PromptBlocklist:
    return PromptBlocklist.from_file(write_blocklist(tmp_path, BLOCKLIST))


def test_comments_and_blank_lines_are_not_entries(blocklist: PromptBlocklist) -> None:
    assert len(blocklist) == 3
    blocklist.check("a quiet # harbour at dawn")
    blocklist.check("an indented comment")


@pytest.mark.parametrize(
    "prompt",
    [
        "gore",
        "a scene full of GORE, in oils",
        "Gore.",
        "(gore)",
        "ｇｏｒｅ on the floor",  # full-width letters fold under NFKC
        "g\u200bore",  # a zero-width space does not hide a term
        "a blood bath",
        "a BLOOD   Bath at noon",  # any spacing inside a phrase
        "Blood\nbath",
        "killing spree",
        "a K1LL SPREE",
        "ｋｉｌｌ spree",  # regex entries also see the folded text
    ],
)
def test_blocked_prompts(blocklist: PromptBlocklist, prompt: str) -> None:
    with pytest.raises(ContentFlagged) as caught:
        blocklist.check(prompt)
    assert str(caught.value) == PROMPT_REFUSED


@pytest.mark.parametrize(
    "prompt",
    [
        "Gorey street at night",  # 'gore' inside a longer word
        "Algorel's gorgeous garden",
        "gore_fest",  # '_' is a word character
        "bloodbath",  # the phrase needs its space
        "a blood orange bath",
        "a killer whale on a spree",
        "",
    ],
)
def test_allowed_prompts(blocklist: PromptBlocklist, prompt: str) -> None:
    blocklist.check(prompt)


def test_regex_entries_are_not_word_anchored(blocklist: PromptBlocklist) -> None:
    # Only plain terms get word boundaries; a regex means what the operator wrote (\b if wanted).
    with pytest.raises(ContentFlagged):
        blocklist.check("a skill spree")


def test_plain_terms_fold_case_and_compatibility_forms_on_both_sides(tmp_path: Path) -> None:
    blocklist = PromptBlocklist.from_file(write_blocklist(tmp_path, "ＮＳＦＷ\nStraße\n"))
    for prompt in ("nsfw", "Nsfw art", "ＮＳＦＷ", "STRASSE", "die straße"):
        with pytest.raises(ContentFlagged):
            blocklist.check(prompt)
    blocklist.check("nsfwx strasse2")


def test_refusal_never_echoes_the_term(tmp_path: Path) -> None:
    blocklist = PromptBlocklist.from_file(write_blocklist(tmp_path, "zebracorn\nre:unic(o)rn\n"))
    for prompt in ("a zebracorn", "a unicorn"):
        with pytest.raises(ContentFlagged) as caught:
            blocklist.check(prompt)
        assert "corn" not in str(caught.value)
        assert "unic" not in str(caught.value)


def test_invalid_regex_names_the_line(tmp_path: Path) -> None:
    path = write_blocklist(tmp_path, "# header\nfine\n\nre:(unclosed\n")
    with pytest.raises(ValueError, match="line 4"):
        PromptBlocklist.from_file(path)


@pytest.mark.parametrize("entry", ["re:", "re:.*", "re:(a|)"])
def test_regex_that_would_refuse_everything_is_rejected(tmp_path: Path, entry: str) -> None:
    with pytest.raises(ValueError, match="line 2"):
        PromptBlocklist.from_file(write_blocklist(tmp_path, f"ok\n{entry}\n"))


def test_missing_or_non_utf8_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="Cannot read the prompt blocklist"):
        PromptBlocklist.from_file(tmp_path / "absent.txt")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("stra\xdfe\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        PromptBlocklist.from_file(latin1)


def test_empty_blocklist_allows_everything(tmp_path: Path) -> None:
    blocklist = PromptBlocklist.from_file(write_blocklist(tmp_path, "# nothing yet\n\n"))
    assert len(blocklist) == 0
    blocklist.check("anything at all")


# The image classifier, built offline.


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("safety-models")
    return {
        "flags": save_tiny_safety_model(root / "flags", flag_everything=True),
        "passes": save_tiny_safety_model(root / "passes", flag_everything=False),
        "multi": save_tiny_safety_model(root / "multi", flag_everything=True, multi_label=True),
    }


@pytest.fixture
def image() -> Image.Image:
    return Image.new("RGB", (64, 48), (200, 120, 40))


def test_always_nsfw_model_withholds_the_image(
    model_dirs: dict[str, Path], image: Image.Image
) -> None:
    classifier = ImageSafetyClassifier(str(model_dirs["flags"]))
    probability = classifier.flagged_probability(image)
    assert 0.99 < probability <= 1.0
    with pytest.raises(ContentFlagged) as caught:
        classifier.check(image)
    assert str(caught.value) == IMAGE_WITHHELD


def test_always_normal_model_passes(model_dirs: dict[str, Path], image: Image.Image) -> None:
    classifier = ImageSafetyClassifier(str(model_dirs["passes"]))
    assert 0.0 <= classifier.flagged_probability(image) < 0.01
    classifier.check(image)
    classifier.check(image.convert("RGBA"))
    classifier.check(image.convert("L"))


def test_threshold_is_respected(model_dirs: dict[str, Path], image: Image.Image) -> None:
    probability = ImageSafetyClassifier(str(model_dirs["flags"])).flagged_probability(image)
    ImageSafetyClassifier(str(model_dirs["flags"]), threshold=min(1.0, probability + 1e-4)).check(
        image
    )
    with pytest.raises(ContentFlagged):
        ImageSafetyClassifier(str(model_dirs["flags"]), threshold=probability).check(image)
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="threshold"):
            ImageSafetyClassifier(str(model_dirs["flags"]), threshold=bad)


def test_custom_flagged_labels(model_dirs: dict[str, Path], image: Image.Image) -> None:
    # Flag the label the always-normal model picks: now it withholds, case-insensitively.
    strict = ImageSafetyClassifier(str(model_dirs["passes"]), flagged_labels=["NORMAL"])
    assert strict.flagged_labels == ("normal",)
    with pytest.raises(ContentFlagged):
        strict.check(image)
    # And 'nsfw' is not flagged when the operator's list leaves it out.
    lenient = ImageSafetyClassifier(str(model_dirs["flags"]), flagged_labels=["normal"])
    lenient.check(image)


def test_labels_the_model_lacks_are_refused(model_dirs: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="normal"):
        ImageSafetyClassifier(str(model_dirs["flags"]), flagged_labels=["violence"])


def test_multi_label_model_uses_sigmoid_scores(
    model_dirs: dict[str, Path], image: Image.Image
) -> None:
    classifier = ImageSafetyClassifier(str(model_dirs["multi"]))
    # sigmoid(5) for 'nsfw'; a softmax would have given the same label ~0.993.
    assert classifier.flagged_probability(image) == pytest.approx(
        torch.sigmoid(torch.tensor(5.0)).item()
    )
    with pytest.raises(ContentFlagged):
        classifier.check(image)


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="image safety model"):
        ImageSafetyClassifier(str(tmp_path / "no-model-here"))


# The facade the request path calls.


def test_nothing_configured_is_a_no_op(image: Image.Image) -> None:
    moderation = Moderation()
    assert moderation.enabled is False
    moderation.check_prompt("gore blood bath")
    moderation.check_output(image)
    assert Moderation.load("", "").enabled is False


def test_configured_filters_run_in_their_places(
    tmp_path: Path, model_dirs: dict[str, Path], image: Image.Image
) -> None:
    moderation = Moderation.load(
        blocklist=str(write_blocklist(tmp_path, "gore\n")), safety_model=str(model_dirs["flags"])
    )
    assert moderation.enabled is True
    moderation.check_prompt("a lighthouse")
    with pytest.raises(ContentFlagged, match="prompt"):
        moderation.check_prompt("gore")
    with pytest.raises(ContentFlagged, match="image"):
        moderation.check_output(image)


def test_an_empty_blocklist_still_counts_as_configured(tmp_path: Path) -> None:
    moderation = Moderation(PromptBlocklist.from_file(write_blocklist(tmp_path, "# none\n")))
    assert moderation.enabled is True
    moderation.check_prompt("anything")
