"""What a replica tells the others, and hears from them, through the shared PostgreSQL database.

"Delete my data" on one replica must reach the outputs and prompt embeddings that other
replicas hold in memory for that visitor. The replica that deleted writes a note to
`deleted_visitors` and sends `NOTIFY zimage_forget` with the pseudonym, in one statement (the
notification leaves when the note is committed); every replica LISTENs on that channel and
forgets the visitor at once, the sender included (its second pass deletes any usage row that
reached the database meanwhile).

A replica that was disconnected misses notifications: when it reconnects it reads the notes
younger than the output lifetime and forgets those visitors too (older outputs have expired by
then anyway). Notes are deleted once older than that lifetime; so are rate-limit rows older
than their minute. An announcement made while the database is unreachable waits in memory
and is sent on reconnection. All of this runs on one background thread per replica with its
own connection: no request waits for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import timedelta

import psycopg

from zimage.guards.rate_limit import WINDOW_S
from zimage.replicas.connection import connect
from zimage.replicas.schema import Schema

log = logging.getLogger(__name__)

CHANNEL = "zimage_forget"
# How often the thread looks up from waiting for notifications (to send announcements, tidy
# up, or stop); an announcement leaves within this time.
POLL_S = 0.2
# Expired notes and rate-limit rows are deleted this often (by every replica; it is idempotent).
TIDY_INTERVAL_S = 30.0
RECONNECT_PAUSE_S = 1.0
_STATEMENT_TIMEOUT_MS = 10_000
# Announcements waiting for the database, at most; past it the oldest are dropped (logged).
MAX_OWED = 10_000

_ANNOUNCE = """
WITH noted AS (INSERT INTO deleted_visitors (pseudonym) VALUES (%s) RETURNING pseudonym)
SELECT pg_notify(%s, pseudonym) FROM noted
"""


class ReplicaLink:
    """The replica's background connection: deletions out and in, expired shared rows tidied."""

    def __init__(self, url: str, schema: Schema, note_lifetime_s: float) -> None:
        self._url = url
        self._schema = schema
        self._note_lifetime = timedelta(seconds=note_lifetime_s)
        self._forget: Callable[[str], object] = lambda pseudonym: None
        self._owed: deque[str] = deque(maxlen=MAX_OWED)
        self._owed_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()  # set while connected and listening
        self.backend_pid: int | None = None  # the server process of the link's connection

    def start(self, forget: Callable[[str], object]) -> None:
        """Listen from now on; `forget(pseudonym)` drops what this replica holds of a visitor
        deleted anywhere (it runs on the link's thread)."""
        self._forget = forget
        self._thread = threading.Thread(target=self._run, name="replica-link", daemon=True)
        self._thread.start()

    def announce_deletion(self, pseudonym: str) -> None:
        """Tell every replica (this one too) to forget this visitor; returns at once."""
        if pseudonym:
            with self._owed_lock:
                self._owed.append(pseudonym)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # -- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        reconnecting = False
        last_failure = ""
        while not self._stop.is_set():
            try:
                with connect(self._url, "replica link", _STATEMENT_TIMEOUT_MS) as connection:
                    self._schema.ensure(connection)
                    connection.execute(f"LISTEN {CHANNEL}")
                    if reconnecting:
                        self._catch_up(connection)
                    log.info("replica link: listening for deletions on other replicas")
                    last_failure = ""
                    self.backend_pid = connection.info.backend_pid
                    self.listening.set()
                    self._serve(connection)
            except Exception as error:  # noqa: BLE001 - reconnect after any failure
                failure = (str(error).strip().splitlines() or [type(error).__name__])[0]
                if failure != last_failure:
                    log.warning("replica link: database unavailable (%s); reconnecting", failure)
                    last_failure = failure
            self.listening.clear()
            reconnecting = True
            self._stop.wait(RECONNECT_PAUSE_S)

    def _serve(self, connection: psycopg.Connection) -> None:
        next_tidy = 0.0
        while not self._stop.is_set():
            self._send_owed(connection)
            if time.monotonic() >= next_tidy:
                self._tidy(connection)
                next_tidy = time.monotonic() + TIDY_INTERVAL_S
            for notice in connection.notifies(timeout=POLL_S):
                self._forget_quietly(notice.payload)

    def _send_owed(self, connection: psycopg.Connection) -> None:
        while True:
            with self._owed_lock:
                if not self._owed:
                    return
                pseudonym = self._owed[0]
            connection.execute(_ANNOUNCE, (pseudonym, CHANNEL))
            with self._owed_lock:
                if self._owed and self._owed[0] == pseudonym:
                    self._owed.popleft()

    def _catch_up(self, connection: psycopg.Connection) -> None:
        rows = connection.execute(
            "SELECT DISTINCT pseudonym FROM deleted_visitors WHERE noted_at > now() - %s",
            (self._note_lifetime,),
        ).fetchall()
        for (pseudonym,) in rows:
            self._forget_quietly(pseudonym)
        if rows:
            log.info("replica link: caught up with %d deletions made while disconnected", len(rows))

    def _tidy(self, connection: psycopg.Connection) -> None:
        connection.execute(
            "DELETE FROM deleted_visitors WHERE noted_at < now() - %s", (self._note_lifetime,)
        )
        connection.execute(
            "DELETE FROM rate_limits WHERE last_at < now() - %s", (timedelta(seconds=WINDOW_S),)
        )

    def _forget_quietly(self, pseudonym: str) -> None:
        try:
            self._forget(pseudonym)
        except Exception:  # noqa: BLE001 - one visitor's failure must not stop the link
            log.exception("replica link: could not forget a deleted visitor")
