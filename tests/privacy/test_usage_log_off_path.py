"""Logging never delays an image (issue 13.6): a locked usage database, through the launched app.

Before, every request waited SQLite's 0.5 s busy timeout inside the GPU slot while another
connection held the database (20 requests: 11.8 s instead of 1.5 s). Now rows are written by a
background thread: requests take as long with the database locked as without, and the rows
that could not be written are dropped and counted.
"""

from __future__ import annotations

import logging
import sqlite3
import statistics
import time

from gradio_client import Client

from tests.conftest import serve

ROUNDS = 4
PER_ROUND = 5


def test_a_locked_usage_database_does_not_slow_requests(tmp_path, caplog) -> None:
    app = serve({})
    running = next(app)
    client = Client(running.url, verbose=False, download_files=str(tmp_path))
    usage_log = running.space.service.usage_log

    def timed_request(seed: int) -> float:
        start = time.perf_counter()
        client.predict(
            prompt="a kite",
            resolution="256x256",
            seed=seed,
            randomize_seed=False,
            steps=1,
            shift=3.0,
            api_name="/text_to_image",
        )
        return time.perf_counter() - start

    try:
        timed_request(0)  # warm-up; also creates the database file
        free, locked = [], []
        with caplog.at_level(logging.WARNING, logger="zimage.privacy.usage_log"):
            for round_ in range(ROUNDS):  # interleaved, so that the machine's load hits both
                free += [timed_request(round_ * 100 + i) for i in range(PER_ROUND)]
                other = sqlite3.connect(running.usage_db, isolation_level=None)
                other.execute("BEGIN EXCLUSIVE")
                try:
                    locked += [timed_request(round_ * 100 + 50 + i) for i in range(PER_ROUND)]
                finally:
                    other.execute("ROLLBACK")
                    other.close()
        client.close()
        # The old synchronous write added the whole 0.5 s busy timeout to each locked request.
        difference = statistics.median(locked) - statistics.median(free)
        assert difference < 0.25, (statistics.median(free), statistics.median(locked))
        assert usage_log.dropped > 0
        assert "dropped" in caplog.text
    finally:
        app.close()
    written = sqlite3.connect(running.usage_db).execute("SELECT COUNT(*) FROM usage").fetchone()
    assert written[0] + usage_log.dropped == 1 + ROUNDS * PER_ROUND * 2
