"""The PostgreSQL usage store, against a real server: the same rows as SQLite, the schema made
and migrated at start, retention by one replica at a time, faults that cost a row, never a
request."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import psycopg
import pytest

from tests.launcher import WAIT_S, free_port, wait_until
from tests.privacy.test_usage_log import CHROME_UA, PROMPT, RAW_IP, FakeClock, make_event
from zimage.privacy.usage_log import IpHasher, UsageLog
from zimage.replicas.connection import DatabaseUnavailable, Lane
from zimage.replicas.schema import LATEST, MIGRATIONS, RETENTION_LOCK, Schema, migrate
from zimage.replicas.usage_store import PostgresUsageStore


def postgres_store(url: str, timeout_s: float = WAIT_S) -> PostgresUsageStore:
    return PostgresUsageStore(Lane(url, "usage log", timeout_s, on_connect=Schema().ensure))


@pytest.fixture
def database(postgres_server) -> str:
    return postgres_server.new_database()


def test_sqlite_and_postgres_keep_the_same_rows(database: str, tmp_path: Path) -> None:
    clock = FakeClock()
    hasher = IpHasher(clock)  # one salt for both, so that their rows can be equal
    logs = {
        "sqlite": UsageLog(tmp_path / "usage.sqlite3", clock=clock, ip_hasher=hasher),
        "postgres": UsageLog(postgres_store(database), clock=clock, ip_hasher=hasher),
    }
    try:
        events = [
            make_event(),
            make_event(endpoint="edit", params={"strength": 0.6}),
            make_event(pseudonym="someone-else", outcome="error:input", params={}),
        ]
        for event in events:
            for usage in logs.values():
                usage.record(event)
            clock.advance(hours=13)
        rows = {name: usage.rows_for("pseudo-alice-7f3a") for name, usage in logs.items()}
        assert rows["sqlite"] == rows["postgres"]
        assert [row["endpoint"] for row in rows["postgres"]] == ["generate", "edit"]
        assert rows["postgres"][0]["params"] == {"resolution": "1024x1024", "steps": 8, "seed": 42}
        exports = {name: usage.export_json("pseudo-alice-7f3a") for name, usage in logs.items()}
        assert exports["sqlite"] == exports["postgres"]
        clock.advance(days=100)
        purged = {name: usage.purge_expired() for name, usage in logs.items()}
        assert purged == {"sqlite": 3, "postgres": 3}
        aggregates = {name: usage.aggregates() for name, usage in logs.items()}
        assert aggregates["sqlite"] == aggregates["postgres"]
        assert sum(row["count"] for row in aggregates["postgres"]) == 3
    finally:
        for usage in logs.values():
            usage.close()


def test_no_address_user_agent_or_prompt_reaches_the_database(postgres_server, database) -> None:
    usage = UsageLog(postgres_store(database))
    usage.record(make_event(prompt=PROMPT))
    usage.flush()
    usage.close()
    with psycopg.connect(database) as connection:
        stored = json.dumps(connection.execute("SELECT * FROM usage").fetchall(), default=str)
    assert stored.count("pseudo-alice-7f3a") == 1
    for secret in (RAW_IP, CHROME_UA, PROMPT):
        assert secret not in stored


def test_delete_removes_the_rows_and_autovacuum_clears_them_soon(postgres_server, database) -> None:
    usage = UsageLog(postgres_store(database))
    for _ in range(3):
        usage.record(make_event())
    usage.record(make_event(pseudonym="stays"))
    usage.flush()  # in the database, not only queued
    assert usage.delete_for("pseudo-alice-7f3a") == 3
    assert usage.rows_for("pseudo-alice-7f3a") == []
    assert len(usage.rows_for("stays")) == 1
    usage.close()
    # Migration 2 asks autovacuum to vacuum the log after any deletion (the test server looks
    # every second; a real one every minute): the dead rows go without waiting for a fifth of
    # the table to be dead.
    with psycopg.connect(database, autocommit=True) as connection:  # fresh statistics each time
        deadline = time.monotonic() + 60
        while True:
            (vacuumed,) = connection.execute(
                "SELECT autovacuum_count FROM pg_stat_user_tables WHERE relname = 'usage'"
            ).fetchone()
            if vacuumed or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert vacuumed, "autovacuum never vacuumed the usage table after the deletion"


def test_schema_is_created_at_start_and_migrated_from_an_older_version(database: str) -> None:
    with psycopg.connect(database, autocommit=True) as connection:
        # A database left at version 1 (the usage log only) by an older Space, with a row.
        with connection.transaction():
            for statement in MIGRATIONS[0]:
                connection.execute(statement)
            connection.execute("CREATE TABLE zimage_schema (version integer NOT NULL)")
            connection.execute("INSERT INTO zimage_schema VALUES (1)")
        connection.execute(
            "INSERT INTO usage (ts, day, endpoint, params, duration_ms, outcome, browser, os,"
            " ip_hash, pseudonym) VALUES ('2026-03-01T12:00:00.000000Z', '2026-03-01',"
            " 'generate', '{}', 5, 'ok', 'Firefox', 'Linux', 'h', 'old-visitor')"
        )
    # Replicas starting together: each waits for the one migrating, none applies a step twice.
    befores: list[int] = []

    def start() -> None:
        with psycopg.connect(database, autocommit=True) as connection:
            befores.append(migrate(connection))

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(befores) == [1, LATEST, LATEST, LATEST]
    with psycopg.connect(database) as connection:
        assert connection.execute("SELECT version FROM zimage_schema").fetchall() == [(LATEST,)]
        assert connection.execute("SELECT pseudonym FROM usage").fetchall() == [("old-visitor",)]
    usage = UsageLog(postgres_store(database))
    assert [row["pseudonym"] for row in usage.rows_for("old-visitor")] == ["old-visitor"]
    usage.close()


def old_rows(database: str, count: int) -> None:
    clock = FakeClock()
    usage = UsageLog(postgres_store(database), clock=clock)
    for index in range(count):
        usage.record(make_event(endpoint=("generate", "edit")[index % 2]))
    usage.close()


def test_retention_skips_while_another_replica_holds_it(postgres_server, database) -> None:
    old_rows(database, 4)
    store = postgres_store(database)
    with postgres_server.admin(database.rsplit("/", 1)[1]) as other_replica:
        other_replica.execute("SELECT pg_advisory_lock(%s)", (RETENTION_LOCK,))
        assert store.purge_before("2027-01-01") == 0
        assert store.aggregates() == []
        other_replica.execute("SELECT pg_advisory_unlock(%s)", (RETENTION_LOCK,))
    assert store.purge_before("2027-01-01") == 4
    assert sum(row["count"] for row in store.aggregates()) == 4
    store.close()


def test_replicas_purging_at_once_count_every_row_once(database: str) -> None:
    old_rows(database, 2000)
    stores = [postgres_store(database) for _ in range(4)]
    for store in stores:
        store.aggregates()  # connected, so that the purges start together
    start = threading.Barrier(len(stores))
    purged: list[int] = []

    def purge(store: PostgresUsageStore) -> None:
        start.wait()
        purged.append(store.purge_before("2027-01-01"))

    threads = [threading.Thread(target=purge, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(purged) == 2000
    assert sum(row["count"] for row in stores[0].aggregates()) == 2000
    for store in stores:
        store.close()


def test_an_unreachable_database_drops_rows_and_counts_them_without_holding_anyone() -> None:
    closed_port = free_port()
    usage = UsageLog(postgres_store(f"postgresql://nobody@127.0.0.1:{closed_port}/none"))
    for _ in range(5):
        assert usage.record(make_event())  # queued; the writer meets the refusal
    usage.flush()
    assert usage.dropped == 5 and usage.pending == 0
    assert usage.rows_for("pseudo-alice-7f3a") == []
    usage.close()


def test_a_stalled_database_holds_a_store_call_only_until_its_timeout(
    postgres_server, database
) -> None:
    store = postgres_store(database, timeout_s=0.5)
    wait_until(lambda: answers(store), WAIT_S, "never connected")
    with postgres_server.admin(database.rsplit("/", 1)[1]) as blocker:
        with blocker.transaction():
            blocker.execute("LOCK TABLE usage IN ACCESS EXCLUSIVE MODE")
            # Both give up while the table is still locked: neither waited for the database.
            with pytest.raises(DatabaseUnavailable):
                store.rows_for("anyone")
            # The lane is still waiting for that answer: the next call does not queue behind it.
            time.sleep(0.6)  # past the timeout since that call began
            with pytest.raises(DatabaseUnavailable, match="still waiting"):
                store.rows_for("anyone")
    wait_until(lambda: answers(store), WAIT_S, "never answered once the table was free")
    store.close()


def answers(store) -> bool:
    """Whether the store answers within its timeout now."""
    try:
        return store.rows_for("anyone") == []
    except DatabaseUnavailable:
        return False
