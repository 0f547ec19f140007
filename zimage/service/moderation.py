"""Optional content moderation (policy section 6): a prompt blocklist and an output classifier.

Both are off unless the operator configures them. A refusal raises ContentFlagged, whose message
is safe to show: it never repeats the matched term or the classifier's scores.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PIL import Image

PROMPT_REFUSED = "This prompt is not allowed by this Space's content filter."
IMAGE_WITHHELD = "The image was withheld by this Space's content filter."
DEFAULT_FLAGGED_LABELS = ("nsfw", "unsafe", "porn", "hentai", "sexy")

_REGEX_PREFIX = "re:"


class ContentFlagged(Exception):
    """A prompt or an output the operator's filter refused; the message is safe to show."""


def normalize_text(text: str) -> str:
    """Caseless, compatibility-folded text ('ＮＳＦＷ' -> 'nsfw'), without invisible format characters."""
    # Format characters (zero-width space, soft hyphen, ...) would otherwise split a term unseen.
    visible = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    # NFKC, casefold, NFKC again: casefolding can produce text that is no longer NFKC-normal.
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", visible).casefold())


def _term_pattern(term: str) -> str:
    """A whole-word/phrase pattern: no word character may touch either end; any spacing inside."""
    words = normalize_text(term).split()
    return r"(?<!\w)" + r"\s+".join(re.escape(word) for word in words) + r"(?!\w)"


class PromptBlocklist:
    """Terms and regular expressions that a prompt may not contain."""

    def __init__(self, terms: Iterable[str] = (), patterns: Iterable[re.Pattern[str]] = ()) -> None:
        self._terms = [term for term in terms if normalize_text(term).strip()]
        self._patterns = list(patterns)
        self._terms_re = (
            re.compile("|".join(_term_pattern(term) for term in self._terms))
            if self._terms
            else None
        )

    @classmethod
    def from_file(cls, path: str | Path) -> PromptBlocklist:
        """Read a UTF-8 file: one entry a line, '#' comments, 're:' for a regular expression."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as err:
            raise ValueError(f"The prompt blocklist {path} is not UTF-8 text: {err}.") from err
        except OSError as err:
            reason = err.strerror or str(err)
            raise OSError(f"Cannot read the prompt blocklist {path}: {reason}.") from err
        terms: list[str] = []
        patterns: list[re.Pattern[str]] = []
        for number, line in enumerate(text.splitlines(), start=1):
            entry = line.strip()
            if not entry or entry.startswith("#"):
                continue
            if entry.startswith(_REGEX_PREFIX):
                patterns.append(_compile_entry(entry[len(_REGEX_PREFIX) :].strip(), path, number))
            else:
                terms.append(entry)
        return cls(terms, patterns)

    def matches(self, text: str) -> bool:
        """Whether the text contains a blocked term or matches a blocked pattern."""
        folded = normalize_text(text)
        if self._terms_re is not None and self._terms_re.search(folded):
            return True
        # Patterns see the text as typed and folded, so 're:nsfw' also catches 'ＮＳＦＷ'.
        return any(p.search(text) or p.search(folded) for p in self._patterns)

    def check(self, text: str) -> None:
        """Raise ContentFlagged if the text is blocked."""
        if self.matches(text):
            raise ContentFlagged(PROMPT_REFUSED)

    def __len__(self) -> int:
        return len(self._terms) + len(self._patterns)


def _compile_entry(source: str, path: Path, number: int) -> re.Pattern[str]:
    where = f"The prompt blocklist {path}, line {number}"
    if not source:
        raise ValueError(f"{where}: 're:' is not followed by a regular expression.")
    try:
        pattern = re.compile(source, re.IGNORECASE)
    except re.error as err:
        raise ValueError(f"{where}: invalid regular expression {source!r} ({err}).") from err
    if pattern.fullmatch(""):
        raise ValueError(
            f"{where}: the regular expression {source!r} matches empty text, "
            "so it would refuse every prompt."
        )
    return pattern


class ImageSafetyClassifier:
    """Optional output filter: a transformers image-classification model (local dir or Hub id)."""

    def __init__(
        self,
        model: str,
        flagged_labels: Iterable[str] = DEFAULT_FLAGGED_LABELS,
        threshold: float = 0.5,
        device: str = "cpu",
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(
                f"The safety threshold must be above 0 and at most 1 (got {threshold})."
            )
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        try:
            # backend="pil": works without torchvision and gives the same pixels on every host.
            self.processor: Any = AutoImageProcessor.from_pretrained(model, backend="pil")
            self.model: Any = AutoModelForImageClassification.from_pretrained(model)
        except OSError as err:
            raise OSError(f"Cannot load the image safety model {model!r}: {err}") from err
        self.model.to(device).eval()
        self.threshold = float(threshold)

        id2label: dict[int, str] = {int(i): str(n) for i, n in self.model.config.id2label.items()}
        wanted = {label.casefold() for label in flagged_labels}
        self.flagged_indices = sorted(
            i for i, name in id2label.items() if name.casefold() in wanted
        )
        if not self.flagged_indices:
            # A filter that can never fire would look like a working one; refuse it at start-up.
            raise ValueError(
                f"None of the flagged labels {sorted(wanted)} is a label of the safety model "
                f"{model!r} (its labels: {sorted(id2label.values())})."
            )
        self.flagged_labels = tuple(id2label[i] for i in self.flagged_indices)
        self._multi_label = self.model.config.problem_type == "multi_label_classification"

    def flagged_probability(self, image: Image.Image) -> float:
        """The model's probability, from 0 to 1, that the image has a flagged label."""
        import torch

        inputs = self.processor(images=image.convert("RGB"), return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.model.device, self.model.dtype)
        with torch.inference_mode():
            logits = self.model(pixel_values=pixels).logits[0].float()
        flagged = logits[self.flagged_indices]
        if self._multi_label:
            # Independent sigmoid scores: the chance that at least one flagged label applies.
            probability = 1.0 - float((1.0 - flagged.sigmoid()).prod())
        else:
            probability = float(logits.softmax(-1)[self.flagged_indices].sum())
        if not math.isfinite(probability):
            return 1.0  # a broken score must not let an image through
        return min(max(probability, 0.0), 1.0)

    def check(self, image: Image.Image) -> None:
        """Raise ContentFlagged if the flagged probability reaches the threshold."""
        if self.flagged_probability(image) >= self.threshold:
            raise ContentFlagged(IMAGE_WITHHELD)


class Moderation:
    """What the request path calls: prompt filter before the engine, image filter after."""

    def __init__(
        self,
        blocklist: PromptBlocklist | None = None,
        classifier: ImageSafetyClassifier | None = None,
    ) -> None:
        self.blocklist = blocklist
        self.classifier = classifier

    @classmethod
    def load(cls, blocklist: str = "", safety_model: str = "", device: str = "cpu") -> Moderation:
        """From the operator's settings (a blocklist path, a model dir or Hub id); '' means off."""
        return cls(
            PromptBlocklist.from_file(blocklist) if blocklist else None,
            ImageSafetyClassifier(safety_model, device=device) if safety_model else None,
        )

    @property
    def enabled(self) -> bool:
        """Whether any filter is configured."""
        return self.blocklist is not None or self.classifier is not None

    def check_prompt(self, text: str) -> None:
        """Raise ContentFlagged if the blocklist refuses the prompt; no-op without one."""
        if self.blocklist is not None:
            self.blocklist.check(text)

    def check_output(self, image: Image.Image) -> None:
        """Raise ContentFlagged if the classifier withholds the image; no-op without one."""
        if self.classifier is not None:
            self.classifier.check(image)
