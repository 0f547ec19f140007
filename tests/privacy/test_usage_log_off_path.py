"""Logging never delays an image (issue 13.6): a usage database that does not answer, through
the launched app.

Before, every request waited SQLite's 0.5 s busy timeout inside the GPU slot while another
connection held the database (20 requests: 11.8 s instead of 1.5 s). Now rows are written by a
background thread: requests are answered while that writer is still held by the database, and
the rows that cannot be written (the database locked) are dropped and counted.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from gradio_client import Client

from tests.conftest import serve
from tests.launcher import WAIT_S, wait_until
from zimage.privacy.usage_store import UsageStore

REQUESTS = 5


class HeldStore:
    """The app's own store, whose writes first wait for `release`: a database that does not
    answer for as long as the test wants."""

    def __init__(self, store: UsageStore) -> None:
        self.store = store
        self.writing = threading.Event()
        self.release = threading.Event()
        self.held_out = False  # a write waited the whole WAIT_S: a request was waiting on it

    def insert(self, rows: Any) -> None:
        self.writing.set()
        self.held_out = not self.release.wait(WAIT_S) or self.held_out
        self.store.insert(rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_requests_are_answered_while_the_usage_database_holds_the_writer(tmp_path, caplog) -> None:
    app = serve({})
    running = next(app)
    client = Client(running.url, verbose=False, download_files=str(tmp_path))
    usage_log = running.space.service.usage_log

    def generate(seed: int) -> None:
        client.predict(
            prompt="a kite",
            resolution="256x256",
            seed=seed,
            randomize_seed=False,
            steps=1,
            shift=3.0,
            api_name="/text_to_image",
        )

    try:
        generate(0)  # warm-up; also creates the database file
        usage_log.flush()
        held = HeldStore(usage_log._store)
        usage_log._store = held
        for seed in range(1, REQUESTS + 1):
            generate(seed)
        assert held.writing.wait(WAIT_S), "no row reached the writer"
        assert not held.held_out, "a request waited for the usage database"
        # Now the writer meets a locked database: the rows wait in memory, none dropped...
        database = Path(running.settings.data_dir) / "usage.sqlite3"  # usage_db would flush
        other = sqlite3.connect(database, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        held.release.set()
        wait_until(lambda: usage_log.store_away, WAIT_S, "the locked store was never noticed")
        assert usage_log.dropped == 0
        generate(REQUESTS + 1)  # ...and requests are still answered meanwhile
        other.execute("ROLLBACK")  # ...and are written once the database answers
        other.close()
        wait_until(
            lambda: not usage_log.store_away and usage_log.pending == 0,
            WAIT_S,
            "the waiting rows were never written",
        )
        client.close()
    finally:
        app.close()
    written = sqlite3.connect(running.usage_db).execute("SELECT COUNT(*) FROM usage").fetchone()
    assert written[0] == 2 + REQUESTS and usage_log.dropped == 0
