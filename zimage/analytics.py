"""Consent-aware usage log in SQLite: coarse browser data, hashed IPs, retention, export and delete.

Callers decide consent (see `privacy.analytics_allowed`) before calling `UsageLog.record`.
Raw IP addresses and user-agent strings never reach the database or the log messages.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import sqlite3
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Keys that must never be logged as parameters, even if a caller passes them by mistake.
_FORBIDDEN_PARAMS = frozenset({"prompt", "negative_prompt", "image", "input_image", "mask"})
# gradio_client speaks through httpx; all of these are reported as one family, "script".
_SCRIPT_TOKENS = (
    "python-httpx",
    "python-requests",
    "python-urllib",
    "curl/",
    "wget/",
    "gradio_client",
)
# A locked database may delay a request by at most this long before the row is dropped.
_BUSY_TIMEOUT_S = 0.5

_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    id INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    day TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    params TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    browser TEXT NOT NULL,
    os TEXT NOT NULL,
    ip_hash TEXT NOT NULL,
    pseudonym TEXT NOT NULL,
    prompt TEXT NULL
);
CREATE INDEX IF NOT EXISTS usage_pseudonym ON usage (pseudonym);
CREATE INDEX IF NOT EXISTS usage_ts ON usage (ts);
CREATE TABLE IF NOT EXISTS daily_aggregates (
    day TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    outcome TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (day, endpoint, outcome)
);
"""
_COLUMNS = (
    "id",
    "ts",
    "day",
    "endpoint",
    "params",
    "duration_ms",
    "outcome",
    "browser",
    "os",
    "ip_hash",
    "pseudonym",
    "prompt",
)
_AGGREGATE_COLUMNS = ("day", "endpoint", "outcome", "count")
_FOLD_INTO_AGGREGATES = """
INSERT INTO daily_aggregates (day, endpoint, outcome, count)
SELECT day, endpoint, outcome, COUNT(*) FROM usage WHERE ts < ? GROUP BY day, endpoint, outcome
ON CONFLICT (day, endpoint, outcome) DO UPDATE SET count = count + excluded.count
"""
_INSERT = f"INSERT INTO usage ({', '.join(_COLUMNS[1:])}) VALUES ({', '.join('?' * 11)})"


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def _utc(moment: datetime) -> datetime:
    # A naive datetime from an injected clock is taken to be UTC already.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _iso(moment: datetime) -> str:
    # One fixed format so that timestamps compare correctly as text.
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class UsageEvent:
    """What happened in one request; reduced to what may be stored by `UsageLog.record`."""

    endpoint: str
    params: Mapping[str, Any]
    duration_s: float
    outcome: str
    user_agent: str
    client_ip: str
    pseudonym: str
    prompt: str | None = None


def browser_family(user_agent: str) -> str:
    """Reduce a user-agent string to a coarse browser family, or "script" for HTTP clients."""
    ua = user_agent.lower()
    # Order matters: Edge and Opera also claim Chrome, and Chrome also claims Safari.
    for tokens, family in (
        (_SCRIPT_TOKENS, "script"),
        (("edg/", "edge/", "edga/", "edgios/"), "Edge"),
        (("opr/", "opera"), "Opera"),
        (("firefox/", "fxios/"), "Firefox"),
        (("chrome/", "chromium/", "crios/"), "Chrome"),
        (("safari/",), "Safari"),
    ):
        if any(token in ua for token in tokens):
            return family
    return "other"


def os_family(user_agent: str) -> str:
    """Reduce a user-agent string to a coarse operating-system family."""
    ua = user_agent.lower()
    # Order matters: Android says Linux, iOS says "like Mac OS X", ChromeOS says X11.
    for tokens, family in (
        (("android",), "Android"),
        (("iphone", "ipad", "ipod"), "iOS"),
        (("cros ",), "ChromeOS"),
        (("windows",), "Windows"),
        (("macintosh", "mac os x"), "macOS"),
        (("linux",), "Linux"),
    ):
        if any(token in ua for token in tokens):
            return family
    return "other"


class IpHasher:
    """HMAC-SHA256 of the IP with a random salt that rotates each UTC day, kept only in memory."""

    def __init__(self, clock: Callable[[], datetime] = utc_now) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._day: date | None = None
        self._salt = b""

    def hash(self, ip: str) -> str:
        """16 hex characters: equal for one IP within a UTC day, unlinkable across days."""
        today = _utc(self._clock()).date()
        with self._lock:
            if today != self._day:
                self._day, self._salt = today, secrets.token_bytes(32)
            salt = self._salt
        return hmac.new(salt, ip.encode(), hashlib.sha256).hexdigest()[:16]


def _storable_params(params: Mapping[str, Any]) -> dict[str, Any]:
    # Scalars only: images, arrays and the like never reach the store.
    return {
        str(key): value
        for key, value in params.items()
        if str(key).lower() not in _FORBIDDEN_PARAMS
        and (value is None or isinstance(value, (bool, int, float, str)))
    }


