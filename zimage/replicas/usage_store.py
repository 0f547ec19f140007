"""The usage log in a PostgreSQL database that several replicas share (ZIMAGE_USAGE_DB).

The same rows as the SQLite store, behind the same UsageStore interface: UsageLog decides what a
row holds and writes it off the request path. Retention folds and deletes under an advisory
lock, so one replica at a time does it and no row is counted twice in the daily aggregates.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import astuple
from typing import Any

import psycopg

from zimage.privacy.usage_store import AGGREGATE_COLUMNS, COLUMNS, UsageRow
from zimage.replicas.connection import Lane
from zimage.replicas.schema import RETENTION_LOCK

log = logging.getLogger(__name__)

# The log's writer and "your data" wait at most this long for the database.
STORE_TIMEOUT_S = 5.0
# Retention of a large backlog may take long; it runs on a timer, never for a request.
RETENTION_TIMEOUT_S = 600.0

_INSERT = (
    f"INSERT INTO usage ({', '.join(COLUMNS[1:])}) "
    f"VALUES ({', '.join(['%s'] * (len(COLUMNS) - 1))})"
)
_FOLD_INTO_AGGREGATES = """
INSERT INTO daily_aggregates (day, endpoint, outcome, count)
SELECT day, endpoint, outcome, COUNT(*) FROM usage WHERE ts < %s GROUP BY day, endpoint, outcome
ON CONFLICT (day, endpoint, outcome) DO UPDATE SET count = daily_aggregates.count + excluded.count
"""


class PostgresUsageStore:
    """UsageStore on a Lane: every method raises DatabaseUnavailable (or a psycopg error) when
    the database cannot answer in time."""

    def __init__(self, lane: Lane) -> None:
        self._lane = lane

    def insert(self, rows: Sequence[UsageRow]) -> None:
        values = [astuple(row) for row in rows]

        def work(connection: psycopg.Connection) -> None:
            with connection.transaction(), connection.cursor() as cursor:
                cursor.executemany(_INSERT, values)

        self._lane.call(work)

    def rows_for(self, pseudonym: str) -> list[dict[str, Any]]:
        def work(connection: psycopg.Connection) -> list[dict[str, Any]]:
            cursor = connection.execute(
                f"SELECT {', '.join(COLUMNS)} FROM usage WHERE pseudonym = %s ORDER BY ts, id",
                (pseudonym,),
            )
            return [dict(zip(COLUMNS, values)) for values in cursor]

        return self._lane.call(work)

    def delete_for(self, pseudonym: str) -> int:
        def work(connection: psycopg.Connection) -> int:
            return connection.execute(
                "DELETE FROM usage WHERE pseudonym = %s", (pseudonym,)
            ).rowcount

        return self._lane.call(work)

    def purge_before(self, cutoff_ts: str) -> int:
        """Fold and delete rows older than the cutoff, unless another replica is doing it now
        (then 0: its transaction covers the same rows)."""

        def work(connection: psycopg.Connection) -> int:
            with connection.transaction():
                locked = connection.execute(
                    "SELECT pg_try_advisory_xact_lock(%s)", (RETENTION_LOCK,)
                ).fetchone()
                if not (locked and locked[0]):
                    log.info("usage retention: another replica is running it")
                    return 0
                connection.execute(f"SET LOCAL statement_timeout = {int(RETENTION_TIMEOUT_S)}000")
                connection.execute(_FOLD_INTO_AGGREGATES, (cutoff_ts,))
                deleted = connection.execute(
                    "DELETE FROM usage WHERE ts < %s", (cutoff_ts,)
                ).rowcount
            log.info("usage retention: %d rows folded into the daily counts and deleted", deleted)
            return deleted

        return self._lane.call(work, timeout_s=RETENTION_TIMEOUT_S)

    def aggregates(self) -> list[dict[str, Any]]:
        def work(connection: psycopg.Connection) -> list[dict[str, Any]]:
            cursor = connection.execute(
                f"SELECT {', '.join(AGGREGATE_COLUMNS)} FROM daily_aggregates"
                " ORDER BY day, endpoint, outcome"
            )
            return [dict(zip(AGGREGATE_COLUMNS, values)) for values in cursor]

        return self._lane.call(work)

    def close(self) -> None:
        self._lane.close()
