"""python -m zimage.audit.publish: add the digests of the repository's PRIVACY.md and
PRIVACY.zh.md to the texts the audit knows as published (run it after editing either; a test
fails until then)."""

from __future__ import annotations

import sys
from pathlib import Path

from zimage.audit.releases import Releases
from zimage.audit.served_policy import policy_digest, stated_version

ROOT = Path(__file__).resolve().parents[2]
POLICY_FILES = {"en": ROOT / "PRIVACY.md", "zh-CN": ROOT / "PRIVACY.zh.md"}


def current_texts() -> dict[str, str]:
    """The repository's policy texts by language, as the page serves them."""
    return {language: path.read_text(encoding="utf-8") for language, path in POLICY_FILES.items()}


def main() -> int:
    releases = Releases.load()
    for language, text in current_texts().items():
        releases = releases.with_text(language, text)
        print(f"{language} {stated_version(text)} {policy_digest(text)}")
    releases.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
