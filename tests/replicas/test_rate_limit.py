"""The rate limit counted across replicas in a real PostgreSQL server, keyed by a hash that
replicas share without storing it; the replica's own count when the database fails."""

from __future__ import annotations

import threading

import psycopg
import pytest

from tests.launcher import WAIT_S, free_port, wait_until
from zimage.guards.rate_limit import RateLimited
from zimage.replicas.connection import Lane
from zimage.replicas.rate_limit import SharedRateLimiter, rate_limit_lane
from zimage.replicas.schema import Schema
from zimage.settings import Settings

SECRET = "an operator secret of at least thirty-two characters"
ADDRESS = "203.0.113.41"


def replica(url: str, per_minute: int, secret: str = SECRET, timeout_s: float = WAIT_S):
    """A replica's rate limiter; by default with a deadline no busy machine misses, so that
    every count is the database's."""
    lane = rate_limit_lane(url, on_connect=Schema().ensure, timeout_s=timeout_s)
    return SharedRateLimiter(per_minute, lane, secret)


@pytest.fixture
def database(postgres_server) -> str:
    return postgres_server.new_database()


def test_two_replicas_count_one_visitor_together(database: str) -> None:
    a, b = replica(database, 3), replica(database, 3)
    a.admit(ADDRESS)
    a.admit(ADDRESS)
    b.admit(ADDRESS)
    for limiter in (b, a):
        with pytest.raises(RateLimited, match=r"3 images a minute\. Try again in (59|60) s"):
            limiter.admit(ADDRESS)
    b.admit("203.0.113.42")  # another visitor has their own minute
    assert a.fallbacks == b.fallbacks == 0
    # The database holds keyed hashes, never an address; replicas with another secret (another
    # Space on the same database) count apart.
    with psycopg.connect(database) as connection:
        visitors = [row[0] for row in connection.execute("SELECT visitor FROM rate_limits")]
    assert len(visitors) == 2 and not any("203.0.113" in visitor for visitor in visitors)
    other_space = replica(database, 3, secret=SECRET.upper())
    other_space.admit(ADDRESS)
    for limiter in (a, b, other_space):
        limiter.close()


def test_requests_at_the_same_moment_on_both_replicas_never_exceed_the_limit(database) -> None:
    limiters = [replica(database, 4) for _ in range(2)]
    for limiter in limiters:
        limiter.admit("198.51.100.1")  # connected and migrated before the burst
    start = threading.Barrier(12)
    admitted: list[bool] = []

    def request(limiter: SharedRateLimiter) -> None:
        start.wait()
        try:
            limiter.admit(ADDRESS)
            admitted.append(True)
        except RateLimited:
            admitted.append(False)

    threads = [threading.Thread(target=request, args=(limiters[index % 2],)) for index in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert admitted.count(True) == 4 and len(admitted) == 12
    assert sum(limiter.fallbacks for limiter in limiters) == 0
    for limiter in limiters:
        limiter.close()


def test_an_unreachable_database_leaves_the_replica_its_own_count() -> None:
    limiter = replica(f"postgresql://nobody@127.0.0.1:{free_port()}/none", 2, timeout_s=0.25)
    limiter.admit(ADDRESS)
    limiter.admit(ADDRESS)
    with pytest.raises(RateLimited, match="2 images a minute"):
        limiter.admit(ADDRESS)
    assert limiter.fallbacks == 3
    limiter.close()


def test_a_stalled_database_never_holds_a_request_past_the_short_timeout(
    postgres_server, database
) -> None:
    limiter = replica(database, 5, timeout_s=Settings.rate_limit_wait_ms / 1000)
    limiter.admit(ADDRESS)  # connected (or, on a busy machine, counted here: not the point)
    counted_here_before = limiter.fallbacks
    with postgres_server.admin(database.rsplit("/", 1)[1]) as blocker:
        with blocker.transaction():
            blocker.execute("LOCK TABLE rate_limits IN ACCESS EXCLUSIVE MODE")
            # Both return while the table is still locked: neither waited for the database.
            limiter.admit(ADDRESS)  # waits the short timeout for the lock, then counts here
            limiter.admit(ADDRESS)  # the lane is still stuck: counted here at once
            assert limiter.fallbacks - counted_here_before == 2
    limiter.close()


def test_only_the_rate_limit_commits_without_waiting_for_the_disk(database) -> None:
    """Counts lost in a database crash only let a few requests more through; usage rows and
    deletions are committed to disk before a call returns."""

    def setting(lane: Lane) -> str:
        return lane.call(
            lambda connection: connection.execute("SHOW synchronous_commit").fetchone()[0]
        )

    rate_limit = rate_limit_lane(database, timeout_s=WAIT_S)
    usage_log = Lane(database, "usage log", WAIT_S)
    assert setting(rate_limit) == "off"
    assert setting(usage_log) == "on"
    rate_limit.close()
    usage_log.close()


def test_a_replica_connects_its_rate_limit_before_the_first_request(database) -> None:
    """The first request would otherwise wait for the connection, and past the short deadline
    be counted on this replica only."""
    from zimage.replicas.database import SharedDatabase

    settings = Settings.from_env(
        {"ZIMAGE_USAGE_DB": database, "ZIMAGE_BROWSER_SECRET": SECRET, "ZIMAGE_RATE_PER_MIN": "5"}
    )
    shared = SharedDatabase.open(settings, SECRET)

    def open_connections() -> list[str]:
        with psycopg.connect(database) as connection:
            rows = connection.execute(
                "SELECT application_name FROM pg_stat_activity WHERE datname = current_database()"
            ).fetchall()
        return sorted(name for (name,) in rows if name.startswith("zimage-space"))

    # Connected, the schema checked, while no request has come yet.
    wait_until(lambda: "zimage-space rate limit" in open_connections(), WAIT_S, "never connected")
    assert shared.rate_limiter.fallbacks == 0
    shared.close()


def test_the_operators_wait_reaches_the_replicas_rate_limit(postgres_server, database) -> None:
    """ZIMAGE_RATE_LIMIT_WAIT_MS: a request waits that long for a database held for a second,
    where the default 250 ms would count it on this replica."""
    from zimage.replicas.database import SharedDatabase

    settings = Settings.from_env(
        {
            "ZIMAGE_USAGE_DB": database,
            "ZIMAGE_BROWSER_SECRET": SECRET,
            "ZIMAGE_RATE_PER_MIN": "5",
            "ZIMAGE_RATE_LIMIT_WAIT_MS": str(int(WAIT_S * 1000)),
        }
    )
    shared = SharedDatabase.open(settings, SECRET)
    with postgres_server.admin(database.rsplit("/", 1)[1]) as blocker:
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE rate_limits IN ACCESS EXCLUSIVE MODE")
        threading.Timer(1.0, blocker.execute, args=("COMMIT",)).start()
        shared.rate_limiter.admit(ADDRESS)
    assert shared.rate_limiter.fallbacks == 0
    shared.close()
