"""Consent decisions, banner text and policy version."""

from __future__ import annotations

import pytest

from zimage.privacy import (
    POLICY_VERSION,
    analytics_allowed,
    banner_markdown,
    banner_needs_showing,
    visitor_opted_out,
)


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
        "output_ttl_minutes": 30,
        "retention_days": 90,
        "analytics_enabled": True,
        "policy_updated": False,
        "log_prompts": False,
    }
    args.update(overrides)
    return banner_markdown(**args)  # type: ignore[arg-type]


def test_banner_states_what_is_kept_and_for_how_long() -> None:
    text = _banner(output_ttl_minutes=45, retention_days=60)
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
    text = _banner(analytics_enabled=False, output_ttl_minutes=1)
    assert "no usage log" in text
    assert "hash" not in text
    assert "90 days" not in text
    assert "1 minute." in text
    assert "under 13" in text
    assert POLICY_VERSION in text


def test_banner_is_short() -> None:
    assert len(_banner(policy_updated=True, log_prompts=True).splitlines()) <= 3
    assert "0.5 minutes" in _banner(output_ttl_minutes=0.5)
