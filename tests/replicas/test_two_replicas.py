"""Two replicas (`python app.py` twice: their own ports and temp folders, the same browser secret)
behind a stand-in balancer (this test, which writes X-Forwarded-For), sharing one real
PostgreSQL database: rights, retention and the rate limit reach both, and killing the database
loses no image request."""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.gradio_http import completed, fn_index, join, run
from tests.launcher import WAIT_S, AppProcess, start_app, wait_until
from zimage.privacy.policy import BrowserKeys
from zimage.replicas.schema import migrate

pytestmark = pytest.mark.xdist_group("two_replicas")  # its fixtures built once, on one worker

SECRET = "replicas share this operator secret, 32+ characters"
RATE_PER_MIN = 3
OLD_ROWS = 10
_addresses = (f"203.0.113.{n % 250}" for n in itertools.count(1))


def add_old_rows(database: str) -> None:
    """Rows older than the retention period, as a replica wrote them last year."""
    with psycopg.connect(database, autocommit=True) as connection:
        migrate(connection)
        for index in range(OLD_ROWS):
            connection.execute(
                "INSERT INTO usage (ts, day, endpoint, params, duration_ms, outcome, browser, os,"
                " ip_hash, pseudonym) VALUES (%s, '2025-01-02', 'generate', '{}', 5, 'ok',"
                " 'Firefox', 'Linux', 'h', 'someone')",
                (f"2025-01-02T10:00:{index:02d}.000000Z",),
            )


@pytest.fixture(scope="module")
def database(postgres_server) -> str:
    url = postgres_server.new_database()
    add_old_rows(url)
    return url


@pytest.fixture(scope="module")
def replicas(database, tmp_path_factory) -> Iterator[list[AppProcess]]:
    folder = tmp_path_factory.mktemp("replicas")
    settings = {
        "ZIMAGE_BROWSER_SECRET": SECRET,
        "ZIMAGE_USAGE_DB": database,
        "ZIMAGE_RATE_PER_MIN": str(RATE_PER_MIN),
        "ZIMAGE_TRUSTED_PROXY_HOPS": "1",
        # Every count the database's, however busy the machine; the short deadline is
        # tests/replicas/test_rate_limit.py's.
        "ZIMAGE_RATE_LIMIT_WAIT_MS": str(int(WAIT_S * 1000)),
    }
    started = [start_app(folder / name, settings, wait=False, name=name) for name in "AB"]
    try:
        for replica in started:
            replica.wait_serving()
        yield started
    finally:
        for replica in started:
            replica.stop()


# -- speaking to a replica as the balancer forwards a visitor -------------------------------------


