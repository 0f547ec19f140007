"""Every knob of the Space, read once from the environment, validated and frozen."""

from __future__ import annotations

import os
import re
import tempfile
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from zimage import presets
from zimage.adapter_catalog import AdapterEntry, CatalogError, read_catalog

ENGINE_CHOICES = ("auto", "diffusers", "preview")
ATTENTION_CHOICES = ("auto", "native", "flash", "_flash_3", "_flash_3_hub", "sage", "flex")
QUANT_CHOICES = ("off", "fp8")
ENHANCER_CHOICES = ("auto", "off")
PREVIEW_DECODER_CHOICES = ("auto", "taef1", "linear")
# Requests per minute per visitor on a Space unless ZIMAGE_RATE_PER_MIN says otherwise.
SPACE_RATE_PER_MIN = 10
# A Space sits behind one proxy of its host, which appends the client's address to
# X-Forwarded-For; elsewhere the TCP peer is the client unless ZIMAGE_TRUSTED_PROXY_HOPS says so.
SPACE_TRUSTED_PROXY_HOPS = 1
MAX_TRUSTED_PROXY_HOPS = 5
# ZIMAGE_USAGE_DB values that name a PostgreSQL server rather than a SQLite file.
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_ON = ("on", "true", "1", "yes")
_OFF = ("off", "false", "0", "no")
# An operator secret shorter than this could be found from the key the page publishes.
MIN_BROWSER_SECRET_CHARS = 32
# One CSP frame-ancestors source: a keyword, a scheme, or [scheme://]host[:port] (host may
# start with "*.").
_FRAME_SOURCE = re.compile(
    r"'self'|'none'|https?:|(https?://)?(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:(\d{1,5}|\*))?"
)


class SettingsError(ValueError):
    """One readable line naming the variable, the value and what is allowed."""


def _default_data_dir() -> str:
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(cache_home) / "zimage-space")


