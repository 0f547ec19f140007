"""Where usage rows are kept: the small interface UsageLog writes through, and its SQLite store.

A store does no policy: UsageLog decides what a row holds (analytics.py), when it is written
(off the request path) and what to do when the store fails. Store methods raise on failure;
they are called one at a time (UsageLog serialises them), from any thread.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

# A locked database may hold the log's writer (never a request) this long before a batch fails.
_BUSY_TIMEOUT_S = 0.5


@dataclass(frozen=True)
class UsageRow:
    """One request as stored: already reduced to what the policy allows."""

    ts: str  # UTC, "%Y-%m-%dT%H:%M:%S.%fZ": compares correctly as text
    day: str
    endpoint: str
    params: str  # JSON object of scalars
    duration_ms: int
    outcome: str
    browser: str
    os: str
    ip_hash: str
    pseudonym: str
    prompt: str | None


COLUMNS = ("id", *(f.name for f in fields(UsageRow)))
AGGREGATE_COLUMNS = ("day", "endpoint", "outcome", "count")


class UsageStore(Protocol):
    def insert(self, rows: Sequence[UsageRow]) -> None:
        """Add the rows, all or none."""

    def rows_for(self, pseudonym: str) -> list[dict[str, Any]]:
        """That pseudonym's rows, oldest first, keyed by COLUMNS (params as stored)."""

    def delete_for(self, pseudonym: str) -> int:
        """Delete that pseudonym's rows; how many."""

    def purge_before(self, cutoff_ts: str) -> int:
        """Add rows older than cutoff_ts to the daily counts, then delete them; how many."""

    def aggregates(self) -> list[dict[str, Any]]:
        """Daily counts keyed by AGGREGATE_COLUMNS, oldest day first."""

    def close(self) -> None: ...


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
_INSERT = (
    f"INSERT INTO usage ({', '.join(COLUMNS[1:])}) VALUES ({', '.join('?' * (len(COLUMNS) - 1))})"
)
# The SQL statements, one place each (SQL is case-insensitive: no spelling of it is a promise).
_PRAGMAS = (
    # secure_delete zeroes deleted rows in the file. A rollback journal (not WAL) is deleted at
    # each commit, so no old copy of a deleted row lingers in a -wal file.
    "PRAGMA secure_delete = ON",
    "PRAGMA journal_mode = DELETE",
)
_BEGIN = "BEGIN"
_BEGIN_WRITING = "BEGIN IMMEDIATE"
_SELECT_FOR = f"SELECT {', '.join(COLUMNS)} FROM usage WHERE pseudonym = ? ORDER BY ts, id"
_DELETE_FOR = "DELETE FROM usage WHERE pseudonym = ?"
_DELETE_BEFORE = "DELETE FROM usage WHERE ts < ?"
_SELECT_AGGREGATES = (
    f"SELECT {', '.join(AGGREGATE_COLUMNS)} FROM daily_aggregates ORDER BY day, endpoint, outcome"
)
_FOLD_INTO_AGGREGATES = """
INSERT INTO daily_aggregates (day, endpoint, outcome, count)
SELECT day, endpoint, outcome, COUNT(*) FROM usage WHERE ts < ? GROUP BY day, endpoint, outcome
ON CONFLICT (day, endpoint, outcome) DO UPDATE SET count = count + excluded.count
"""


class SqliteUsageStore:
    """The usage log in one SQLite file; deleted rows are overwritten, not only unlinked."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @classmethod
    def open(cls, path: Path) -> SqliteUsageStore | None:
        """The store at `path` (made if missing), or None and a warning if it cannot be used."""
        conn = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            for pragma in _PRAGMAS:
                conn.execute(pragma)
            conn.executescript(_SCHEMA)
            return cls(conn)
        except (sqlite3.Error, OSError) as exc:
            log.warning("Usage log unavailable at %s: %s", path, exc)
            if conn is not None:
                conn.close()
            return None

    def insert(self, rows: Sequence[UsageRow]) -> None:
        with self._conn:  # one transaction: commit on success, roll back on error
            self._conn.execute(_BEGIN)
            self._conn.executemany(_INSERT, [astuple(row) for row in rows])

    def rows_for(self, pseudonym: str) -> list[dict[str, Any]]:
        cursor = self._conn.execute(_SELECT_FOR, (pseudonym,))
        return [dict(zip(COLUMNS, values)) for values in cursor]

    def delete_for(self, pseudonym: str) -> int:
        return self._conn.execute(_DELETE_FOR, (pseudonym,)).rowcount

    def purge_before(self, cutoff_ts: str) -> int:
        with self._conn:
            self._conn.execute(_BEGIN_WRITING)
            self._conn.execute(_FOLD_INTO_AGGREGATES, (cutoff_ts,))
            return self._conn.execute(_DELETE_BEFORE, (cutoff_ts,)).rowcount

    def aggregates(self) -> list[dict[str, Any]]:
        cursor = self._conn.execute(_SELECT_AGGREGATES)
        return [dict(zip(AGGREGATE_COLUMNS, values)) for values in cursor]

    def close(self) -> None:
        self._conn.close()
