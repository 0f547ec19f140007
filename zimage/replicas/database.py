"""Everything a replica keeps in the PostgreSQL database it shares with the other replicas.

Opened when ZIMAGE_USAGE_DB is a postgresql:// URL (docs/SCALING.md). A database that cannot
be reached at start does not stop the replica: it serves, drops usage rows (counted), counts the
rate limit in its own memory, and connects (creating or migrating the schema) when it can.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg

from zimage.replicas.connection import Lane, connect
from zimage.replicas.link import ReplicaLink
from zimage.replicas.rate_limit import SharedRateLimiter, rate_limit_lane
from zimage.replicas.schema import Schema
from zimage.replicas.usage_store import STORE_TIMEOUT_S, PostgresUsageStore
from zimage.settings import Settings, without_password

log = logging.getLogger(__name__)

_START_STATEMENT_TIMEOUT_MS = 30_000


@dataclass
class SharedDatabase:
    usage_store: PostgresUsageStore
    rate_limiter: SharedRateLimiter
    link: ReplicaLink

    @classmethod
    def open(cls, settings: Settings, secret: str) -> SharedDatabase:
        """The store, rate limiter and replica link on settings.usage_db; the schema created
        or migrated now if the database answers."""
        url = settings.usage_db
        schema = Schema()
        try:
            with connect(url, "start", _START_STATEMENT_TIMEOUT_MS) as connection:
                schema.ensure(connection)
            log.info("usage database: %s (shared by replicas)", without_password(url))
        except psycopg.Error as error:
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            log.warning(
                "usage database %s unavailable at start (%s): serving without it until it answers",
                without_password(url),
                reason,
            )
        usage_lane = Lane(url, "usage log", STORE_TIMEOUT_S, on_connect=schema.ensure)
        limit_lane = rate_limit_lane(
            url, timeout_s=settings.rate_limit_wait_ms / 1000, on_connect=schema.ensure
        )
        if settings.rate_per_min:
            # Connected before the first request, which would otherwise wait for it (and, past
            # the rate limit's short deadline, be counted on this replica only).
            limit_lane.connect_soon()
        return cls(
            usage_store=PostgresUsageStore(usage_lane),
            rate_limiter=SharedRateLimiter(settings.rate_per_min, limit_lane, secret),
            link=ReplicaLink(url, schema, note_lifetime_s=settings.output_ttl_s),
        )

    def close(self) -> None:
        self.link.close()
        self.rate_limiter.close()
        self.usage_store.close()