@dataclass(frozen=True)
class Settings:
    engine: str = "auto"
    model: str = "Tongyi-MAI/Z-Image-Turbo"
    base_model: str = ""
    edit_model: str = ""
    device: str = "auto"
    attention: str = "auto"
    compile: bool = False
    quant: str = "off"
    warmup: bool = False
    server_name: str = "127.0.0.1"
    server_port: int = 7860
    on_space: bool = False
    max_upload_mb: int = presets.DEFAULT_MAX_UPLOAD_MB
    edit_max_megapixels: float = presets.DEFAULT_EDIT_MAX_MEGAPIXELS
    analytics: bool = True
    log_prompts: bool = False
    log_retention_days: int = 90
    data_dir: str = ""
    usage_db: str = ""
    browser_secret: str = ""
    frame_ancestors: str = ""
    output_ttl_s: int = 600
    cache_max_mb: int = 512
    cache_max_per_visitor: int = 32
    temp_dir: str = ""
    queue_max: int = 64
    queue_per_visitor: int = 8
    session_capacity: int = 1000
    rate_per_min: int = 0
    rate_limit_wait_ms: int = 250
    trusted_proxy_hops: int = 0
    upload_visitor_mb: int = 100
    upload_window_s: int = 300
    upload_total_mb: int = 256
    upload_unused_s: int = 120
    time_limit_s: int = 300
    memory_budget_mb: int = 0
    blocklist: str = ""
    safety_model: str = ""
    reuse_prompts: bool = True
    zero_gpu_max_s: int = 120
    mcp: bool = True
    mcp_max_sessions: int = 1000
    mcp_sessions_per_address: int = 100
    shutdown_grace_s: int = 10
    enhancer: str = "auto"
    enhancer_model: str = ""
    enhancer_max_tokens: int = presets.DEFAULT_ENHANCER_MAX_TOKENS
    preview_decoder: str = "auto"
    preview_decoder_model: str = "madebyollin/taef1"
    loras: tuple[AdapterEntry, ...] = ()
    lora_from_hub: bool = False
    lora_max_mb: int = 512
    lora_hub_keep: int = 4

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every setting; raise SettingsError on the first bad value."""
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        on_space = bool(env.get("SPACE_ID"))
        max_upload_mb = reader.integer("ZIMAGE_MAX_UPLOAD_MB", cls.max_upload_mb, 1, 200)
        cache_max_mb = reader.integer("ZIMAGE_CACHE_MAX_MB", cls.cache_max_mb, 16, 65536)
        mcp_max_sessions = reader.integer(
            "ZIMAGE_MCP_MAX_SESSIONS", cls.mcp_max_sessions, 1, 100000
        )
        data_dir = reader.text("ZIMAGE_DATA_DIR", _default_data_dir())
        usage_db = reader.usage_db("ZIMAGE_USAGE_DB", str(Path(data_dir) / "usage.sqlite3"))
        browser_secret = reader.secret("ZIMAGE_BROWSER_SECRET", MIN_BROWSER_SECRET_CHARS)
        if is_postgres_url(usage_db) and not browser_secret:
            # Each replica would otherwise make its own key: pseudonyms signed by one would be
            # refused by the others, and the shared rate limit would count each apart.
            raise SettingsError(
                "ZIMAGE_USAGE_DB names a database shared by replicas: set ZIMAGE_BROWSER_SECRET "
                "to the same value on every replica."
            )
        model = reader.text("ZIMAGE_MODEL", cls.model)
        return cls(
            engine=reader.choice("ZIMAGE_ENGINE", ENGINE_CHOICES, cls.engine),
            model=model,
            base_model=reader.text("ZIMAGE_BASE_MODEL", cls.base_model, allow_empty=True),
            edit_model=reader.text("ZIMAGE_EDIT_MODEL", cls.edit_model, allow_empty=True),
            device=reader.device("ZIMAGE_DEVICE", cls.device),
            attention=reader.choice("ZIMAGE_ATTENTION", ATTENTION_CHOICES, cls.attention),
            compile=reader.flag("ZIMAGE_COMPILE", cls.compile),
            quant=reader.choice("ZIMAGE_QUANT", QUANT_CHOICES, cls.quant),
            warmup=reader.flag("ZIMAGE_WARMUP", cls.warmup),
            server_name=reader.text("GRADIO_SERVER_NAME", cls.server_name),
            server_port=reader.integer("GRADIO_SERVER_PORT", cls.server_port, 1, 65535),
            on_space=on_space,
            max_upload_mb=max_upload_mb,
            edit_max_megapixels=reader.number(
                "ZIMAGE_EDIT_MAX_MP", cls.edit_max_megapixels, 0.0625, 4.0
            ),
            analytics=reader.flag("ZIMAGE_ANALYTICS", cls.analytics),
            log_prompts=reader.flag("ZIMAGE_LOG_PROMPTS", cls.log_prompts),
            log_retention_days=reader.integer(
                "ZIMAGE_LOG_RETENTION_DAYS", cls.log_retention_days, 1, 3650
            ),
            data_dir=data_dir,
            usage_db=usage_db,
            browser_secret=browser_secret,
            frame_ancestors=reader.frame_ancestors("ZIMAGE_FRAME_ANCESTORS"),
            output_ttl_s=reader.integer("ZIMAGE_OUTPUT_TTL_S", cls.output_ttl_s, 1, 86400),
            cache_max_mb=cache_max_mb,
            cache_max_per_visitor=reader.integer(
                "ZIMAGE_CACHE_MAX_PER_VISITOR", cls.cache_max_per_visitor, 1, 1000
            ),
            temp_dir=reader.writable_folder("GRADIO_TEMP_DIR"),
            queue_max=reader.integer("ZIMAGE_QUEUE_MAX", cls.queue_max, 1, 10000),
            queue_per_visitor=reader.integer(
                "ZIMAGE_QUEUE_PER_VISITOR", cls.queue_per_visitor, 1, 10000
            ),
            session_capacity=reader.integer(
                "ZIMAGE_SESSION_CAPACITY", cls.session_capacity, 10, 100000
            ),
            rate_per_min=reader.integer(
                "ZIMAGE_RATE_PER_MIN", SPACE_RATE_PER_MIN if on_space else 0, 0, 10000
            ),
            rate_limit_wait_ms=reader.integer(
                "ZIMAGE_RATE_LIMIT_WAIT_MS", cls.rate_limit_wait_ms, 10, 60000
            ),
            trusted_proxy_hops=reader.integer(
                "ZIMAGE_TRUSTED_PROXY_HOPS",
                SPACE_TRUSTED_PROXY_HOPS if on_space else 0,
                0,
                MAX_TRUSTED_PROXY_HOPS,
            ),
            upload_visitor_mb=reader.integer(
                "ZIMAGE_UPLOAD_VISITOR_MB",
                max(cls.upload_visitor_mb, max_upload_mb),
                max_upload_mb,
                100000,
                "at least ZIMAGE_MAX_UPLOAD_MB",
            ),
            upload_window_s=reader.integer(
                "ZIMAGE_UPLOAD_WINDOW_S", cls.upload_window_s, 10, 86400
            ),
            upload_total_mb=reader.integer(
                "ZIMAGE_UPLOAD_TOTAL_MB",
                cache_max_mb // 2,
                1,
                cache_max_mb,
                "at most ZIMAGE_CACHE_MAX_MB",
            ),
            upload_unused_s=reader.integer("ZIMAGE_UPLOAD_UNUSED_S", cls.upload_unused_s, 1, 86400),
            time_limit_s=reader.integer("ZIMAGE_TIME_LIMIT_S", cls.time_limit_s, 5, 3600),
            memory_budget_mb=reader.integer(
                "ZIMAGE_MEMORY_BUDGET_MB", cls.memory_budget_mb, 0, 16 * 1024 * 1024
            ),
            blocklist=reader.existing_file("ZIMAGE_BLOCKLIST"),
            safety_model=reader.text("ZIMAGE_SAFETY_MODEL", "", allow_empty=True),
            reuse_prompts=reader.flag("ZIMAGE_REUSE_PROMPTS", cls.reuse_prompts),
            zero_gpu_max_s=reader.integer("ZIMAGE_ZEROGPU_MAX_S", cls.zero_gpu_max_s, 15, 300),
            mcp=reader.flag("ZIMAGE_MCP", cls.mcp),
            mcp_max_sessions=mcp_max_sessions,
            mcp_sessions_per_address=reader.integer(
                "ZIMAGE_MCP_SESSIONS_PER_ADDRESS",
                min(cls.mcp_sessions_per_address, mcp_max_sessions),
                1,
                mcp_max_sessions,
                "at most ZIMAGE_MCP_MAX_SESSIONS",
            ),
            shutdown_grace_s=reader.integer(
                "ZIMAGE_SHUTDOWN_GRACE_S", cls.shutdown_grace_s, 1, 300
            ),
            enhancer=reader.choice("ZIMAGE_ENHANCER", ENHANCER_CHOICES, cls.enhancer),
            enhancer_model=reader.text("ZIMAGE_ENHANCER_MODEL", "", allow_empty=True),
            enhancer_max_tokens=reader.integer(
                "ZIMAGE_ENHANCER_MAX_TOKENS",
                cls.enhancer_max_tokens,
                presets.MIN_ENHANCER_MAX_TOKENS,
                presets.MAX_SEQUENCE_LENGTH,
            ),
            preview_decoder=reader.choice(
                "ZIMAGE_PREVIEW_DECODER", PREVIEW_DECODER_CHOICES, cls.preview_decoder
            ),
            preview_decoder_model=reader.text(
                "ZIMAGE_PREVIEW_DECODER_MODEL", cls.preview_decoder_model
            ),
            loras=reader.adapters("ZIMAGE_LORAS", model),
            lora_from_hub=reader.flag("ZIMAGE_LORA_FROM_HUB", cls.lora_from_hub),
            lora_max_mb=reader.integer("ZIMAGE_LORA_MAX_MB", cls.lora_max_mb, 1, 4096),
            lora_hub_keep=reader.integer("ZIMAGE_LORA_HUB_KEEP", cls.lora_hub_keep, 1, 32),
        )

    @property
    def shared_usage_db(self) -> bool:
        """Whether the usage log is a PostgreSQL database that replicas share."""
        return is_postgres_url(self.usage_db)

    def describe(self) -> dict[str, Any]:
        """The settings as a plain dict for the start-up log, with the secret and any database
        password left out."""
        described = {
            f.name: getattr(self, f.name) for f in fields(self) if f.name != "browser_secret"
        }
        if self.shared_usage_db:
            described["usage_db"] = without_password(self.usage_db)
        return described


def is_postgres_url(value: str) -> bool:
    return value.startswith(POSTGRES_SCHEMES)


def without_password(url: str) -> str:
    """A PostgreSQL URL fit for a log: the password (in the address or the query) removed."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        credentials, _, hosts = netloc.rpartition("@")
        netloc = f"{credentials.split(':', 1)[0]}@{hosts}"
    query = urllib.parse.urlencode(
        [
            (key, value)
            for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
            if key.lower() != "password"
        ]
    )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


