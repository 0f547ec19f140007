"""The usage log keeps only what the policy allows, forgets on time and on request."""

from __future__ import annotations

import itertools
import json
import logging
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.launcher import WAIT_S, wait_until
from zimage.privacy.usage_log import IpHasher, UsageEvent, UsageLog, browser_family, os_family
from zimage.privacy.usage_store import SqliteUsageStore, UsageRow

CHROME_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.6778.86 Safari/537.36"
)
RAW_IP = "203.0.113.77"
PROMPT = "a lighthouse made of orange marmalade"


class FakeClock:
    """A settable UTC clock."""

    def __init__(self, start: datetime = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def make_event(**overrides: Any) -> UsageEvent:
    fields: dict[str, Any] = {
        "endpoint": "generate",
        "params": {"resolution": "1024x1024", "steps": 8, "seed": 42},
        "duration_s": 1.2345,
        "outcome": "ok",
        "user_agent": CHROME_UA,
        "client_ip": RAW_IP,
        "pseudonym": "pseudo-alice-7f3a",
    }
    fields.update(overrides)
    return UsageEvent(**fields)


def store_bytes(path: Path) -> bytes:
    """Every byte SQLite keeps for this database: the file and any journal, WAL or SHM."""
    return b"".join(p.read_bytes() for p in sorted(path.parent.glob(path.name + "*")))


@contextmanager
def locked_by_another_program(path: Path) -> Iterator[sqlite3.Connection]:
    """The database file locked by another connection (a backup, a reader) until the block
    ends, or until the block rolls it back itself."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        yield other
    finally:
        if other.in_transaction:
            other.execute("ROLLBACK")
        other.close()


def count_rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*) FROM usage").fetchone()[0]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "usage.db"


def test_one_record_is_one_row_with_reduced_fields(db_path: Path, clock: FakeClock) -> None:
    usage = UsageLog(db_path, clock=clock)
    assert usage.available
    assert usage.record(make_event())

    rows = usage.rows_for("pseudo-alice-7f3a")
    assert len(rows) == 1
    row = rows[0]
    assert row["ts"] == "2026-03-01T12:00:00.000000Z"
    assert row["day"] == "2026-03-01"
    assert row["endpoint"] == "generate"
    assert row["params"] == {"resolution": "1024x1024", "steps": 8, "seed": 42}
    assert row["duration_ms"] == 1234
    assert row["outcome"] == "ok"
    assert row["browser"] == "Chrome"
    assert row["os"] == "Windows"
    assert len(row["ip_hash"]) == 16 and int(row["ip_hash"], 16) >= 0
    assert row["pseudonym"] == "pseudo-alice-7f3a"
    assert row["prompt"] is None
    usage.close()
    assert count_rows(db_path) == 1


def test_raw_ip_user_agent_and_prompt_never_reach_the_file(db_path: Path, clock: FakeClock) -> None:
    usage = UsageLog(db_path, clock=clock)
    assert usage.record(make_event(prompt=PROMPT))
    usage.close()

    data = store_bytes(db_path)
    assert b"Chrome" in data  # the family is there, so the file was really read
    for secret in (RAW_IP, CHROME_UA, "AppleWebKit/537.36", "131.0.6778.86", "Win64", PROMPT):
        assert secret.encode() not in data, secret


def test_params_never_hold_prompt_or_image(db_path: Path, clock: FakeClock) -> None:
    usage = UsageLog(db_path, clock=clock)
    params = {
        "prompt": PROMPT,
        "image": object(),
        "mask": b"\x00",
        "strength": 0.6,
        "method": "img2img",
    }
    assert usage.record(make_event(endpoint="edit", params=params))
    assert usage.rows_for("pseudo-alice-7f3a")[0]["params"] == {
        "strength": 0.6,
        "method": "img2img",
    }
    usage.close()
    assert PROMPT.encode() not in store_bytes(db_path)


def test_prompt_stored_only_when_operator_enabled_it(db_path: Path, clock: FakeClock) -> None:
    usage = UsageLog(db_path, log_prompts=True, clock=clock)
    assert usage.record(make_event(prompt=PROMPT))
    assert usage.rows_for("pseudo-alice-7f3a")[0]["prompt"] == PROMPT
    usage.close()
    assert PROMPT.encode() in store_bytes(db_path)


def test_ip_hash_stable_within_a_day_and_different_across_days(clock: FakeClock) -> None:
    hasher = IpHasher(clock)
    first = hasher.hash(RAW_IP)
    assert len(first) == 16 and RAW_IP not in first
    assert hasher.hash("198.51.100.1") != first
    clock.now = clock.now.replace(hour=23, minute=59)
    assert hasher.hash(RAW_IP) == first
    clock.advance(minutes=2)  # past midnight UTC: a new salt
    assert hasher.hash(RAW_IP) != first
    # Two servers (or a restart) never share a salt.
    assert IpHasher(clock).hash(RAW_IP) != hasher.hash(RAW_IP)


def test_purge_folds_old_rows_into_aggregates(db_path: Path, clock: FakeClock) -> None:
    usage = UsageLog(db_path, retention_days=90, clock=clock)
    usage.record(make_event())
    usage.record(make_event(outcome="error:oom"))
    clock.advance(days=1)
    usage.record(make_event(endpoint="edit"))
    clock.advance(days=50)
    usage.record(make_event(pseudonym="pseudo-bob"))

    clock.advance(days=41)  # 92 and 91 days after the first three rows, 41 after Bob's
    assert usage.purge_expired() == 3
    assert [r["pseudonym"] for r in usage.rows_for("pseudo-bob")] == ["pseudo-bob"]
    assert usage.rows_for("pseudo-alice-7f3a") == []
    assert usage.aggregates() == [
        {"day": "2026-03-01", "endpoint": "generate", "outcome": "error:oom", "count": 1},
        {"day": "2026-03-01", "endpoint": "generate", "outcome": "ok", "count": 1},
        {"day": "2026-03-02", "endpoint": "edit", "outcome": "ok", "count": 1},
    ]

    # A row for an already-aggregated day adds to its count; Bob's row expires too.
    clock.now = datetime(2026, 3, 1, 18, 0, tzinfo=timezone.utc)
    usage.record(make_event())
    clock.now = datetime(2026, 8, 1, tzinfo=timezone.utc)
    assert usage.purge_expired() == 2
    assert usage.purge_expired() == 0
    counts = {(a["day"], a["endpoint"], a["outcome"]): a["count"] for a in usage.aggregates()}
    assert counts[("2026-03-01", "generate", "ok")] == 2
    assert counts[("2026-04-21", "generate", "ok")] == 1
    usage.close()
    assert count_rows(db_path) == 0


def test_export_equals_rows_for_and_is_valid_json(db_path: Path, clock: FakeClock) -> None:
    usage = UsageLog(db_path, clock=clock)
    usage.record(make_event())
    clock.advance(minutes=5)
    usage.record(make_event(endpoint="edit", outcome="flagged"))
    usage.record(make_event(pseudonym="pseudo-bob"))

    document = json.loads(usage.export_json("pseudo-alice-7f3a"))
    assert document["pseudonym"] == "pseudo-alice-7f3a"
    assert document["exported_at"] == "2026-03-01T12:05:00.000000Z"
    assert document["rows"] == usage.rows_for("pseudo-alice-7f3a")
    assert [r["endpoint"] for r in document["rows"]] == ["generate", "edit"]
    assert json.loads(usage.export_json("nobody"))["rows"] == []
    usage.close()


def test_delete_for_erases_that_pseudonym_from_the_file(db_path: Path, clock: FakeClock) -> None:
    usage = UsageLog(db_path, clock=clock)
    for _ in range(3):
        usage.record(make_event())
    usage.record(make_event(pseudonym="pseudo-bob"))
    usage.close()
    assert b"pseudo-alice-7f3a" in store_bytes(db_path)

    usage = UsageLog(db_path, clock=clock)
    assert usage.delete_for("pseudo-alice-7f3a") == 3
    assert usage.rows_for("pseudo-alice-7f3a") == []
    assert len(usage.rows_for("pseudo-bob")) == 1
    assert usage.delete_for("pseudo-alice-7f3a") == 0
    # Erased at once, not only when the log is closed (no old copy waits in a WAL file).
    assert b"pseudo-alice-7f3a" not in store_bytes(db_path)
    usage.close()

    data = store_bytes(db_path)
    assert b"pseudo-alice-7f3a" not in data
    assert b"pseudo-bob" in data


def test_empty_pseudonym_matches_nobody(db_path: Path, clock: FakeClock) -> None:
    usage = UsageLog(db_path, clock=clock)
    usage.record(make_event(pseudonym=""))
    assert usage.rows_for("") == []
    assert usage.delete_for("") == 0
    usage.close()
    assert count_rows(db_path) == 1


def assert_is_safe_no_op(usage: UsageLog) -> None:
    assert not usage.available
    assert usage.record(make_event()) is False
    assert usage.rows_for("pseudo-alice-7f3a") == []
    assert json.loads(usage.export_json("pseudo-alice-7f3a"))["rows"] == []
    assert usage.delete_for("pseudo-alice-7f3a") == 0
    assert usage.purge_expired() == 0
    assert usage.aggregates() == []
    usage.start_retention_job(interval_s=0.01)
    usage.close()


def test_path_that_is_a_directory(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert_is_safe_no_op(UsageLog(tmp_path))
    assert "unavailable" in caplog.text


def test_file_with_garbage_content(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    path.write_bytes(b"this is not a database, just garbage\n" * 200)
    assert_is_safe_no_op(UsageLog(path))


def test_parent_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("x")
    assert_is_safe_no_op(UsageLog(tmp_path / "plain-file" / "usage.db"))


READ_ONLY_CHECK = """
import errno, sys
from pathlib import Path
from tests.privacy.test_usage_log import UsageLog, assert_is_safe_no_op
folder = Path(sys.argv[1])
try:
    (folder / "probe").write_text("x")
    sys.exit("the folder is writable: the check would prove nothing")
except OSError as error:
    assert error.errno == errno.EROFS, error
assert_is_safe_no_op(UsageLog(folder / "sub" / "usage.db"))
assert_is_safe_no_op(UsageLog(folder / "usage.db"))
print("no-op on a read-only folder")
"""


def test_read_only_directory(tmp_path: Path) -> None:
    """A folder the log cannot write to leaves a no-op log. Made read-only by a read-only
    bind mount in a private mount namespace, which holds for root too (file modes do not)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    mount_read_only = (
        'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    )
    completed = subprocess.run(
        [
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            mount_read_only,
            "sh",
            str(folder),
            sys.executable,
            "-c",
            READ_ONLY_CHECK,
            str(folder),
        ],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stdout.strip() == "no-op on a read-only folder"
    assert list(folder.iterdir()) == []


def test_a_store_that_holds_the_writer_never_holds_the_caller(clock: FakeClock) -> None:
    store = HeldStore()
    usage = UsageLog(store, clock=clock)  # type: ignore[arg-type]
    assert usage.record(make_event())
    assert store.writing.wait(WAIT_S), "the writer never took the row"
    # The writer is held in the store: a record that waited for it would not return before
    # the release (and then not queued, as the write fails).
    for _ in range(19):
        assert usage.record(make_event())
    assert usage.pending == 19
    store.release.set()
    wait_until(lambda: usage.dropped == 20, WAIT_S, "the rows were never dropped")
    usage.close()


def test_a_locked_database_drops_rows_counts_them_and_recovers(
    db_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    usage = UsageLog(db_path, clock=clock)
    with locked_by_another_program(db_path):
        with caplog.at_level(logging.WARNING):
            for _ in range(20):
                assert usage.record(make_event())  # queued; the writer meets the lock
            wait_until(lambda: usage.dropped == 20, WAIT_S, "the rows were never dropped")
        assert usage.dropped == 20 and usage.pending == 0
        assert "20 dropped since start" in caplog.text or "dropped since start" in caplog.text
        assert RAW_IP not in caplog.text and CHROME_UA not in caplog.text
    assert usage.record(make_event())  # recovers once the lock is gone
    assert len(usage.rows_for("pseudo-alice-7f3a")) == 1
    usage.close()
    assert count_rows(db_path) == 1


def test_a_full_queue_drops_new_rows_and_counts_them(db_path: Path, clock: FakeClock) -> None:
    usage = UsageLog(db_path, clock=clock, max_pending=5)
    with locked_by_another_program(db_path):
        accepted = [usage.record(make_event()) for _ in range(40)]
        # Accepted: at most the writer's batch in hand (<= 5) and a full queue (5).
        assert accepted.count(True) <= 2 * 5
        assert usage.pending <= 5
    usage.close()
    assert usage.dropped + count_rows(db_path) == 40


def test_delete_removes_queued_rows_so_none_is_written_later(
    db_path: Path, clock: FakeClock
) -> None:
    usage = UsageLog(db_path, clock=clock)
    with locked_by_another_program(db_path):
        usage.record(make_event(pseudonym="pseudo-bob"))
        wait_until(lambda: usage.pending == 0, WAIT_S, "the writer never took Bob's row")
        for _ in range(3):
            usage.record(make_event())
        assert usage.delete_for("pseudo-alice-7f3a") == 3  # still queued: removed there
    usage.record(make_event(pseudonym="pseudo-bob"))
    usage.close()
    assert b"pseudo-alice-7f3a" not in store_bytes(db_path)
    assert count_rows(db_path) == 1


def test_reads_see_rows_still_queued_and_close_writes_them(db_path: Path, clock: FakeClock) -> None:
    usage = UsageLog(db_path, clock=clock)
    with locked_by_another_program(db_path) as other:
        usage.record(make_event(pseudonym="pseudo-bob"))
        # The writer holds Bob's row; Alice's waits in the queue.
        wait_until(lambda: usage.pending == 0, WAIT_S, "the writer never took Bob's row")
        usage.record(make_event())
        other.execute("ROLLBACK")
        (row,) = usage.rows_for("pseudo-alice-7f3a")
        assert row["outcome"] == "ok"
    for _ in range(50):
        usage.record(make_event(pseudonym="pseudo-carol"))
    usage.close()
    # Bob's row is written if the lock went within the store's busy timeout, else dropped.
    assert count_rows(db_path) == 52 - usage.dropped
    assert not usage.available and usage.record(make_event()) is False


def test_retention_job_purges_and_stops_promptly(db_path: Path, clock: FakeClock) -> None:
    usage = UsageLog(db_path, retention_days=90, clock=clock)
    usage.record(make_event())
    clock.advance(days=91)
    threads_before = set(threading.enumerate())
    usage.start_retention_job(interval_s=3600)
    (job,) = [t for t in threading.enumerate() if t not in threads_before]
    assert job.name == "usage-log-retention"
    wait_until(lambda: usage.aggregates() != [], WAIT_S, "never purged")
    assert usage.rows_for("pseudo-alice-7f3a") == []
    assert usage.aggregates()[0]["count"] == 1

    usage.stop_retention_job()
    assert not job.is_alive()  # woken at once from its hour's wait
    usage.close()


def test_concurrent_records_all_land(db_path: Path, clock: FakeClock) -> None:
    usage = UsageLog(db_path, clock=clock)
    threads = [threading.Thread(target=usage.record, args=(make_event(),)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(usage.rows_for("pseudo-alice-7f3a")) == 8
    usage.close()


# Real user-agent strings, one per line so the table reads as a table.
UA_FAMILIES = [
    ("Chrome", "Windows", CHROME_UA),
    ("Firefox", "Linux", "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"),
    (
        "Safari",
        "macOS",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    ),
    (
        "Edge",
        "Windows",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.70",
    ),
    (
        "Opera",
        "Windows",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0",
    ),
    (
        "Safari",
        "iOS",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    ),
    (
        "Chrome",
        "iOS",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
    ),
    (
        "Chrome",
        "Android",
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    ),
    (
        "Chrome",
        "ChromeOS",
        "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    ),
    ("other", "Windows", "Mozilla/5.0 (Windows NT 10.0; Trident/7.0; rv:11.0) like Gecko"),
    ("script", "other", "python-httpx/0.28.1"),
    ("script", "other", "python-requests/2.32.3"),
    ("script", "other", "curl/8.5.0"),
    ("other", "other", ""),
    # The other spellings each family goes by, each on its own.
    ("Edge", "Windows", "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 Chrome/70 Edge/18.17763"),
    ("Edge", "Android", "Mozilla/5.0 (Linux; Android 14) Chrome/131.0 Mobile EdgA/131.0.2903.87"),
    ("Edge", "iOS", "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) Version/17 EdgiOS/131.2903.86"),
    ("Opera", "Windows", "Opera/9.80 (Windows NT 6.1; WOW64) Presto/2.12.388 Version/12.18"),
    ("Firefox", "iOS", "Mozilla/5.0 (iPod touch; CPU iPhone OS 17_5) FxiOS/133.0 Mobile/15E148"),
    ("Chrome", "Linux", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chromium/131.0.0.0"),
    ("other", "iOS", "Mozilla/5.0 (iPod; U; CPU OS 4_3_5)"),
    ("other", "macOS", "Mozilla/5.0 (Macintosh; PPC)"),
    ("other", "macOS", "CFNetwork/1410 Darwin/22.6.0 (Mac OS X 13.5)"),
]


@pytest.mark.parametrize(("browser", "system", "user_agent"), UA_FAMILIES)
def test_browser_and_os_family(browser: str, system: str, user_agent: str) -> None:
    assert browser_family(user_agent) == browser
    assert os_family(user_agent) == system


# -- retention: on time, every time -------------------------------------------------------------


def test_the_retention_job_purges_again_at_every_interval(db_path: Path, clock: FakeClock) -> None:
    """Not only at start: each time the clock passes the retention age, the next run purges."""
    usage = UsageLog(db_path, retention_days=90, clock=clock)
    usage.start_retention_job(interval_s=0.05)
    try:
        for round_number in range(1, 4):
            usage.record(make_event(pseudonym=f"pseudo-{round_number}"))
            assert usage.rows_for(f"pseudo-{round_number}")
            clock.advance(days=91)
            wait_until(
                lambda n=round_number: not usage.rows_for(f"pseudo-{n}"),
                WAIT_S,
                f"round {round_number}: the expired row was never purged",
            )
            assert sum(a["count"] for a in usage.aggregates()) == round_number
    finally:
        usage.stop_retention_job()
    usage.close()


def test_a_row_is_kept_for_exactly_the_retention_period(db_path: Path, clock: FakeClock) -> None:
    usage = UsageLog(db_path, retention_days=90, clock=clock)
    usage.record(make_event())
    clock.advance(days=90)
    assert usage.purge_expired() == 0, "exactly 90 days old: still within the period"
    assert len(usage.rows_for("pseudo-alice-7f3a")) == 1
    clock.advance(microseconds=1)
    assert usage.purge_expired() == 1
    assert usage.rows_for("pseudo-alice-7f3a") == []
    usage.close()


def test_zero_day_retention_deletes_every_row_at_the_next_purge(
    db_path: Path, clock: FakeClock
) -> None:
    usage = UsageLog(db_path, retention_days=0, clock=clock)
    usage.record(make_event())
    usage.record(make_event(endpoint="edit"))
    clock.advance(seconds=1)
    assert usage.purge_expired() == 2
    assert usage.rows_for("pseudo-alice-7f3a") == []
    assert [a["count"] for a in usage.aggregates()] == [1, 1], "only daily counts remain"
    usage.close()
    assert count_rows(db_path) == 0
    with pytest.raises(ValueError, match="retention_days must be >= 0, got -1"):
        UsageLog(db_path, retention_days=-1, clock=clock)


# -- times are UTC, whatever the clock's or the machine's time zone -----------------------------


@pytest.fixture
def machine_zone(monkeypatch: pytest.MonkeyPatch):
    """Sets the process's local time zone (TZ and tzset) and restores it afterwards."""

    def set_zone(zone: str) -> None:
        monkeypatch.setenv("TZ", zone)
        time.tzset()

    yield set_zone
    monkeypatch.undo()
    time.tzset()


KIRITIMATI = timezone(timedelta(hours=14))  # the earliest zone: local date ahead of UTC's
BAKER_ISLAND = timezone(timedelta(hours=-12))  # the latest: local date behind UTC's


@pytest.mark.parametrize("zone", [KIRITIMATI, BAKER_ISLAND], ids=["UTC+14", "UTC-12"])
def test_rows_are_stamped_with_utc_time_and_day_from_any_clock_zone(
    db_path: Path, zone: timezone
) -> None:
    moment = datetime(2026, 3, 1, 23, 30, tzinfo=timezone.utc)
    usage = UsageLog(db_path, retention_days=1, clock=lambda: moment.astimezone(zone))
    usage.record(make_event())
    (row,) = usage.rows_for("pseudo-alice-7f3a")
    assert (row["ts"], row["day"]) == ("2026-03-01T23:30:00.000000Z", "2026-03-01")
    usage.close()


def test_a_naive_clock_is_read_as_utc_on_a_machine_in_another_zone(
    db_path: Path, machine_zone
) -> None:
    machine_zone("Etc/GMT-14")  # POSIX sign: UTC+14
    usage = UsageLog(db_path, clock=lambda: datetime(2026, 3, 1, 23, 30))
    usage.record(make_event())
    (row,) = usage.rows_for("pseudo-alice-7f3a")
    assert (row["ts"], row["day"]) == ("2026-03-01T23:30:00.000000Z", "2026-03-01")
    usage.close()


@pytest.mark.parametrize("zone", ["Etc/GMT-14", "Etc/GMT+12"])
def test_the_real_clock_stamps_utc_on_a_machine_in_another_zone(
    db_path: Path, machine_zone, zone: str
) -> None:
    machine_zone(zone)
    usage = UsageLog(db_path)
    before = datetime.now(timezone.utc)
    usage.record(make_event())
    after = datetime.now(timezone.utc)
    (row,) = usage.rows_for("pseudo-alice-7f3a")
    stamped = datetime.strptime(row["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert before <= stamped <= after
    assert row["day"] == stamped.date().isoformat()
    document = json.loads(usage.export_json("pseudo-alice-7f3a"))
    exported = datetime.strptime(document["exported_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert after <= exported.replace(tzinfo=timezone.utc) <= datetime.now(timezone.utc)
    usage.close()


def test_a_retention_cut_off_from_a_clock_in_another_zone_is_the_same_instant(
    db_path: Path,
) -> None:
    clock = FakeClock(datetime(2026, 3, 1, 23, 30, tzinfo=timezone.utc).astimezone(KIRITIMATI))
    usage = UsageLog(db_path, retention_days=90, clock=clock)
    usage.record(make_event())
    clock.advance(days=90)
    assert usage.purge_expired() == 0
    clock.advance(microseconds=1)
    assert usage.purge_expired() == 1
    usage.close()


@pytest.mark.parametrize("zone", [KIRITIMATI, BAKER_ISLAND], ids=["UTC+14", "UTC-12"])
def test_the_ip_salt_turns_at_utc_midnight_not_local_midnight(zone: timezone, machine_zone) -> None:
    machine_zone("Etc/GMT+12")
    clock = FakeClock(datetime(2026, 3, 1, 23, 50, tzinfo=timezone.utc).astimezone(zone))
    hasher = IpHasher(clock)
    first, local_day = hasher.hash(RAW_IP), clock.now.date()
    clock.advance(minutes=20)  # past UTC midnight; the local date has not changed
    assert clock.now.date() == local_day
    assert hasher.hash(RAW_IP) != first
    rotated = hasher.hash(RAW_IP)
    # Local midnight in this zone is 14 or 12 hours from UTC's: crossing it keeps the salt.
    local_midnight = datetime.combine(
        clock.now.date() + timedelta(days=1), datetime.min.time(), zone
    )
    clock.now = local_midnight - timedelta(minutes=10)
    assert hasher.hash(RAW_IP) == rotated
    clock.now = local_midnight + timedelta(minutes=10)
    assert hasher.hash(RAW_IP) == rotated


def test_the_ip_salt_is_random_each_day_not_derived_from_the_date(clock: FakeClock) -> None:
    one, other = IpHasher(clock), IpHasher(clock)
    hashes = set()
    for _ in range(3):
        assert one.hash(RAW_IP) != other.hash(RAW_IP)
        hashes.add(one.hash(RAW_IP))
        clock.advance(days=1)
    assert len(hashes) == 3


# -- what a row may hold ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["prompt", "negative_prompt", "image", "input_image", "mask", "Prompt", "MASK"]
)
def test_no_forbidden_parameter_is_ever_stored_even_as_plain_text(
    db_path: Path, clock: FakeClock, name: str
) -> None:
    """Each of the five, in any case, even as a short string and even with prompt logging on."""
    usage = UsageLog(db_path, log_prompts=True, clock=clock)
    secret = f"forbidden value of {name}"
    usage.record(make_event(params={name: secret, "steps": 8}))
    assert usage.rows_for("pseudo-alice-7f3a")[0]["params"] == {"steps": 8}
    usage.close()
    assert secret.encode() not in store_bytes(db_path)


def test_only_scalar_parameters_are_stored(db_path: Path, clock: FakeClock) -> None:
    usage = UsageLog(db_path, clock=clock)
    params = {
        "steps": 8,
        "shift": 3.0,
        "random_seed": True,
        "resolution": "1024x1024",
        "seed": None,
        7: "a key that is not text",
        "gallery": [{"path": "/tmp/x.png"}],
        "editor": {"background": "/tmp/y.png"},
        "pixels": b"\x89PNG",
        "size": (512, 512),
        "layers": {"/tmp/z.png"},
        "upload": object(),
    }
    usage.record(make_event(params=params))
    assert usage.rows_for("pseudo-alice-7f3a")[0]["params"] == {
        "steps": 8,
        "shift": 3.0,
        "random_seed": True,
        "resolution": "1024x1024",
        "seed": None,
        "7": "a key that is not text",
    }
    usage.close()
    for path in (b"/tmp/x.png", b"/tmp/y.png", b"/tmp/z.png", b"PNG"):
        assert path not in store_bytes(db_path)


# -- threads and shutdown -----------------------------------------------------------------------


def new_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t not in before]


def test_the_log_threads_never_keep_the_process_alive(db_path: Path, clock: FakeClock) -> None:
    before = set(threading.enumerate())
    usage = UsageLog(db_path, clock=clock)
    (writer,) = new_threads(before)
    assert (writer.name, writer.daemon) == ("usage-log-writer", True)
    usage.start_retention_job(interval_s=3600)
    usage.start_retention_job(interval_s=3600)  # a second start is a no-op
    (retention,) = [t for t in new_threads(before) if t is not writer]
    assert (retention.name, retention.daemon) == ("usage-log-retention", True)
    usage.close()
    assert not writer.is_alive() and not retention.is_alive()


def test_a_closed_log_is_unavailable_and_keeps_nothing_more(
    db_path: Path, clock: FakeClock
) -> None:
    usage = UsageLog(db_path, clock=clock)
    assert usage.record(make_event())
    usage.close()
    assert not usage.available
    assert usage.record(make_event()) is False
    assert usage.rows_for("pseudo-alice-7f3a") == []
    assert usage.delete_for("pseudo-alice-7f3a") == 0
    assert usage.purge_expired() == 0 and usage.aggregates() == []
    usage.close()  # a second close is harmless
    assert count_rows(db_path) == 1


def test_stopping_retention_before_starting_it_is_harmless(db_path: Path, clock: FakeClock) -> None:
    usage = UsageLog(db_path, retention_days=1, clock=clock)
    usage.stop_retention_job()
    usage.record(make_event())
    clock.advance(days=2)
    usage.start_retention_job(interval_s=3600)  # still starts, and purges at once
    wait_until(lambda: usage.aggregates() != [], WAIT_S, "never purged")
    usage.close()


def test_a_log_without_a_store_starts_no_thread() -> None:
    before = set(threading.enumerate())
    usage = UsageLog(None)
    assert new_threads(before) == [] and not usage.available
    assert_is_safe_no_op(usage)


# -- the store itself (usage_store.py) -------------------------------------------------------------


def test_the_store_makes_the_folders_it_is_put_in(tmp_path: Path) -> None:
    path = tmp_path / "not" / "made" / "yet" / "usage.db"
    store = SqliteUsageStore.open(path)
    assert store is not None and path.is_file()
    store.close()


def test_a_store_that_cannot_be_opened_is_named_with_the_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "plain-file").write_text("x")
    path = tmp_path / "plain-file" / "usage.db"
    with caplog.at_level(logging.WARNING, logger="zimage.privacy.usage_store"):
        assert SqliteUsageStore.open(path) is None
    (record,) = caplog.records
    assert record.getMessage() == (
        f"Usage log unavailable at {path}: [Errno 17] File exists: '{path.parent}'"
    )


def test_a_locked_store_gives_up_a_write_after_half_a_second(db_path: Path) -> None:
    """The writer thread, never a request, waits; but it must not wait for long: reads and
    deletions for visitors queue behind it."""
    store = SqliteUsageStore.open(db_path)
    assert store is not None
    row = UsageRow(
        "2026-03-01T12:00:00.000000Z", "2026-03-01", "g", "{}", 1, "ok", "", "", "", "p", None
    )
    # SQLite's own default would be 5 s.
    assert store._conn.execute("PRAGMA busy_timeout").fetchone() == (500,)
    with locked_by_another_program(db_path):
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            store.insert([row])
        assert time.monotonic() - started >= 0.5  # it did wait
    store.insert([row])
    assert count_rows(db_path) == 1
    store.close()


# -- a store that fails: reported readably, never a visitor's problem -------------------------------


class FailingStore:
    """A UsageStore whose every operation fails, as a lost database connection would.
    `while_reading` runs inside rows_for before it fails: what arrives meanwhile."""

    def __init__(self, while_reading: Any = None) -> None:
        self.while_reading = while_reading

    def insert(self, rows: Any) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    def rows_for(self, pseudonym: str) -> list[dict[str, Any]]:
        if self.while_reading:
            self.while_reading()
        raise sqlite3.OperationalError("disk I/O error")

    def delete_for(self, pseudonym: str) -> int:
        raise sqlite3.OperationalError("disk I/O error")

    def purge_before(self, cutoff_ts: str) -> int:
        raise sqlite3.OperationalError("disk I/O error")

    def aggregates(self) -> list[dict[str, Any]]:
        raise sqlite3.OperationalError("disk I/O error")

    def close(self) -> None:
        pass


class HeldStore(FailingStore):
    """A store that holds the writer in its first write until `release` (a database that does
    not answer), then fails it."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = threading.Event()
        self.release = threading.Event()

    def insert(self, rows: Any) -> None:
        self.writing.set()
        self.release.wait(WAIT_S)
        super().insert(rows)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "zimage.privacy.usage_log"]


def test_a_failing_store_is_reported_per_operation_and_breaks_nothing(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    usage = UsageLog(FailingStore(), clock=clock)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="zimage.privacy.usage_log"):
        assert usage.aggregates() == []  # nothing queued: nothing to report dropped
        assert warnings_of(caplog) == ["Usage aggregates not read: disk I/O error"]
        caplog.clear()
        assert usage.record(make_event())  # queued; the writer then fails to store it
        wait_until(lambda: usage.dropped == 1, WAIT_S, "never dropped")
        assert warnings_of(caplog) == [
            "Usage log: 1 row(s) dropped (the store failed: disk I/O error); 1 dropped since start"
        ]
        caplog.clear()
        assert usage.rows_for("pseudo-alice-7f3a") == []
        assert usage.delete_for("pseudo-alice-7f3a") == 0
        assert usage.purge_expired() == 0
        assert usage.aggregates() == []
    assert warnings_of(caplog) == [
        "Usage rows not read: disk I/O error",
        "Usage rows not deleted: disk I/O error",
        "Usage log purge failed: disk I/O error",
        "Usage aggregates not read: disk I/O error",
    ]
    usage.close()


def test_when_the_store_fails_a_visitor_still_sees_and_deletes_their_queued_rows(
    clock: FakeClock,
) -> None:
    usage: UsageLog

    def records_arrive() -> None:
        usage.record(make_event(pseudonym="pseudo-bob", params={"steps": 4}))
        usage.record(make_event(params={"steps": 8}))

    usage = UsageLog(FailingStore(while_reading=records_arrive), clock=clock)  # type: ignore[arg-type]
    usage.close()  # no writer: rows stay queued as long as the test needs
    usage._store, usage._closing = FailingStore(while_reading=records_arrive), False
    (row,) = usage.rows_for("pseudo-alice-7f3a")
    assert row == {
        "id": None,
        "ts": "2026-03-01T12:00:00.000000Z",
        "day": "2026-03-01",
        "endpoint": "generate",
        "params": {"steps": 8},
        "duration_ms": 1234,
        "outcome": "ok",
        "browser": "Chrome",
        "os": "Windows",
        "ip_hash": row["ip_hash"],
        "pseudonym": "pseudo-alice-7f3a",
        "prompt": None,
    }
    assert usage.pending == 2
    assert usage.delete_for("pseudo-alice-7f3a") == 1
    assert usage.pending == 1, "Bob's row is his"


def test_a_row_that_cannot_be_made_is_reported_and_never_breaks_the_request(
    db_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    usage = UsageLog(db_path, clock=clock)
    with caplog.at_level(logging.WARNING, logger="zimage.privacy.usage_log"):
        assert usage.record(make_event(duration_s=None)) is False
    (message,) = warnings_of(caplog)
    assert message == (
        "Usage row not recorded: unsupported operand type(s) for *: 'NoneType' and 'int'"
    )
    assert RAW_IP not in message
    usage.close()
    assert count_rows(db_path) == 0


def test_drops_are_reported_with_their_reason_at_most_every_ten_seconds(
    db_path: Path,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seconds = {"now": 0.0}  # a machine just started: the first drop is reported all the same
    monkeypatch.setattr(time, "monotonic", lambda: seconds["now"])
    usage = UsageLog(db_path, clock=clock, max_pending=0)  # every row finds the queue full
    with caplog.at_level(logging.WARNING, logger="zimage.privacy.usage_log"):
        assert usage.record(make_event()) is False
        seconds["now"] += 9.99
        assert usage.record(make_event()) is False
        seconds["now"] += 0.01  # exactly ten seconds after the last warning
        assert usage.record(make_event()) is False
        with usage._pending_changed:
            usage._closing = True  # a request arriving while the log closes
        seconds["now"] += 10
        assert usage.record(make_event()) is False
        usage.close()
    assert warnings_of(caplog) == [
        "Usage log: 1 row(s) dropped (the queue is full); 1 dropped since start",
        "Usage log: 1 row(s) dropped (the queue is full); 3 dropped since start",
        "Usage log: 1 row(s) dropped (closed); 4 dropped since start",
        "Usage log closed: 4 rows were dropped since start",
    ]


def test_stored_parameters_are_the_same_text_whatever_their_order(
    db_path: Path, clock: FakeClock
) -> None:
    usage = UsageLog(db_path, clock=clock)
    usage.record(make_event(params={"steps": 8, "seed": 1, "resolution": "1024x1024"}))
    usage.record(make_event(params={"resolution": "1024x1024", "seed": 1, "steps": 8}))
    usage.close()
    with sqlite3.connect(db_path) as conn:
        texts = {row[0] for row in conn.execute("SELECT params FROM usage")}
    assert texts == {'{"resolution": "1024x1024", "seed": 1, "steps": 8}'}


def test_the_export_is_laid_out_for_reading(db_path: Path, clock: FakeClock) -> None:
    usage = UsageLog(db_path, clock=clock)
    usage.record(make_event())
    document = usage.export_json("pseudo-alice-7f3a")
    usage.close()
    lines = document.splitlines()
    assert lines[:3] == [
        "{",
        '  "pseudonym": "pseudo-alice-7f3a",',
        '  "exported_at": "2026-03-01T12:00:00.000000Z",',
    ]


def test_the_retention_job_purges_every_hour_unless_told_otherwise(
    db_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    waited: list[float] = []

    class Stop(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            waited.append(timeout)  # type: ignore[arg-type]
            return True  # stop after the first wait

    usage = UsageLog(db_path, clock=clock)
    usage._stop = Stop()
    usage.start_retention_job()
    wait_until(lambda: waited != [], WAIT_S, "never waited")
    assert waited == [3600.0]
    usage.close()


def test_rows_are_retained_ninety_days_unless_the_operator_says_otherwise(
    db_path: Path, clock: FakeClock
) -> None:
    usage = UsageLog(db_path, clock=clock)
    usage.record(make_event())
    clock.advance(days=90)
    assert usage.purge_expired() == 0
    clock.advance(microseconds=1)
    assert usage.purge_expired() == 1
    usage.close()


def test_rows_land_in_the_store_one_after_another(db_path: Path, clock: FakeClock) -> None:
    """Without any read or flush: the writer stores each row as it comes."""
    usage = UsageLog(db_path, clock=clock)
    for expected in (1, 2, 3):
        usage.record(make_event())
        wait_until(lambda n=expected: count_rows(db_path) == n, WAIT_S, f"row {expected} missing")
    usage.close()


def test_after_a_failure_the_writer_tries_again_without_a_flush(
    db_path: Path, clock: FakeClock
) -> None:
    usage = UsageLog(db_path, clock=clock)
    with locked_by_another_program(db_path):
        usage.record(make_event())
        wait_until(lambda: usage.dropped == 1, WAIT_S, "the lock outlasted the busy timeout")
    usage.record(make_event())  # queued while the writer waits before trying again
    wait_until(lambda: count_rows(db_path) == 1, WAIT_S, "never tried again")
    usage.close()


def test_close_ends_the_writers_wait_after_a_failure_at_once(
    db_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An hour's wait: a close that waited for it would not end within WAIT_S.
    monkeypatch.setattr("zimage.privacy.usage_log._RETRY_AFTER_FAILURE_S", 3600.0)
    usage = UsageLog(db_path, clock=clock)
    with locked_by_another_program(db_path):
        usage.record(make_event())
        wait_until(lambda: usage.dropped == 1, WAIT_S, "the lock outlasted the busy timeout")
    closing = threading.Thread(target=usage.close)
    closing.start()
    closing.join(WAIT_S)
    assert not closing.is_alive(), "close waited for the writer's pause"


def test_a_failing_store_is_not_hammered_while_rows_keep_coming(clock: FakeClock) -> None:
    """After a failed write the writer pauses a second (rows keep queueing), so that a locked
    store is neither hammered nor kept from readers and deleters."""
    attempts: list[float] = []  # when the writer tried

    class LockedStore(FailingStore):
        def insert(self, rows: Any) -> None:
            attempts.append(time.monotonic())
            raise sqlite3.OperationalError("database is locked")

    usage = UsageLog(LockedStore(), clock=clock)  # type: ignore[arg-type]
    for _ in range(50):  # half a second of rows, or more on a busy machine
        usage.record(make_event())
        time.sleep(0.01)
    by_the_writer = list(attempts)  # close() then writes what is left once more
    usage.close()
    assert by_the_writer, "the writer never tried"
    gaps = [later - earlier for earlier, later in itertools.pairwise(by_the_writer)]
    assert all(gap >= 0.99 for gap in gaps), gaps  # a second apart; a busy machine only adds
