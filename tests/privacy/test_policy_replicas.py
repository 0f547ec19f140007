"""PRIVACY.md and README state what several replicas sharing a PostgreSQL database keep, as the
code keeps it; the database URL's password stays out of logs and error lines.

The behaviour behind each statement is tested against a real server in tests/replicas/:
test_usage_store.py (same rows, autovacuum after a deletion, faults), test_link.py (deletions
reach every replica, notes expire), test_rate_limit.py (a shared count keyed by a hash) and
test_two_replicas.py (two app processes).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from zimage.guards.rate_limit import WINDOW_S
from zimage.privacy.usage_log import IpHasher
from zimage.replicas.link import TIDY_INTERVAL_S
from zimage.replicas.schema import MIGRATIONS
from zimage.replicas.usage_store import STORE_TIMEOUT_S
from zimage.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s" * 32


def policy() -> str:
    return " ".join((ROOT / "PRIVACY.md").read_text().split())


def test_privacy_md_says_what_postgresql_does_with_deleted_rows() -> None:
    text = policy()
    assert "point them at one PostgreSQL database instead (`ZIMAGE_USAGE_DB`)" in text
    assert "first only marked dead and stays in the table's file until VACUUM removes it" in text
    assert "autovacuum does within about a minute" in text
    assert "write-ahead log" in text and "backup, log archive or standby server" in text
    assert "keep backups no longer than the retention period" in text
    # What the code does: the usage log is vacuumed after any dead row, not after a fifth.
    settings = " ".join(MIGRATIONS[1][0].split())
    assert "autovacuum_vacuum_threshold = 0" in settings
    assert "autovacuum_vacuum_scale_factor = 0" in settings


def test_privacy_md_says_each_replica_hashes_addresses_with_its_own_key() -> None:
    text = policy()
    assert "Each server process has its own key, kept in its memory only" in text
    assert "can only overcount visitors, never link them" in text
    # Two replicas (two processes), the same address, the same day: two different hashes.
    assert IpHasher().hash("203.0.113.9") != IpHasher().hash("203.0.113.9")


def test_privacy_md_states_how_long_shared_rate_limit_rows_and_deletion_notes_live() -> None:
    text = policy()
    assert WINDOW_S + TIDY_INTERVAL_S == 90
    assert "the running copies delete them at most 90 seconds after your last request" in text
    assert "derived from the operator's secret (`ZIMAGE_BROWSER_SECRET`" in text
    assert "never stored in the database" in text
    assert Settings.from_env({}).output_ttl_s == 600
    assert "The note is deleted after the lifetime of images (10 minutes)" in text
    assert "your rows from every copy are shown, downloaded and deleted" in text
    assert "one at a time does it, so no row is counted twice" in text


def test_readme_lists_the_usage_database_setting() -> None:
    text = (ROOT / "README.md").read_text()
    assert "| `ZIMAGE_USAGE_DB` | `ZIMAGE_DATA_DIR/usage.sqlite3` |" in text
    assert "docs/SCALING.md" in text
    assert (ROOT / "docs" / "SCALING.md").is_file()


def test_the_usage_database_defaults_to_the_sqlite_file_of_one_machine() -> None:
    settings = Settings.from_env({"ZIMAGE_DATA_DIR": "/srv/zimage"})
    assert settings.usage_db == "/srv/zimage/usage.sqlite3"
    assert not settings.shared_usage_db
    elsewhere = Settings.from_env({"ZIMAGE_USAGE_DB": "/var/lib/zimage/log.db"})
    assert elsewhere.usage_db == "/var/lib/zimage/log.db" and not elsewhere.shared_usage_db


def test_the_database_password_never_reaches_the_log_or_an_error_line() -> None:
    url = "postgresql://zimage:hunter2-password@db.internal:5432/zimage?sslmode=require"
    settings = Settings.from_env({"ZIMAGE_USAGE_DB": url, "ZIMAGE_BROWSER_SECRET": SECRET})
    assert settings.shared_usage_db and settings.usage_db == url
    described = str(settings.describe())
    assert "hunter2" not in described
    assert "postgresql://zimage@db.internal:5432/zimage?sslmode=require" in described
    in_query = "postgresql://zimage@db.internal/zimage?password=hunter2-password"
    described = str(
        Settings.from_env({"ZIMAGE_USAGE_DB": in_query, "ZIMAGE_BROWSER_SECRET": SECRET}).describe()
    )
    assert "hunter2" not in described
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"ZIMAGE_USAGE_DB": url + "&bogus=hunter2-password"})
    message = str(caught.value)
    assert "ZIMAGE_USAGE_DB" in message and "hunter2" not in message and "\n" not in message


def test_replicas_must_share_the_operator_secret() -> None:
    with pytest.raises(SettingsError, match="set ZIMAGE_BROWSER_SECRET to the same value"):
        Settings.from_env({"ZIMAGE_USAGE_DB": "postgresql://zimage@db/zimage"})


def test_scaling_guide_names_the_shared_settings_and_each_one_exists() -> None:
    guide = " ".join((ROOT / "docs" / "SCALING.md").read_text().split())
    readme = (ROOT / "README.md").read_text()
    assert "Sticky sessions are required" in guide
    for shared in ("ZIMAGE_BROWSER_SECRET", "ZIMAGE_USAGE_DB", "ZIMAGE_TRUSTED_PROXY_HOPS"):
        assert f"| `{shared}` |" in guide, shared
    # Every setting the guide names is one the Space reads (README's table lists them all).
    named = set(re.findall(r"`(ZIMAGE_[A-Z_]+)`", guide))
    assert len(named) >= 8
    for setting in sorted(named):
        assert f"| `{setting}` |" in readme, setting
    # Its figures are the code's.
    assert (
        f"at most {Settings.rate_limit_wait_ms / 1000:g} s (`ZIMAGE_RATE_LIMIT_WAIT_MS`)" in guide
    )
    assert f"gives up on the database after {STORE_TIMEOUT_S:g} s" in guide
    assert "every replica tidies every 30 s" in guide and TIDY_INTERVAL_S == 30
