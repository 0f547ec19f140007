"""The policy texts this repository has published: their SHA-256 by policy version and language,
kept in released_policies.json beside this module, so that an audit can tell a copy's policy
text from an edited one without fetching anything.

    python -m zimage.audit.releases    # add the repository's current PRIVACY.md and PRIVACY.zh.md

A test fails while the current texts are missing from the file.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from zimage.audit.served_policy import policy_digest, stated_version

RELEASES_FILE = Path(__file__).with_name("released_policies.json")
ROOT = Path(__file__).resolve().parents[2]
POLICY_FILES = {"en": ROOT / "PRIVACY.md", "zh-CN": ROOT / "PRIVACY.zh.md"}


@dataclass(frozen=True)
class Releases:
    """version -> language -> the digests of the texts published under that version."""

    digests: dict[str, dict[str, list[str]]]

    @classmethod
    def load(cls, path: Path = RELEASES_FILE) -> Releases:
        return cls(json.loads(path.read_text(encoding="utf-8")))

    def version_of(self, language: str, digest: str) -> str | None:
        """The version under which this text was published, None if it never was."""
        for version, languages in self.digests.items():
            if digest in languages.get(language, []):
                return version
        return None

    def with_text(self, language: str, text: str) -> Releases:
        """These releases and `text` (published under the version it states)."""
        version = stated_version(text)
        if version is None:
            raise ValueError(f"the {language} policy text states no version")
        digests = {
            known_version: {known_language: list(d) for known_language, d in languages.items()}
            for known_version, languages in self.digests.items()
        }
        known = digests.setdefault(version, {}).setdefault(language, [])
        if policy_digest(text) not in known:
            known.append(policy_digest(text))
        return Releases(digests)

    def save(self, path: Path = RELEASES_FILE) -> None:
        path.write_text(json.dumps(self.digests, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def current_texts() -> dict[str, str]:
    """The repository's policy texts, as the page serves them."""
    return {language: path.read_text(encoding="utf-8") for language, path in POLICY_FILES.items()}


def main() -> int:
    releases = Releases.load()
    for language, text in current_texts().items():
        releases = releases.with_text(language, text)
    releases.save()
    for language, text in current_texts().items():
        print(f"{language} {stated_version(text)} {policy_digest(text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
