"""The shared PostgreSQL database's tables, created and migrated when a replica connects.

Each migration runs once, in order, in one transaction under an advisory lock, so replicas that
start together neither race nor apply a step twice; `zimage_schema` holds the version reached.
The usage tables hold the same columns as the SQLite file (zimage/privacy/usage_store.py), timestamps
included as the same text, so rows, exports and aggregates read the same from either store.
"""

from __future__ import annotations

import logging
import threading

import psycopg

log = logging.getLogger(__name__)

# pg_advisory_xact_lock keys: any two fixed numbers unlikely to be used by other programs.
SCHEMA_LOCK = 0x7A696D6167650001
RETENTION_LOCK = 0x7A696D6167650002

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the usage log, as in SQLite.
    (
        """CREATE TABLE usage (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            ts text NOT NULL,
            day text NOT NULL,
            endpoint text NOT NULL,
            params text NOT NULL,
            duration_ms integer NOT NULL,
            outcome text NOT NULL,
            browser text NOT NULL,
            os text NOT NULL,
            ip_hash text NOT NULL,
            pseudonym text NOT NULL,
            prompt text NULL
        )""",
        "CREATE INDEX usage_pseudonym ON usage (pseudonym)",
        "CREATE INDEX usage_ts ON usage (ts)",
        """CREATE TABLE daily_aggregates (
            day text NOT NULL,
            endpoint text NOT NULL,
            outcome text NOT NULL,
            count bigint NOT NULL,
            PRIMARY KEY (day, endpoint, outcome)
        )""",
    ),
    # 2: what replicas share besides the log. Deleted rows are vacuumed away as soon as
    # autovacuum next looks (about a minute), not when a fifth of the table is dead.
    (
        """ALTER TABLE usage SET (autovacuum_vacuum_threshold = 0,
            autovacuum_vacuum_scale_factor = 0, vacuum_index_cleanup = on)""",
        # One row per visitor (a keyed hash of the address): the times of their requests in
        # the last minute.
        """CREATE TABLE rate_limits (
            visitor text PRIMARY KEY,
            hits timestamptz[] NOT NULL,
            last_at timestamptz NOT NULL
        )""",
        "CREATE INDEX rate_limits_last_at ON rate_limits (last_at)",
        # The sliding-minute limit as one call (one round trip): 0 when admitted, else the
        # seconds to wait. The row lock serialises one visitor's requests across replicas.
        """CREATE FUNCTION zimage_admit(p_visitor text, p_limit integer, p_window interval)
        RETURNS double precision LANGUAGE plpgsql AS $$
        DECLARE
            recent timestamptz[];
        BEGIN
            -- Taking the visitor's row (made if new) locks it until this call ends.
            INSERT INTO rate_limits AS r (visitor, hits, last_at) VALUES (p_visitor, '{}', now())
            ON CONFLICT (visitor) DO UPDATE SET visitor = excluded.visitor
            RETURNING ARRAY(SELECT h FROM unnest(r.hits) AS h WHERE h > now() - p_window ORDER BY h)
            INTO recent;
            IF cardinality(recent) >= p_limit THEN
                UPDATE rate_limits SET hits = recent WHERE visitor = p_visitor;
                RETURN greatest(extract(epoch FROM recent[1] + p_window - now()), 0.001);
            END IF;
            UPDATE rate_limits SET hits = recent || now(), last_at = now()
            WHERE visitor = p_visitor;
            RETURN 0;
        END $$""",
        # "Delete my data" on one replica, noted for the replicas that miss its notification.
        """CREATE TABLE deleted_visitors (
            pseudonym text NOT NULL,
            noted_at timestamptz NOT NULL DEFAULT now()
        )""",
        "CREATE INDEX deleted_visitors_noted_at ON deleted_visitors (noted_at)",
    ),
    # 3: the rate limit counts images: a request for `p_count` images is admitted only when
    # the minute has room for all of them. (Version 2's three-argument function stays for
    # replicas of the previous version during a rolling update.)
    (
        """CREATE FUNCTION zimage_admit(
            p_visitor text, p_limit integer, p_window interval, p_count integer
        ) RETURNS double precision LANGUAGE plpgsql AS $$
        DECLARE
            recent timestamptz[];
            over integer;
        BEGIN
            INSERT INTO rate_limits AS r (visitor, hits, last_at) VALUES (p_visitor, '{}', now())
            ON CONFLICT (visitor) DO UPDATE SET visitor = excluded.visitor
            RETURNING ARRAY(SELECT h FROM unnest(r.hits) AS h WHERE h > now() - p_window ORDER BY h)
            INTO recent;
            over := cardinality(recent) + p_count - p_limit;
            IF over > 0 THEN
                UPDATE rate_limits SET hits = recent WHERE visitor = p_visitor;
                -- Room comes when the over-th oldest image leaves the window.
                RETURN greatest(extract(epoch FROM recent[over] + p_window - now()), 0.001);
            END IF;
            UPDATE rate_limits
            SET hits = recent || array_fill(now(), ARRAY[p_count]), last_at = now()
            WHERE visitor = p_visitor;
            RETURN 0;
        END $$""",
    ),
)
LATEST = len(MIGRATIONS)


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer version of the Space."""


class Schema:
    """Brings a database to the latest version once per process, on the first connection that
    asks (later connections return at once)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current = False

    def ensure(self, connection: psycopg.Connection) -> None:
        with self._lock:
            if not self._current:
                migrate(connection)
                self._current = True


def migrate(connection: psycopg.Connection) -> int:
    """Apply the migrations this database lacks; the version it had before."""
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        connection.execute("CREATE TABLE IF NOT EXISTS zimage_schema (version integer NOT NULL)")
        row = connection.execute("SELECT max(version) FROM zimage_schema").fetchone()
        before = (row[0] if row else None) or 0
        if before > LATEST:
            raise SchemaTooNew(
                f"the usage database is at schema version {before}; this Space knows {LATEST}"
            )
        for version in range(before + 1, LATEST + 1):
            for statement in MIGRATIONS[version - 1]:
                connection.execute(statement)
        if before < LATEST:
            connection.execute("DELETE FROM zimage_schema")
            connection.execute("INSERT INTO zimage_schema (version) VALUES (%s)", (LATEST,))
            log.info("usage database migrated from schema version %d to %d", before, LATEST)
    return before
