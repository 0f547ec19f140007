"""Policy version, banner text and consent decisions (opt-out, GPC/DNT)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path

from zimage.translations import ENGLISH, duration, lifetime, words

logger = logging.getLogger(__name__)

# Bump when PRIVACY.md changes meaning: visitors who acknowledged an older version
# see the banner again.
POLICY_VERSION: str = "2026-12-07"

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
    output_ttl_s: int,
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
        lifetime=lifetime(output_ttl_s, language),
        version=POLICY_VERSION,
    )


class KeyFileError(RuntimeError):
    """The browser-state key file can be neither read nor made: the Space must not start."""


# What `secrets.token_urlsafe(32)` makes: 43 characters of URL-safe base64.
_KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{43,128}")


def browser_state_key(path: Path) -> str:
    """The operator secret kept in ``path``, made once (atomically, owner-only) and reused.

    Kept across restarts so that visitors' choices (opt-out included) and pseudonyms survive
    them. An empty or malformed file (a start on a full disk) is replaced with a new key, with
    a warning; a file that cannot be read, or a key that cannot be stored, raises KeyFileError.
    """
    try:
        stored = _read_key(path)
    except FileNotFoundError:
        stored = None
    except OSError as error:
        raise KeyFileError(f"cannot read the browser-state key {path}: {_reason(error)}") from None
    if stored is not None and _KEY_PATTERN.fullmatch(stored):
        return stored
    if stored is not None:
        logger.warning("browser-state key %s is empty or malformed: replacing it", path)
    try:
        return _store_new_key(path, replace=stored is not None)
    except OSError as error:
        raise KeyFileError(f"cannot store the browser-state key {path}: {_reason(error)}") from None


def _store_new_key(path: Path, *, replace: bool) -> str:
    """Write a new key to a temp file, fsync it, then move it into place (0600)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    descriptor, temp_name = tempfile.mkstemp(prefix=".browser-state-", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:  # mkstemp: mode 0600
            handle.write(key.encode())
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temp_name, path)
        else:
            try:
                # Never overwrites: a replica starting at the same moment keeps its key.
                os.link(temp_name, path)
            except FileExistsError:
                # That replica's key, read once (a dangling symlink there raises, no loop).
                return _read_key(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
    _fsync_folder(path.parent)
    return key


def _read_key(path: Path) -> str:
    return path.read_bytes().decode(errors="replace").strip()


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _reason(error: BaseException) -> str:
    return getattr(error, "strerror", None) or type(error).__name__


class BrowserKeys:
    """What the browser gets from the operator's secret, and the pseudonyms the server signs.

    Gradio's BrowserState encrypts in the browser, so its key is public: it gets a value
    derived from the secret (HMAC with a purpose label), never the secret. Pseudonyms are
    ``<id>.<signature>`` signed with a second derived key, so a restart or another replica
    with the same secret accepts them and nobody can choose or guess one.
    """

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("the browser secret is empty")
        self.browser_state_secret = derive_key(secret, "browser-state encryption").hex()
        self._signing_key = derive_key(secret, "pseudonym signature")

    def new_pseudonym(self) -> str:
        """A fresh random per-browser pseudonym, signed."""
        pseudonym_id = secrets.token_urlsafe(16)
        return f"{pseudonym_id}.{self._signature(pseudonym_id)}"

    def verified_id(self, pseudonym: object) -> str:
        """The id of a pseudonym this server signed; "" for anything else (absent, forged)."""
        if not isinstance(pseudonym, str) or pseudonym.count(".") != 1:
            return ""
        pseudonym_id, signature = pseudonym.split(".")
        if not pseudonym_id or not hmac.compare_digest(
            signature.encode(), self._signature(pseudonym_id).encode()
        ):
            return ""
        return pseudonym_id

    def _signature(self, pseudonym_id: str) -> str:
        digest = hmac.new(self._signing_key, pseudonym_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def derive_key(secret: str, purpose: str) -> bytes:
    """A key for one purpose, derived from the operator's secret: every replica with the same
    secret derives the same key, and no key reveals the secret or another purpose's key."""
    return hmac.new(secret.encode(), f"zimage-space {purpose} v1".encode(), hashlib.sha256).digest()
