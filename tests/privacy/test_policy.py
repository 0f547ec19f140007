"""Consent decisions, banner text and policy version."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from zimage.privacy.policy import (
    POLICY_VERSION,
    BrowserKeys,
    KeyFileError,
    analytics_allowed,
    banner_markdown,
    banner_needs_showing,
    browser_state_key,
    visitor_opted_out,
)
from zimage.translations import CHINESE


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-GPC": "1"},
        {"sec-gpc": "1"},
        {"SEC-GPC": " 1 "},
        {"DNT": "1"},
        {"dnt": "1"},
        {"Dnt": "1\r"},
        {"User-Agent": "x", "DNT": "0", "Sec-GPC": "1"},
    ],
)
def test_gpc_or_dnt_means_opted_out(headers: dict[str, str]) -> None:
    assert visitor_opted_out(headers)
    assert not analytics_allowed(True, False, headers)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Sec-GPC": "0"},
        {"DNT": "0"},
        {"DNT": "unspecified"},
        {"User-Agent": "DNT: 1", "X-Sec-GPC": "1"},
    ],
)
def test_no_opt_out_signal(headers: dict[str, str]) -> None:
    assert not visitor_opted_out(headers)
    assert analytics_allowed(True, False, headers)


def test_operator_off_or_visitor_opt_out_disallows_analytics() -> None:
    assert not analytics_allowed(False, False, {})
    assert not analytics_allowed(True, True, {})
    assert not analytics_allowed(False, True, {"DNT": "0"})


def test_banner_needs_showing_until_current_version_acknowledged() -> None:
    assert banner_needs_showing(None)
    assert banner_needs_showing("")
    assert banner_needs_showing("2025-01-01")
    assert not banner_needs_showing(POLICY_VERSION)


def _banner(**overrides: object) -> str:
    args: dict[str, object] = {
        "output_ttl_s": 1800,
        "retention_days": 90,
        "analytics_enabled": True,
        "policy_updated": False,
        "log_prompts": False,
    }
    args.update(overrides)
    return banner_markdown(**args)  # type: ignore[arg-type]


def test_banner_states_what_is_kept_and_for_how_long() -> None:
    text = _banner(output_ttl_s=2700, retention_days=60)
    assert "45 minutes" in text
    assert "60 days" in text
    assert "under 13" in text
    assert POLICY_VERSION in text
    assert "Privacy and your data" in text
    assert "hash" in text and "IP" in text
    assert "prompts and images are not logged" in text
    assert "updated" not in text


def test_banner_when_prompts_are_logged() -> None:
    text = _banner(log_prompts=True)
    assert "prompts and images are not logged" not in text
    assert "your prompts" in text
    assert "images are never logged" in text


def test_banner_updated_lead_in_only_when_policy_updated() -> None:
    text = _banner(policy_updated=True)
    assert text.startswith("**The privacy policy was updated.**")
    assert "updated" not in _banner(policy_updated=False)


def test_banner_without_analytics_says_no_log_is_kept() -> None:
    text = _banner(analytics_enabled=False, output_ttl_s=60)
    assert "no usage log" in text
    assert "hash" not in text
    assert "90 days" not in text
    assert "1 minute." in text
    assert "under 13" in text
    assert POLICY_VERSION in text


def test_banner_is_short() -> None:
    assert len(_banner(policy_updated=True, log_prompts=True).splitlines()) <= 3
    assert "30 seconds" in _banner(output_ttl_s=30)
    assert "90 seconds" in _banner(output_ttl_s=90)


# -- the banner lists what is logged, in both prompt modes ---------------------------------------

LOGGED_FIELDS = (
    "a usage log: time, settings, duration, outcome, browser and OS family, "
    "and a daily-salted hash of your IP address (never the address itself)"
)


@pytest.mark.parametrize("log_prompts", [False, True])
def test_the_banner_lists_every_logged_field_whether_or_not_prompts_are_logged(
    log_prompts: bool,
) -> None:
    text = _banner(log_prompts=log_prompts)
    assert f"**Privacy:** this demo keeps {LOGGED_FIELDS}" in text
    said = (
        "plus your prompts; images are never logged"
        if log_prompts
        else ("prompts and images are not logged")
    )
    assert f"(never the address itself){', ' if log_prompts else '; '}{said}." in text
    assert "Log rows are deleted after 90 days (only daily counts remain); you can opt out." in text


def test_the_banner_counts_days_and_minutes_in_words() -> None:
    assert "deleted after 1 day (only" in _banner(retention_days=1)
    assert "deleted after 0 days (only" in _banner(retention_days=0)
    assert "from the server after 2 minutes." in _banner(output_ttl_s=120)
    assert "from the server after 1 minute." in _banner(output_ttl_s=60)


def test_the_banner_ends_with_the_policy_version_on_its_own_line() -> None:
    lines = _banner().split("\n\n")
    assert lines[-1] == (
        "Full policy and your data: the *Privacy and your data* tab · "
        f"policy version {POLICY_VERSION}"
    )
    assert lines[0].endswith("Not for children under 13.")


def test_the_banner_begins_with_what_is_kept_unless_the_policy_was_updated() -> None:
    assert _banner().startswith("**Privacy:** this demo keeps a usage log: ")
    assert _banner(analytics_enabled=False).startswith("**Privacy:** this demo keeps no usage log.")


# -- the banner in Chinese: every part of it, in every mode --------------------------------------


@pytest.mark.parametrize("analytics_enabled", [True, False])
@pytest.mark.parametrize("log_prompts", [True, False])
@pytest.mark.parametrize("policy_updated", [True, False])
def test_a_chinese_page_gets_the_whole_banner_in_chinese(
    analytics_enabled: bool, log_prompts: bool, policy_updated: bool
) -> None:
    text = _banner(
        analytics_enabled=analytics_enabled,
        log_prompts=log_prompts,
        policy_updated=policy_updated,
        output_ttl_s=2700,
        retention_days=60,
        language=CHINESE,
    )
    # Nothing of the English banner is left: no English word (IP, a version of digits are fine).
    assert re.findall(r"[A-Za-z]{3,}", text) == []
    assert text.startswith("**隐私政策已更新**。**隐私**：" if policy_updated else "**隐私**：")
    assert "生成的图像在 45 分钟后从服务器删除。不面向 13 岁以下儿童。" in text
    assert text.endswith(f"政策版本 {POLICY_VERSION}")
    if analytics_enabled:
        assert "一份使用日志：时间、设置、耗时、结果、浏览器和操作系统类别" in text
        assert "日志记录在 60 天后删除" in text
        said = "，以及您的提示词；图像从不记录" if log_prompts else "；提示词和图像不会记录"
        assert f"（从不保存地址本身）{said}。" in text
    else:
        assert "**隐私**：本演示不保存使用日志。" in text
        assert "使用日志：" not in text


# -- the browser-state key file -----------------------------------------------------------------

KEY_CHARACTERS = re.compile(r"[A-Za-z0-9_-]+")


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """The most permissive umask: the modes below must come from the code, not from it."""
    old = os.umask(0)
    yield
    os.umask(old)


def test_a_new_key_file_is_owner_only_in_new_owner_only_folders(
    tmp_path: Path, permissive_umask: None, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "data" / "browser-state.key"
    with caplog.at_level(logging.WARNING):
        key = browser_state_key(path)
    assert caplog.text == "", "a first start is not a repair"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(key) == 43 and KEY_CHARACTERS.fullmatch(key), "32 random bytes, URL-safe"
    assert path.read_bytes() == key.encode()
    assert os.listdir(path.parent) == ["browser-state.key"]


def test_a_replaced_key_file_is_owner_only_and_leaves_no_temp_file(
    tmp_path: Path, permissive_umask: None, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "browser-state.key"
    path.write_text("broken")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        key = browser_state_key(path)
    (warning,) = caplog.records
    assert warning.getMessage() == f"browser-state key {path} is empty or malformed: replacing it"
    assert "broken" not in caplog.text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == key != "broken"
    assert os.listdir(tmp_path) == ["browser-state.key"]


@pytest.mark.parametrize("length", [43, 64, 128])
def test_an_operators_own_key_of_43_to_128_url_safe_characters_is_kept(
    tmp_path: Path, length: int
) -> None:
    path = tmp_path / "browser-state.key"
    own = ("Ab3-_" * 30)[:length]
    path.write_text(f"{own}\n")  # as `echo` writes it
    assert browser_state_key(path) == own
    assert path.read_text() == f"{own}\n", "left as the operator wrote it"


@pytest.mark.parametrize("stored", ["a" * 42, "a" * 129, "a" * 42 + "+", "a" * 42 + "é"])
def test_a_key_too_short_too_long_or_not_url_safe_is_replaced(tmp_path: Path, stored: str) -> None:
    path = tmp_path / "browser-state.key"
    path.write_text(stored)
    key = browser_state_key(path)
    assert key != stored and len(key) == 43
    assert path.read_text() == key


def test_the_key_is_written_beside_the_key_file_not_in_the_system_temp_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Moved into place atomically, so made on the key file's own file system."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-temp-folder"))
    path = tmp_path / "data" / "browser-state.key"
    assert browser_state_key(path) == path.read_text()
    path.write_text("")
    assert browser_state_key(path) == path.read_text() != ""


def test_a_symlink_to_nowhere_in_place_of_the_key_file_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "browser-state.key"
    path.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(KeyFileError) as refused:
        browser_state_key(path)
    assert str(refused.value) == (
        f"cannot store the browser-state key {path}: No such file or directory"
    )
    assert not (tmp_path / "elsewhere").exists()
    assert sorted(os.listdir(tmp_path)) == ["browser-state.key"], "no temp file left"


def test_a_key_file_that_cannot_be_read_says_why(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("x")
    path = blocked / "browser-state.key"
    with pytest.raises(KeyFileError) as refused:
        browser_state_key(path)
    assert str(refused.value) == f"cannot read the browser-state key {path}: Not a directory"


def test_a_failure_the_system_does_not_describe_is_named_by_its_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "browser-state.key"

    def unreadable(self: Path) -> bytes:
        raise PermissionError  # no errno, no text

    monkeypatch.setattr(Path, "read_bytes", unreadable)
    with pytest.raises(KeyFileError) as refused:
        browser_state_key(path)
    assert str(refused.value) == f"cannot read the browser-state key {path}: PermissionError"


# -- what the browser gets and what the server signs --------------------------------------------

SECRET = "an-operator-secret-of-some-length-0123456789"
PSEUDONYM = re.compile(r"([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{22})")


def test_pseudonyms_are_url_safe_with_128_random_bits_and_a_128_bit_signature() -> None:
    keys = BrowserKeys(SECRET)
    pseudonyms = {keys.new_pseudonym() for _ in range(50)}
    assert len(pseudonyms) == 50
    for pseudonym in pseudonyms:
        match = PSEUDONYM.fullmatch(pseudonym)
        assert match, pseudonym
        assert len(base64.urlsafe_b64decode(match.group(1) + "==")) == 16
        assert len(base64.urlsafe_b64decode(match.group(2) + "==")) == 16
        assert keys.verified_id(pseudonym) == match.group(1)


def test_the_browser_key_cannot_sign_pseudonyms() -> None:
    """What the browser holds is public: a signature made with it must not verify."""
    keys = BrowserKeys(SECRET)
    public = bytes.fromhex(keys.browser_state_secret)
    assert len(public) == 32
    for signing_key in (public, SECRET.encode()):
        digest = hmac.new(signing_key, b"chosen-id", hashlib.sha256).digest()
        signature = base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
        assert keys.verified_id(f"chosen-id.{signature}") == ""


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError) as refused:
        BrowserKeys("")
    assert str(refused.value) == "the browser secret is empty"


def test_what_the_secret_gives_is_fixed_across_starts_replicas_and_releases() -> None:
    """Replicas of different releases share one secret during a rolling update, and visitors
    come back after restarts: the browser key and the signatures are fixed functions of the
    secret. These values were made by the release that introduced signed pseudonyms; a change
    would log every visitor out of their data and lose their stored choices."""
    keys = BrowserKeys(SECRET)
    assert keys.browser_state_secret == (
        "4d8600f884ecd64a87983f082f628db2a3dbdcc4310aa82a1b35ac029d0547a2"
    )
    issued_earlier = "Zk9vZF9mb3JfYV95ZWFyXw.3AI3JCiiW6vK6-B8dAzAXA"
    assert keys.verified_id(issued_earlier) == "Zk9vZF9mb3JfYV95ZWFyXw"
    assert BrowserKeys(SECRET + "x").verified_id(issued_earlier) == ""
