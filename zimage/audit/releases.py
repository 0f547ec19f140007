"""The policy texts this repository has published: their SHA-256 by policy version and language,
kept in released_policies.json beside this module, so that an audit can tell a copy's policy
text from an edited one without fetching anything (`python -m zimage.audit.publish` adds the
repository's current texts)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from zimage.audit.served_policy import policy_digest, stated_version

RELEASES_FILE = Path(__file__).with_name("released_policies.json")


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
