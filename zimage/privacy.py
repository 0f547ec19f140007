"""Policy version, banner text and consent decisions (opt-out, GPC/DNT)."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from zimage.translations import ENGLISH, duration, words

logger = logging.getLogger(__name__)

# Bump when PRIVACY.md changes meaning: visitors who acknowledged an older version
# see the banner again.
POLICY_VERSION: str = "2026-11-29"

_OPT_OUT_HEADERS = ("sec-gpc", "dnt")


def visitor_opted_out(headers: Mapping[str, str]) -> bool:
    """True when the request carries Global Privacy Control (`Sec-GPC: 1`) or `DNT: 1`."""
    return any(
        name.lower() in _OPT_OUT_HEADERS and value.strip() == "1" for name, value in headers.items()
    )


def analytics_allowed(
    operator_enabled: bool, visitor_choice_opt_out: bool, headers: Mapping[str, str]
) -> bool:
    """Whether this request may be written to the usage log."""
    if not operator_enabled or visitor_choice_opt_out:
        return False
    return not visitor_opted_out(headers)


def banner_needs_showing(acknowledged_version: str | None) -> bool:
    """True unless the visitor has acknowledged the current policy version."""
    return acknowledged_version != POLICY_VERSION


def banner_markdown(
    output_ttl_minutes: float,
    retention_days: int,
    analytics_enabled: bool,
    policy_updated: bool,
    *,
    log_prompts: bool,
    language: str = ENGLISH,
) -> str:
    """The privacy banner in `language`: what is kept, for how long, for whom, and, at its end,
    the policy version."""
    if analytics_enabled:
        logged = words("banner.logged", language) + words(
            "banner.prompts_logged" if log_prompts else "banner.prompts_not_logged", language
        )
        retention = duration(retention_days, "day", language)
        kept = words("banner.kept", language, logged=logged, retention=retention)
    else:
        kept = words("banner.no_log", language)
    return words(
        "banner.body",
        language,
        lead_in=words("banner.updated", language) if policy_updated else "",
        kept=kept,
        lifetime=duration(output_ttl_minutes, "minute", language),
        version=POLICY_VERSION,
    )


def browser_state_key(path: Path) -> str:
    """The key that encrypts visitors' choices in their browsers, kept across restarts.

    Created once with owner-only permissions, so a restart does not reset every visitor's
    opt-out and banner state. If it cannot be stored, a key for this run only is used.
    """
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    except OSError as error:
        logger.warning("browser-state key unreadable (%s): choices last until restart", error)
        return secrets.token_urlsafe(32)
    secret = secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secret)
    except OSError as error:
        logger.warning("browser-state key not stored (%s): choices last until restart", error)
    return secret


def new_pseudonym() -> str:
    """A random per-browser id: links usage rows to one browser, identifies no one."""
    return secrets.token_urlsafe(16)