class _Reader:
    """Reads one variable at a time, raising SettingsError with a one-line explanation."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def _raw(self, name: str) -> str | None:
        value = self._env.get(name)
        return None if value is None else value.strip()

    def _parse(self, name: str, default: Any, parse: Callable[[str], Any], allowed: str) -> Any:
        raw = self._raw(name)
        if raw is None or raw == "":
            return default
        try:
            return parse(raw)
        except ValueError:
            raise SettingsError(f"{name}={raw!r} is not valid: {allowed}.") from None

    def text(self, name: str, default: str, allow_empty: bool = False) -> str:
        raw = self._raw(name)
        if raw is None:
            return default
        if raw == "" and not allow_empty:
            raise SettingsError(f"{name} is set but empty: give a value or unset it.")
        return raw

    def secret(self, name: str, min_chars: int) -> str:
        raw = self._raw(name) or ""
        if raw and len(raw) < min_chars:
            # The value itself is never echoed.
            raise SettingsError(
                f"{name} is too short ({len(raw)} characters): use at least {min_chars} "
                "random characters, or leave it empty to have one generated."
            )
        return raw

    def usage_db(self, name: str, default_path: str) -> str:
        """A SQLite file path, or a postgresql:// URL that libpq can parse."""
        raw = self._raw(name)
        if not raw:
            return default_path
        if not is_postgres_url(raw):
            return raw
        from psycopg.conninfo import conninfo_to_dict

        try:
            conninfo_to_dict(raw)
        except Exception:  # noqa: BLE001 - libpq's message may quote the URL, password and all
            # The value itself is never echoed: it may hold a password.
            raise SettingsError(
                f"{name} is not a valid PostgreSQL URL: use "
                "postgresql://user@host:port/database (the password may come from PGPASSWORD "
                "or ~/.pgpass), or the path of a SQLite file."
            ) from None
        return raw

    def frame_ancestors(self, name: str) -> str:
        def parse(raw: str) -> str:
            sources = raw.split()
            if not all(_FRAME_SOURCE.fullmatch(source) for source in sources):
                raise ValueError
            if "'none'" in sources and len(sources) > 1:
                raise ValueError
            return " ".join(sources)

        allowed = (
            "use a space-separated list of 'self', 'none' or origins such as "
            "https://example.org or https://*.example.org"
        )
        return self._parse(name, "", parse, allowed)

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        def parse(raw: str) -> str:
            if raw.lower() not in choices:
                raise ValueError
            return raw.lower()

        return self._parse(name, default, parse, "use one of " + ", ".join(choices))

    def flag(self, name: str, default: bool) -> bool:
        def parse(raw: str) -> bool:
            if raw.lower() in _ON:
                return True
            if raw.lower() in _OFF:
                return False
            raise ValueError

        return self._parse(name, default, parse, "use on or off")

    def integer(self, name: str, default: int, low: int, high: int, why: str = "") -> int:
        def parse(raw: str) -> int:
            value = int(raw)
            if not low <= value <= high:
                raise ValueError
            return value

        allowed = f"use a whole number from {low} to {high}" + (f" ({why})" if why else "")
        return self._parse(name, default, parse, allowed)

    def number(self, name: str, default: float, low: float, high: float) -> float:
        def parse(raw: str) -> float:
            value = float(raw)
            if not low <= value <= high:  # also rejects nan
                raise ValueError
            return value

        return self._parse(name, default, parse, f"use a number from {low:g} to {high:g}")

    def existing_file(self, name: str) -> str:
        def parse(raw: str) -> str:
            if not Path(raw).is_file():
                raise ValueError
            return raw

        return self._parse(name, "", parse, "give the path of an existing file")

    def writable_folder(self, name: str) -> str:
        """A folder this user can write in, made if missing (probed by making a sub-folder)."""

        def parse(raw: str) -> str:
            try:
                Path(raw).mkdir(parents=True, exist_ok=True)
                os.rmdir(tempfile.mkdtemp(prefix=".probe-", dir=raw))
            except OSError:
                raise ValueError from None
            return raw

        return self._parse(name, "", parse, "give a folder this user can create and write in")

    def adapters(self, name: str, model: str) -> tuple[AdapterEntry, ...]:
        """The operator's adapters: a JSON list, inline or in a file (zimage/adapter_catalog.py)."""
        try:
            return read_catalog(self._raw(name) or "", model, name)
        except CatalogError as error:
            raise SettingsError(str(error)) from None

    def device(self, name: str, default: str) -> str:
        def parse(raw: str) -> str:
            value = raw.lower()
            if value in ("auto", "cpu", "cuda", "mps") or (
                value.startswith("cuda:") and value[5:].isdigit()
            ):
                return value
            raise ValueError

        return self._parse(name, default, parse, "use auto, cpu, cuda, cuda:N or mps")