def behind_balancer(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


def new_browser(replica: AppProcess, address: str) -> dict:
    return run(replica.url, "on_page_load", [None], headers=behind_balancer(address))[0]


def generate_in_browser(replica: AppProcess, browser: dict, address: str) -> None:
    data = ["a kite", "256x256", 1, False, 2, 3.0, 1, False, browser, False]
    run(replica.url, "generate_in_browser", data, headers=behind_balancer(address))


def my_data(replica: AppProcess, browser: dict, address: str) -> tuple[dict, dict]:
    shown, download = run(replica.url, "show_my_data", [browser], headers=behind_balancer(address))
    return shown, download


def history(replica: AppProcess, browser: dict, address: str) -> list:
    return run(replica.url, "history", [browser], headers=behind_balancer(address))[0]


def delete_my_data(replica: AppProcess, browser: dict, address: str) -> str:
    return run(replica.url, "delete_my_data", [browser], headers=behind_balancer(address))[1]


def text_to_image(replica: AppProcess, address: str) -> dict[str, Any]:
    """A script's request; the final message of its event stream."""
    index = fn_index(replica.url, "text_to_image")
    data = ["a kite", "256x256", 1, False, 2, 3.0, 1, False]
    return completed(join(replica.url, index, data, headers=behind_balancer(address)))


def rows_of(database: str, pseudonym_id: str) -> int:
    with psycopg.connect(database) as connection:
        query = "SELECT count(*) FROM usage WHERE pseudonym = %s"
        return connection.execute(query, (pseudonym_id,)).fetchone()[0]


# -- the tests ----------------------------------------------------------------------------------


def test_retention_runs_once_across_the_replicas(replicas, database) -> None:
    def purged() -> bool:
        with psycopg.connect(database) as connection:
            old = connection.execute("SELECT count(*) FROM usage WHERE ts < '2026'").fetchone()
            counts = connection.execute("SELECT coalesce(sum(count), 0) FROM daily_aggregates")
            return old[0] == 0 and counts.fetchone()[0] > 0

    wait_until(purged, WAIT_S, "the old rows were never purged")
    with psycopg.connect(database) as connection:
        aggregates = connection.execute("SELECT * FROM daily_aggregates").fetchall()
    assert aggregates == [("2025-01-02", "generate", "ok", OLD_ROWS)], "counted once, not twice"
    done = [
        int(count)
        for replica in replicas
        for count in re.findall(r"usage retention: (\d+) rows folded", replica.output())
    ]
    assert sum(done) == OLD_ROWS and OLD_ROWS in done, done


def test_delete_on_one_replica_empties_the_others_and_exports_show_every_replica(
    replicas, database
) -> None:
    a, b = replicas
    address = next(_addresses)
    browser = new_browser(a, address)
    pseudonym_id = BrowserKeys(SECRET).verified_id(browser["pseudonym"])
    assert pseudonym_id, "both replicas sign with the same secret"
    generate_in_browser(a, browser, address)
    generate_in_browser(b, browser, address)  # the balancer moved this browser to B
    assert len(history(b, browser, address)) == 1
    wait_until(lambda: rows_of(database, pseudonym_id) == 2, WAIT_S, "rows never stored")

    # "See my data" and the JSON export on B show A's row too.
    shown, download = my_data(b, browser, address)
    assert len(shown["usage_rows"]) == 2
    exported = httpx.get(download["value"]["url"], timeout=30).json()
    assert exported["pseudonym"] == pseudonym_id
    assert len(exported["rows"]) == 2
    assert len({row["ip_hash"] for row in exported["rows"]}) == 2, "each replica's own salt"

    message = delete_my_data(a, browser, address)
    assert message == "Deleted 2 usage rows and 1 images linked to this browser."
    wait_until(lambda: history(b, browser, address) == [], WAIT_S, "B kept the visitor's image")
    shown, _ = my_data(b, browser, address)
    assert shown == {"usage_rows": [], "images_in_memory": []}
    assert rows_of(database, pseudonym_id) == 0


def test_the_rate_limit_holds_across_the_replicas(replicas) -> None:
    a, b = replicas
    address = next(_addresses)
    outcomes = [text_to_image(replica, address) for replica in (a, b, a, b, a)]
    assert [message["success"] for message in outcomes] == [True, True, True, False, False]
    for refused in outcomes[3:]:
        assert f"Limit reached: {RATE_PER_MIN} images a minute" in str(refused["output"])
    assert text_to_image(b, next(_addresses))["success"], "another visitor is not limited"


def test_killing_the_database_loses_no_image_request_and_the_replicas_recover(
    postgres_server, replicas, database
) -> None:
    a, b = replicas
    outcomes: dict[str, list[tuple[str, bool]]] = {"A": [], "B": []}
    phase = ["before"]
    stop = threading.Event()

    def traffic(replica: AppProcess) -> None:
        while not stop.is_set():
            message = text_to_image(replica, next(_addresses))  # each request its own visitor
            outcomes[replica.name].append((phase[0], bool(message["success"])))

    def reached_both(wanted_phase: str) -> bool:
        """Two requests answered by each replica in that phase."""
        return all(sum(1 for p, _ in outcomes[name] if p == wanted_phase) >= 2 for name in outcomes)

    threads = [threading.Thread(target=traffic, args=(replica,)) for replica in replicas]
    for thread in threads:
        thread.start()
    try:
        # Generous bounds: on a busy 2-core machine a preview image can take seconds.
        wait_until(lambda: reached_both("before"), 180, "no traffic")
        postgres_server.kill()
        phase[0] = "database down"
        wait_until(lambda: reached_both("database down"), 180, "no traffic without the database")
        postgres_server.start()
        phase[0] = "database back"
        wait_until(lambda: reached_both("database back"), 180, "no traffic once it was back")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        if phase[0] == "database down":
            postgres_server.start()
    failed = [(name, p) for name, done in outcomes.items() for p, ok in done if not ok]
    assert failed == [], f"requests failed: {failed}"
    assert any("row(s) dropped" in replica.output() for replica in replicas)

    # Recovered: rows reach the database again from both replicas ...
    address = next(_addresses)
    browser = new_browser(a, address)
    pseudonym_id = BrowserKeys(SECRET).verified_id(browser["pseudonym"])
    for replica in (a, b):

        def stored(replica: AppProcess = replica) -> bool:
            before = rows_of(database, pseudonym_id)
            generate_in_browser(replica, browser, next(_addresses))
            deadline = time.monotonic() + 2
            while rows_of(database, pseudonym_id) == before:
                if time.monotonic() > deadline:
                    return False  # dropped: the replica had not reconnected yet
                time.sleep(0.1)
            return True

        wait_until(stored, WAIT_S, f"{replica.name} never stored a row again")
    # ... the rate limit is shared again ...
    wait_until(lambda: _limit_shared(a, b), WAIT_S, "the replicas never counted together again")
    # ... and a deletion on A reaches B.
    generate_in_browser(b, browser, next(_addresses))
    delete_my_data(a, browser, address)
    wait_until(lambda: history(b, browser, address) == [], WAIT_S, "B kept the visitor's image")


def _limit_shared(a: AppProcess, b: AppProcess) -> bool:
    """One fresh visitor: admitted RATE_PER_MIN times across A and B, then refused on both."""
    address = next(_addresses)
    admitted = [text_to_image((a, b)[i % 2], address)["success"] for i in range(RATE_PER_MIN)]
    refused = [not text_to_image(replica, address)["success"] for replica in (a, b)]
    return all(admitted) and all(refused)
