"""Deletions travel between replicas through a real PostgreSQL server: at once by NOTIFY, and
after a disconnection by the notes read on reconnect; expired notes and rate-limit rows go."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest

from tests.launcher import WAIT_S, wait_until
from zimage.replicas.link import ReplicaLink
from zimage.replicas.schema import Schema


class Forgotten:
    """What a replica's forget callback was given, in order."""

    def __init__(self) -> None:
        self.pseudonyms: list[str] = []
        self._changed = threading.Condition()

    def __call__(self, pseudonym: str) -> None:
        with self._changed:
            self.pseudonyms.append(pseudonym)
            self._changed.notify_all()

    def wait_for(self, pseudonym: str, timeout: float = WAIT_S) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: pseudonym in self.pseudonyms, timeout)


@pytest.fixture
def database(postgres_server) -> str:
    return postgres_server.new_database()


@pytest.fixture
def links(database) -> Iterator[list[tuple[ReplicaLink, Forgotten]]]:
    """Replicas A and B, listening."""
    started = []
    for _ in range(2):
        link, forgotten = ReplicaLink(database, Schema(), note_lifetime_s=600), Forgotten()
        link.start(forgotten)
        started.append((link, forgotten))
    for link, _ in started:
        assert link.listening.wait(WAIT_S)
    yield started
    for link, _ in started:
        link.close()


def name_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def cut_off(postgres_server, database: str, link: ReplicaLink) -> None:
    """No new connection to the database from now on, and this link's connection ended."""
    with postgres_server.admin() as admin:
        admin.execute(f"ALTER DATABASE {name_of(database)} ALLOW_CONNECTIONS false")
        admin.execute("SELECT pg_terminate_backend(%s)", (link.backend_pid,))
    wait_until(
        lambda: not link.listening.is_set(), WAIT_S, "the link never noticed its connection ended"
    )


def reconnectable(postgres_server, database: str) -> None:
    with postgres_server.admin() as admin:
        admin.execute(f"ALTER DATABASE {name_of(database)} ALLOW_CONNECTIONS true")


def test_a_deletion_reaches_every_replica_at_once(links) -> None:
    (a, forgotten_on_a), (b, forgotten_on_b) = links
    a.announce_deletion("visitor-1")
    assert forgotten_on_b.wait_for("visitor-1")
    assert forgotten_on_a.wait_for("visitor-1"), "the sender forgets too (rows written late)"
    b.announce_deletion("")  # no pseudonym: nothing to say
    b.announce_deletion("visitor-2")
    assert forgotten_on_a.wait_for("visitor-2")
    assert "" not in forgotten_on_a.pseudonyms + forgotten_on_b.pseudonyms


def test_a_replica_that_missed_the_notification_catches_up_on_reconnect(
    postgres_server, database, links
) -> None:
    (a, forgotten_on_a), (b, forgotten_on_b) = links
    cut_off(postgres_server, database, b)
    try:
        a.announce_deletion("missed-visitor")  # A's connection is still open
        assert forgotten_on_a.wait_for("missed-visitor")
        assert not forgotten_on_b.wait_for("missed-visitor", timeout=1)
    finally:
        reconnectable(postgres_server, database)
    assert b.listening.wait(WAIT_S)
    assert forgotten_on_b.wait_for("missed-visitor")


def test_a_deletion_announced_while_disconnected_leaves_on_reconnect(
    postgres_server, database, links
) -> None:
    (a, _), (b, forgotten_on_b) = links
    cut_off(postgres_server, database, a)
    try:
        a.announce_deletion("owed-visitor")
        assert not forgotten_on_b.wait_for("owed-visitor", timeout=1)
    finally:
        reconnectable(postgres_server, database)
    assert forgotten_on_b.wait_for("owed-visitor")


def test_expired_notes_and_rate_limit_rows_are_deleted(database) -> None:
    with psycopg.connect(database, autocommit=True) as connection:
        Schema().ensure(connection)
        connection.execute(
            "INSERT INTO deleted_visitors (pseudonym, noted_at) VALUES"
            " ('old', now() - interval '11 minutes'), ('recent', now())"
        )
        connection.execute(
            "INSERT INTO rate_limits (visitor, hits, last_at) VALUES"
            " ('gone', ARRAY[now() - interval '2 minutes'], now() - interval '2 minutes'),"
            " ('active', ARRAY[now()], now())"
        )
        link = ReplicaLink(database, Schema(), note_lifetime_s=600)
        link.start(Forgotten())
        try:
            assert link.listening.wait(WAIT_S)

            def tidied() -> bool:
                notes = connection.execute("SELECT pseudonym FROM deleted_visitors").fetchall()
                limits = connection.execute("SELECT visitor FROM rate_limits").fetchall()
                return notes == [("recent",)] and limits == [("active",)]

            wait_until(tidied, WAIT_S, "expired notes or rate-limit rows kept")
        finally:
            link.close()
