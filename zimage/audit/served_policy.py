"""The policy a copy serves, read from what its page gets: the privacy notice (banner) with its
version, the full policy text in each language, and the upload limit, all in /config.

The notice is English prose; what it announces (output lifetime, log retention, whether prompts
are logged) is read from its sentences. A copy's settings change those numbers, and the notice
follows them, so the notice, not the policy text's defaults, is what a copy announces.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from zimage.audit.events import translation_key

ENGLISH = "en"
BANNER_KEY = "privacy.banner"
POLICY_KEY = "privacy.policy"

# The version line each translation of the policy opens with.
VERSION_LINES = (
    re.compile(r"^Policy version: (\S+)", re.MULTILINE),
    re.compile(r"^政策版本：(\S+)", re.MULTILINE),
)
LIFETIME = re.compile(
    r"Generated images are deleted from the server after ([\d.]+) (second|minute|day)"
)
RETENTION = re.compile(r"Log rows are deleted after ([\d.]+) days?")
SECONDS = {"second": 1, "minute": 60, "day": 86400}


def policy_digest(text: str) -> str:
    """The SHA-256 of a policy text as served (UTF-8), in hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stated_version(text: str) -> str | None:
    """The version a policy text states in its first lines, in any of its languages."""
    for pattern in VERSION_LINES:
        match = pattern.search(text)
        if match:
            return match.group(1)
    return None


@dataclass(frozen=True)
class ServedPolicy:
    banner: str = ""
    banner_version: str | None = None
    texts: dict[str, str] = field(default_factory=dict)
    output_ttl_s: float | None = None
    usage_log: bool | None = None
    log_retention_days: float | None = None
    prompts_logged: bool | None = None
    max_upload_bytes: int | None = None

    def summary(self) -> dict[str, Any]:
        """What the copy announces, for the report (texts as their digests)."""
        summary = asdict(self)
        del summary["banner"], summary["texts"]
        summary["policy_sha256"] = {
            language: policy_digest(text) for language, text in self.texts.items()
        }
        summary["policy_versions"] = {
            language: stated_version(text) for language, text in self.texts.items()
        }
        return summary


def read_served_policy(config: dict[str, Any]) -> ServedPolicy:
    """What the copy's /config says about its policy; a part it does not say is None."""
    translations = config.get("i18n_translations") or {}
    english = translations.get(ENGLISH) or {}
    texts = {
        language: words[POLICY_KEY]
        for language, words in translations.items()
        if isinstance(words, dict) and isinstance(words.get(POLICY_KEY), str)
    }
    version = _banner_version(config)
    banner = str(english.get(BANNER_KEY) or "")
    lifetime = LIFETIME.search(banner)
    ttl_s = round(float(lifetime.group(1)) * SECONDS[lifetime.group(2)]) if lifetime else None
    retention = RETENTION.search(banner)
    usage_log = True if retention else (False if "keeps no usage log" in banner else None)
    max_upload = config.get("max_file_size")
    return ServedPolicy(
        banner=banner + (version or ""),
        banner_version=version,
        texts=texts,
        output_ttl_s=ttl_s,
        usage_log=usage_log,
        log_retention_days=float(retention.group(1)) if retention else None,
        prompts_logged=("plus your prompts" in banner) if usage_log else None,
        max_upload_bytes=max_upload if isinstance(max_upload, int) else None,
    )


def _banner_version(config: dict[str, Any]) -> str | None:
    """The version the page shows after the notice (the text its notice component starts with
    is the notice's translation key, then the version)."""
    for component in config.get("components", []):
        value = (component.get("props") or {}).get("value")
        translated = translation_key(value)
        if translated and translated[0] == BANNER_KEY and translated[1].strip():
            return translated[1].strip()
    return None
