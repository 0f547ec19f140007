"""Connections to the shared PostgreSQL database, and calls on them that never hold a caller
longer than it can wait.

psycopg's blocking calls take no deadline: a database that is down answers at once (connection
refused), but one that is stalled or overloaded can hold a call for as long as it likes. So each
`Lane` owns one connection used by one worker thread, and a caller waits for its call at most
its own timeout: past it, or while the lane is still stuck on an earlier call, or for a moment
after the connection failed, the call raises `DatabaseUnavailable` at once and the caller does
without the database. The worker reconnects by itself on the next call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from queue import SimpleQueue
from typing import TypeVar

import psycopg

log = logging.getLogger(__name__)

T = TypeVar("T")

# libpq counts whole seconds here (and treats 1 as 2).
CONNECT_TIMEOUT_S = 2
# After a failed connection, calls fail at once for this long instead of each trying again.
RECONNECT_PAUSE_S = 1.0
# Keepalives notice a peer that vanished (a machine gone, a cut network) within ~20 s.
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5}


class DatabaseUnavailable(Exception):
    """The database did not answer in time, or cannot be reached now."""


def connect(
    url: str, purpose: str, statement_timeout_ms: int, synchronous_commit: bool = True
) -> psycopg.Connection:
    """A new autocommit connection named after the Space and its purpose (pg_stat_activity
    shows it), whose statements the server itself stops after `statement_timeout_ms`.

    `synchronous_commit=False` lets a commit return before its write-ahead log reaches the disk
    (about half the round trip): for data that may be lost in a database crash without harm.
    """
    options = f"-c statement_timeout={statement_timeout_ms}"
    if not synchronous_commit:
        options += " -c synchronous_commit=off"
    return psycopg.connect(
        url,
        autocommit=True,
        connect_timeout=CONNECT_TIMEOUT_S,
        application_name=f"zimage-space {purpose}",
        options=options,
        **_KEEPALIVES,
    )


class Lane:
    """One connection, one worker thread, and calls with a deadline.

    `on_connect` runs on every new connection before its first call (the schema check);
    `synchronous_commit` is connect()'s.
    """

    def __init__(
        self,
        url: str,
        purpose: str,
        timeout_s: float,
        on_connect: Callable[[psycopg.Connection], None] | None = None,
        synchronous_commit: bool = True,
    ) -> None:
        self.purpose = purpose
        self.timeout_s = timeout_s
        self._url = url
        self._on_connect = on_connect
        self._synchronous_commit = synchronous_commit
        # The server stops a statement a little after the caller stopped waiting for it.
        self._statement_timeout_ms = max(1000, round(timeout_s * 4000))
        self._jobs: SimpleQueue[tuple[Callable[[psycopg.Connection], object], Future] | None]
        self._jobs = SimpleQueue()
        self._connection: psycopg.Connection | None = None
        self._busy_since: float | None = None
        self._paused_until = 0.0
        self._closed = False
        self._worker = threading.Thread(target=self._work, name=f"pg-{purpose}", daemon=True)
        self._worker.start()

    def call(self, work: Callable[[psycopg.Connection], T], timeout_s: float | None = None) -> T:
        """`work(connection)` on the worker; raises DatabaseUnavailable when the database does
        not answer within `timeout_s` (the lane's own by default), and whatever `work` raised."""
        now = time.monotonic()
        wait = self.timeout_s if timeout_s is None else timeout_s
        busy_since = self._busy_since
        if self._closed:
            raise DatabaseUnavailable("closed")
        if now < self._paused_until:
            raise DatabaseUnavailable("the connection failed a moment ago")
        if busy_since is not None and now - busy_since > self.timeout_s:
            raise DatabaseUnavailable("an earlier call is still waiting for the database")
        future: Future = Future()
        self._jobs.put((work, future))
        try:
            return future.result(wait)
        except FutureTimeout:
            future.cancel()  # skipped if it has not started; otherwise it finishes on its own
            raise DatabaseUnavailable(f"no answer within {wait:g} s") from None

    def connect_soon(self) -> None:
        """Connect (and run `on_connect`) on the worker now, so that the first call does not
        pay for it; returns at once. A failure is logged by the first call that meets it."""
        if not self._closed:
            self._jobs.put((lambda connection: None, Future()))

    def close(self) -> None:
        """Stop the worker after the call in hand (not waiting for a stuck one)."""
        self._closed = True
        self._jobs.put(None)
        self._worker.join(timeout=1.0)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                break
            work, future = job
            if not future.set_running_or_notify_cancel():
                continue
            self._busy_since = time.monotonic()
            try:
                future.set_result(work(self._connected()))
            except BaseException as error:  # noqa: BLE001 - handed to the caller
                self._drop_if_broken(error)
                future.set_exception(error)
            finally:
                self._busy_since = None
        if self._connection is not None:
            self._connection.close()

    def _connected(self) -> psycopg.Connection:
        if self._connection is None:
            try:
                connection = connect(
                    self._url, self.purpose, self._statement_timeout_ms, self._synchronous_commit
                )
            except psycopg.Error as error:
                raise DatabaseUnavailable(f"cannot connect: {_reason(error)}") from None
            try:
                if self._on_connect is not None:
                    self._on_connect(connection)
            except BaseException:
                connection.close()
                raise
            self._connection = connection
            log.info("PostgreSQL %s connection open", self.purpose)
        return self._connection

    def _drop_if_broken(self, error: BaseException) -> None:
        connection = self._connection
        lost = connection is None or connection.closed or connection.broken
        if isinstance(error, (DatabaseUnavailable, psycopg.OperationalError)) or lost:
            self._paused_until = time.monotonic() + RECONNECT_PAUSE_S
        if connection is not None and (connection.closed or connection.broken):
            connection.close()
            self._connection = None


def _reason(error: psycopg.Error) -> str:
    """libpq's first line, which names the host and what failed but never the password."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