class UsageLog:
    """Per-request usage rows in SQLite with retention; an unusable store makes it a no-op."""

    def __init__(
        self,
        path: Path,
        retention_days: int = 90,
        log_prompts: bool = False,
        clock: Callable[[], datetime] = utc_now,
        ip_hasher: IpHasher | None = None,
    ) -> None:
        if retention_days < 0:
            raise ValueError(f"retention_days must be >= 0, got {retention_days}")
        self.path = Path(path)
        self.retention_days = retention_days
        self.log_prompts = log_prompts
        self._clock = clock
        self._ip_hasher = ip_hasher or IpHasher(clock)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._retention_thread: threading.Thread | None = None
        self._conn = self._open()

    def _open(self) -> sqlite3.Connection | None:
        conn = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            # secure_delete zeroes deleted rows in the file. A rollback journal (not WAL) is deleted
            # at each commit, so no old copy of a deleted row lingers in a -wal file either.
            conn.execute("PRAGMA secure_delete = ON")
            conn.execute("PRAGMA journal_mode = DELETE")
            conn.executescript(_SCHEMA)
            return conn
        except (sqlite3.Error, OSError) as exc:
            log.warning("Usage log unavailable at %s: %s", self.path, exc)
            if conn is not None:
                conn.close()
            return None

    @property
    def available(self) -> bool:
        """Whether the store is open; when False every method is a no-op."""
        return self._conn is not None

    def record(self, event: UsageEvent) -> bool:
        """Store one row for `event`; False (and a warning) when it could not be stored."""
        with self._lock:
            if self._conn is None:
                return False
            try:
                now = self._clock()
                row = (
                    _iso(now),
                    _utc(now).date().isoformat(),
                    event.endpoint,
                    json.dumps(_storable_params(event.params), sort_keys=True),
                    round(event.duration_s * 1000),
                    event.outcome,
                    browser_family(event.user_agent),
                    os_family(event.user_agent),
                    self._ip_hasher.hash(event.client_ip),
                    event.pseudonym,
                    event.prompt if self.log_prompts else None,
                )
                self._conn.execute(_INSERT, row)
                return True
            except Exception as exc:  # noqa: BLE001 - analytics must never break a request
                log.warning("Usage row not recorded: %s", exc)
                return False

    def rows_for(self, pseudonym: str) -> list[dict[str, Any]]:
        """That pseudonym's rows, oldest first, with params decoded."""
        # An empty pseudonym would match every visitor without one: it never matches.
        if not pseudonym:
            return []
        with self._lock:
            if self._conn is None:
                return []
            try:
                cursor = self._conn.execute(
                    f"SELECT {', '.join(_COLUMNS)} FROM usage WHERE pseudonym = ? ORDER BY ts, id",
                    (pseudonym,),
                )
                rows = [dict(zip(_COLUMNS, values)) for values in cursor]
            except sqlite3.Error as exc:
                log.warning("Usage rows not read: %s", exc)
                return []
        for row in rows:
            row["params"] = json.loads(row["params"])
        return rows

    def export_json(self, pseudonym: str) -> str:
        """A JSON document with everything stored for that pseudonym."""
        document = {
            "pseudonym": pseudonym,
            "exported_at": _iso(self._clock()),
            "rows": self.rows_for(pseudonym),
        }
        return json.dumps(document, indent=2)

    def delete_for(self, pseudonym: str) -> int:
        """Delete every row of that pseudonym; returns how many."""
        if not pseudonym:
            return 0
        with self._lock:
            if self._conn is None:
                return 0
            try:
                cursor = self._conn.execute("DELETE FROM usage WHERE pseudonym = ?", (pseudonym,))
                return cursor.rowcount
            except sqlite3.Error as exc:
                log.warning("Usage rows not deleted: %s", exc)
                return 0

    def purge_expired(self) -> int:
        """Fold rows older than the retention period into daily counts, then delete them."""
        cutoff = _iso(self._clock() - timedelta(days=self.retention_days))
        with self._lock:
            if self._conn is None:
                return 0
            try:
                with self._conn:  # one transaction: commit on success, roll back on error
                    self._conn.execute("BEGIN IMMEDIATE")
                    self._conn.execute(_FOLD_INTO_AGGREGATES, (cutoff,))
                    return self._conn.execute("DELETE FROM usage WHERE ts < ?", (cutoff,)).rowcount
            except sqlite3.Error as exc:
                log.warning("Usage log purge failed: %s", exc)
                return 0

    def aggregates(self) -> list[dict[str, Any]]:
        """Daily counts per endpoint and outcome, oldest day first."""
        with self._lock:
            if self._conn is None:
                return []
            try:
                cursor = self._conn.execute(
                    f"SELECT {', '.join(_AGGREGATE_COLUMNS)} FROM daily_aggregates"
                    " ORDER BY day, endpoint, outcome"
                )
                return [dict(zip(_AGGREGATE_COLUMNS, values)) for values in cursor]
            except sqlite3.Error as exc:
                log.warning("Usage aggregates not read: %s", exc)
                return []

    def close(self) -> None:
        """Stop the retention job and close the store; the log is unavailable afterwards."""
        self.stop_retention_job()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def start_retention_job(self, interval_s: float = 3600.0) -> None:
        """Purge now and then every `interval_s` seconds in a daemon thread."""
        if self._retention_thread is not None and self._retention_thread.is_alive():
            return
        self._stop.clear()

        def run() -> None:
            while True:
                self.purge_expired()
                if self._stop.wait(interval_s):
                    return

        self._retention_thread = threading.Thread(
            target=run, name="usage-log-retention", daemon=True
        )
        self._retention_thread.start()

    def stop_retention_job(self) -> None:
        """Stop the retention thread, if running, and wait briefly for it."""
        self._stop.set()
        if self._retention_thread is not None:
            self._retention_thread.join(timeout=5)
            self._retention_thread = None
