"""The per-visitor rate limit counted across replicas, in the shared PostgreSQL database.

One call per request (`zimage_admit`, one round trip) counts the request and answers whether it
may run; the row lock it takes makes a visitor's requests on different replicas count one after
another. The visitor is a keyed hash of the address, never the address: the key is derived from
the operator's secret, which every replica already has, so it is the same on every replica and
is never written to the database or to disk.

Its commits do not wait for the disk (`synchronous_commit=off` on its own connection): a
database crash may forget the last fraction of a second of counts, which only lets a few
requests more through, and each round trip is about half as long (BENCHMARKS.md).

When the database does not answer within ZIMAGE_RATE_LIMIT_WAIT_MS (down, slow, reconnecting),
the replica counts the request in its own memory instead (RateLimiter), so a request is never
failed or held up by the database.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

import psycopg

from zimage.guards.client_address import AddressKey
from zimage.guards.rate_limit import WINDOW_S, RateLimiter
from zimage.privacy.policy import derive_key
from zimage.replicas.connection import Lane

log = logging.getLogger(__name__)

# At most one warning about counting locally this often.
_FALLBACK_WARNING_INTERVAL_S = 60.0


def rate_limit_lane(
    url: str,
    *,
    timeout_s: float,
    on_connect: Callable[[psycopg.Connection], None] | None = None,
) -> Lane:
    """The connection a replica counts requests on (commits not waiting for the disk); a
    request waits at most `timeout_s` for its count before it is counted locally."""
    return Lane(url, "rate limit", timeout_s, on_connect=on_connect, synchronous_commit=False)


class SharedRateLimiter(RateLimiter):
    """RateLimiter whose count lives in PostgreSQL; its own memory is the fallback."""

    def __init__(
        self,
        per_minute: int,
        lane: Lane,
        secret: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(per_minute, clock)
        self._lane = lane
        self._shared_key = AddressKey(derive_key(secret, "rate-limit visitor hash"))
        self.fallbacks = 0  # requests counted locally because the database did not answer
        self._last_warning = -_FALLBACK_WARNING_INTERVAL_S

    def admit(self, client_address: str) -> None:
        if not self.enabled:
            return
        visitor = self._shared_key(client_address)

        def work(connection: psycopg.Connection) -> float:
            row = connection.execute(
                "SELECT zimage_admit(%s, %s, %s)",
                (visitor, self.per_minute, timedelta(seconds=WINDOW_S)),
            ).fetchone()
            return float(row[0]) if row else 0.0

        try:
            wait_s = self._lane.call(work)
        except Exception as error:  # noqa: BLE001 - any failure: count here instead
            self._count_locally(error)
            super().admit(client_address)
            return
        if wait_s > 0:
            raise self.refusal(wait_s)

    def close(self) -> None:
        self._lane.close()

    def _count_locally(self, error: Exception) -> None:
        self.fallbacks += 1
        now = time.monotonic()
        if now - self._last_warning >= _FALLBACK_WARNING_INTERVAL_S:
            self._last_warning = now
            log.warning(
                "Rate limit counted on this replica only (%s); %d requests so far",
                error,
                self.fallbacks,
            )
