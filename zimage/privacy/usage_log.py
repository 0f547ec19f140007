"""Consent-aware usage log: coarse browser data, hashed IPs, retention, export and delete.

Callers decide consent (see `privacy.analytics_allowed`) before calling `UsageLog.record`.
Raw IP addresses and user-agent strings never reach the store or the log messages. Rows are
written by one background thread through a bounded buffer in memory, so a slow or locked store
never delays a request. While the store fails (a shared database that is down or unreachable)
the rows wait in that buffer, in this process's memory only, and are written when it answers
again; "delete my data" deletes from the buffer at once and, from the store, as soon as it
answers (`deletion_waiting` tells). Only rows past the bound (MAX_PENDING_ROWS) are dropped,
counted and logged; so are rows still waiting when the process stops.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from zimage.privacy.usage_store import SqliteUsageStore, UsageRow, UsageStore

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
# Rows waiting for the writer (or for a store that is away); past this many a new row is
# dropped (and counted).
MAX_PENDING_ROWS = 10_000
# Visitors whose stored rows are still to be deleted when the store answers again, at most.
MAX_DELETIONS_WAITING = 10_000
# At most one warning about dropped rows this often (the count is exact regardless).
_DROP_WARNING_INTERVAL_S = 10.0
# After a failed write the writer waits this long (rows keep queueing), so that it neither
# hammers a locked store nor keeps readers and deleters from it.
_RETRY_AFTER_FAILURE_S = 1.0


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
    """Per-request usage rows with retention, written off the request path.

    `store` is a UsageStore, or the path of a SQLite file. Without a usable store every method
    is a no-op. Store operations run one at a time under one lock, so a reader or a deleter
    always sees every row either still queued or already stored, never in flight.
    """

    def __init__(
        self,
        store: UsageStore | Path | str | None,
        retention_days: int = 90,
        log_prompts: bool = False,
        clock: Callable[[], datetime] = utc_now,
        ip_hasher: IpHasher | None = None,
        max_pending: int = MAX_PENDING_ROWS,
    ) -> None:
        if retention_days < 0:
            raise ValueError(f"retention_days must be >= 0, got {retention_days}")
        if isinstance(store, (str, os.PathLike)):
            store = SqliteUsageStore.open(Path(store))
        self.retention_days = retention_days
        self.log_prompts = log_prompts
        self.max_pending = max_pending
        self.dropped = 0  # rows never stored: the buffer was full, or the process stopped
        self._clock = clock
        self._ip_hasher = ip_hasher or IpHasher(clock)
        self._store: UsageStore | None = store
        self._store_lock = threading.Lock()  # one store operation at a time
        self._pending: deque[UsageRow] = deque()
        # Pseudonyms whose stored rows the store has still to delete (it failed when asked).
        self._deletions_waiting: dict[str, None] = {}
        self._store_failing = False
        self._pending_changed = threading.Condition()  # guards the above, _closing, dropped
        self._closing = False
        self._last_drop_warning = -_DROP_WARNING_INTERVAL_S
        self._stop = threading.Event()
        self._retention_thread: threading.Thread | None = None
        self._writer: threading.Thread | None = None
        if store is not None:
            self._writer = threading.Thread(
                target=self._write_until_closed, name="usage-log-writer", daemon=True
            )
            self._writer.start()

    @property
    def available(self) -> bool:
        """Whether a store is open; when False every method is a no-op."""
        return self._store is not None

    @property
    def pending(self) -> int:
        """Rows waiting for the writer."""
        with self._pending_changed:
            return len(self._pending)

    @property
    def store_away(self) -> bool:
        """Whether the last write failed: rows wait in memory until the store answers."""
        with self._pending_changed:
            return self._store_failing

    def deletion_waiting(self, pseudonym: str) -> bool:
        """Whether that pseudonym's stored rows are still to be deleted when the store is back
        (the rows in the buffer are deleted already)."""
        with self._pending_changed:
            return pseudonym in self._deletions_waiting

    def record(self, event: UsageEvent) -> bool:
        """Queue one row for `event` and return at once; False when it is dropped."""
        if self._store is None:
            return False
        try:
            row = self._row(event)
        except Exception as exc:  # noqa: BLE001 - analytics must never break a request
            log.warning("Usage row not recorded: %s", exc)
            return False
        with self._pending_changed:
            if self._closing or len(self._pending) >= self.max_pending:
                self._count_dropped(1, "the queue is full" if not self._closing else "closed")
                return False
            self._pending.append(row)
            self._pending_changed.notify()
        return True

    def _row(self, event: UsageEvent) -> UsageRow:
        now = self._clock()
        return UsageRow(
            ts=_iso(now),
            day=_utc(now).date().isoformat(),
            endpoint=event.endpoint,
            params=json.dumps(_storable_params(event.params), sort_keys=True),
            duration_ms=round(event.duration_s * 1000),
            outcome=event.outcome,
            browser=browser_family(event.user_agent),
            os=os_family(event.user_agent),
            ip_hash=self._ip_hasher.hash(event.client_ip),
            pseudonym=event.pseudonym,
            prompt=event.prompt if self.log_prompts else None,
        )

    def rows_for(self, pseudonym: str) -> list[dict[str, Any]]:
        """That pseudonym's rows (those still queued too), oldest first, params decoded."""
        # An empty pseudonym would match every visitor without one: it never matches.
        if not pseudonym:
            return []
        with self._store_lock:
            self._write_pending()
            if self._store is None:
                return []
            try:
                rows = self._store.rows_for(pseudonym)
            except Exception as exc:  # noqa: BLE001 - any store's failure is only logged
                log.warning("Usage rows not read: %s", exc)
                rows = []
            with self._pending_changed:  # left over only when the store just failed
                queued = [r for r in self._pending if r.pseudonym == pseudonym]
        rows.extend({"id": None, **vars(row)} for row in queued)
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
        """Delete every row of that pseudonym, stored or still queued; returns how many were
        deleted now. If the store fails, its rows are deleted as soon as it answers again
        (`deletion_waiting` says so meanwhile)."""
        if not pseudonym:
            return 0
        with self._store_lock:
            with self._pending_changed:
                kept = [r for r in self._pending if r.pseudonym != pseudonym]
                deleted = len(self._pending) - len(kept)
                self._pending = deque(kept)
            if self._store is None:
                return deleted
            try:
                return deleted + self._store.delete_for(pseudonym)
            except Exception as exc:  # noqa: BLE001
                log.warning("Usage rows not deleted yet (%s): deleted when the store is back", exc)
                with self._pending_changed:
                    self._deletions_waiting[pseudonym] = None
                    while len(self._deletions_waiting) > MAX_DELETIONS_WAITING:
                        oldest = next(iter(self._deletions_waiting))
                        del self._deletions_waiting[oldest]
                        log.warning("Usage log: a waiting deletion was forgotten (too many)")
                    self._pending_changed.notify()
                return deleted

    def purge_expired(self) -> int:
        """Fold rows older than the retention period into daily counts, then delete them."""
        cutoff = _iso(self._clock() - timedelta(days=self.retention_days))
        with self._store_lock:
            self._write_pending()
            if self._store is None:
                return 0
            try:
                return self._store.purge_before(cutoff)
            except Exception as exc:  # noqa: BLE001
                log.warning("Usage log purge failed: %s", exc)
                return 0

    def aggregates(self) -> list[dict[str, Any]]:
        """Daily counts per endpoint and outcome, oldest day first."""
        with self._store_lock:
            self._write_pending()
            if self._store is None:
                return []
            try:
                return self._store.aggregates()
            except Exception as exc:  # noqa: BLE001
                log.warning("Usage aggregates not read: %s", exc)
                return []

    def flush(self) -> None:
        """Store what is queued now, on the caller's thread (the writer would in a moment):
        every row recorded before the call is in the store when it returns."""
        with self._store_lock:
            self._write_pending()

    def close(self) -> None:
        """Write what is queued, stop the threads and close the store; a no-op log remains.

        Bounded: at most the batch the writer has in hand and one more write, each limited
        by the store's own timeout (0.5 s for a locked SQLite file).
        """
        self.stop_retention_job()
        with self._pending_changed:
            self._closing = True
            self._pending_changed.notify()
        if self._writer is not None:
            self._writer.join()
            self._writer = None
        with self._store_lock:
            self._write_pending()
            with self._pending_changed:
                if self._pending:
                    self._count_dropped(len(self._pending), "the store is away at shutdown")
                    self._pending.clear()
                if self._deletions_waiting:
                    log.warning(
                        "Usage log closed with %d deletions not done: the store was away",
                        len(self._deletions_waiting),
                    )
            if self._store is not None:
                self._store.close()
                self._store = None
        if self.dropped:
            log.warning("Usage log closed: %d rows were dropped since start", self.dropped)

    # -- the writer -----------------------------------------------------------------------------

    def _write_until_closed(self) -> None:
        while True:
            with self._pending_changed:
                while not (self._pending or self._deletions_waiting or self._closing):
                    self._pending_changed.wait()
                if self._closing:
                    return  # close() writes what is left
            with self._store_lock:
                written = self._write_pending()
            if not written:
                with self._pending_changed:
                    self._pending_changed.wait_for(lambda: self._closing, _RETRY_AFTER_FAILURE_S)

    def _write_pending(self) -> bool:
        """Do the deletions waiting, then write every queued row in one batch (the caller
        holds the store lock); False if the store failed: the rows stay queued, in order."""
        if self._store is None:
            return True
        with self._pending_changed:
            deletions = list(self._deletions_waiting)
            batch = list(self._pending)
            self._pending.clear()
        try:
            for pseudonym in deletions:
                self._store.delete_for(pseudonym)
                with self._pending_changed:
                    self._deletions_waiting.pop(pseudonym, None)
            if batch:
                self._store.insert(batch)
        except Exception as exc:  # noqa: BLE001 - the rows wait for the store to come back
            with self._pending_changed:
                self._pending.extendleft(reversed(batch))
                over = len(self._pending) - self.max_pending
                for _ in range(max(0, over)):
                    self._pending.pop()  # the newest: rows recorded while this write failed
                if over > 0:
                    self._count_dropped(over, "the queue is full")
                self._note_store_away(exc)
            return False
        if self._store_failing:
            with self._pending_changed:
                self._store_failing = False
            log.info(
                "Usage log: the store answers again; %d rows written, %d deletions done",
                len(batch),
                len(deletions),
            )
        return True

    def _note_store_away(self, error: Exception) -> None:
        # The caller holds _pending_changed. Never the rows' content in the message.
        if not self._store_failing:
            self._store_failing = True
            log.warning(
                "Usage log: the store failed (%s); rows wait in memory (at most %d) until it "
                "answers again",
                error,
                self.max_pending,
            )

    def _count_dropped(self, count: int, reason: str) -> None:
        # The caller holds _pending_changed. Never the rows' content in the message.
        self.dropped += count
        now = time.monotonic()
        if now - self._last_drop_warning >= _DROP_WARNING_INTERVAL_S:
            self._last_drop_warning = now
            log.warning(
                "Usage log: %d row(s) dropped (%s); %d dropped since start",
                count,
                reason,
                self.dropped,
            )

    # -- retention ------------------------------------------------------------------------------

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
