"""Usage rows survive a database outage (issue 25.5): `python app.py` on a real PostgreSQL that is
stopped and started again. Rows made meanwhile wait in the app's memory and are written when the
database is back (0 lost within the buffer's bound); "delete my data" meanwhile deletes the
waiting rows at once, says that the stored ones go when the database is back, and they do.
Before, 192 rows of a 20 s outage were dropped, and the deletion answered "Deleted 0 usage rows".
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.gradio_http import generate_in_browser, run
from tests.launcher import launched_app, wait_until
from zimage.privacy.policy import BrowserKeys
from zimage.privacy.usage_log import UsageEvent, UsageLog
from zimage.privacy.usage_store import SqliteUsageStore

SECRET = "an operator secret of more than 32 characters"
WAIT_S = 180.0
DURING_OUTAGE = 4


def stop_cleanly(server: Any) -> None:
    """PostgreSQL's fast shutdown (SIGINT), keeping its data for the next start."""
    server._process.send_signal(signal.SIGINT)
    server._process.wait(timeout=60)


def behind_proxy(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


def new_browser(url: str, address: str) -> dict:
    return run(url, "on_page_load", [None], headers=behind_proxy(address))[0]


def generate(url: str, browser: dict, address: str) -> None:
    generate_in_browser(url, browser, headers=behind_proxy(address), **{"controls.steps": 1})


def rows_of(database: str, browser: dict) -> int:
    pseudonym = BrowserKeys(SECRET).verified_id(browser["pseudonym"])
    with psycopg.connect(database) as connection:
        query = "SELECT count(*) FROM usage WHERE pseudonym = %s"
        return connection.execute(query, (pseudonym,)).fetchone()[0]


def test_rows_made_while_the_database_is_stopped_reach_it_when_it_is_back(
    postgres_server, tmp_path: Path
) -> None:
    database = postgres_server.new_database()
    settings = {
        "ZIMAGE_USAGE_DB": database,
        "ZIMAGE_BROWSER_SECRET": SECRET,
        "ZIMAGE_TRUSTED_PROXY_HOPS": "1",
    }
    with launched_app(tmp_path, settings) as app:
        alice, bob = new_browser(app.url, "203.0.113.1"), new_browser(app.url, "203.0.113.2")
        generate(app.url, alice, "203.0.113.1")
        generate(app.url, bob, "203.0.113.2")
        wait_until(
            lambda: rows_of(database, alice) == 1 and rows_of(database, bob) == 1,
            WAIT_S,
            "the rows before the outage were never stored",
        )
        stop_cleanly(postgres_server)
        try:
            for _ in range(DURING_OUTAGE):
                generate(app.url, alice, "203.0.113.1")
                generate(app.url, bob, "203.0.113.2")
            shown, _ = run(app.url, "show_my_data", [alice], headers=behind_proxy("203.0.113.1"))
            assert len(shown["usage_rows"]) >= DURING_OUTAGE  # the ones waiting are shown
            message = run(app.url, "delete_my_data", [bob], headers=behind_proxy("203.0.113.2"))[1]
            assert message.startswith(f"Deleted {DURING_OUTAGE} usage rows and ")
            assert "will be deleted as soon as it is back" in message
        finally:
            postgres_server.start()
        wait_until(
            lambda: rows_of(database, alice) == 1 + DURING_OUTAGE,
            WAIT_S,
            "the rows of the outage never reached the database",
        )
        wait_until(
            lambda: rows_of(database, bob) == 0, WAIT_S, "the deletion was never carried out"
        )
    log = app.output()
    assert "rows wait in memory" in log
    assert "row(s) dropped" not in log and "rows were dropped" not in log


class StoreAway(SqliteUsageStore):
    """The SQLite store, unreachable while `away` is set."""

    away = False

    def insert(self, rows: Any) -> None:
        if self.away:
            raise psycopg.OperationalError("connection refused")
        super().insert(rows)


def event(pseudonym: str = "pseudo-alice") -> UsageEvent:
    return UsageEvent(
        endpoint="generate",
        params={"steps": 8},
        duration_s=0.5,
        outcome="ok",
        user_agent="Mozilla/5.0 Firefox/130.0",
        client_ip="203.0.113.9",
        pseudonym=pseudonym,
    )


def test_past_the_bound_rows_are_dropped_counted_and_logged_the_rest_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = StoreAway.open(tmp_path / "usage.sqlite3")
    store.away = True
    usage = UsageLog(store, max_pending=3)
    try:
        for _ in range(3):
            assert usage.record(event())
        wait_until(lambda: usage.store_away, 30, "the store was never found away")
        assert [usage.record(event()) for _ in range(2)] == [False, False]
        assert usage.dropped == 2 and "dropped since start" in caplog.text
        store.away = False
        wait_until(lambda: len(store.rows_for("pseudo-alice")) == 3, 30, "never written")
        assert usage.pending == 0 and usage.dropped == 2
    finally:
        usage.close()
