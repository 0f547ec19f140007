"""Policy version, banner text and consent decisions (opt-out, GPC/DNT)."""

from __future__ import annotations

from collections.abc import Mapping

# Bump when PRIVACY.md changes meaning: visitors who acknowledged an older version
# see the banner again.
POLICY_VERSION: str = "2026-11-29"

_OPT_OUT_HEADERS = ("sec-gpc", "dnt")


def visitor_opted_out(headers: Mapping[str, str]) -> bool:
    """True when the request carries Global Privacy Control (`Sec-GPC: 1`) or `DNT: 1`."""
    return any(
        name.lower() in _OPT_OUT_HEADERS and value.strip() == "1" for name, value in headers.items()
    )


def analytics_allowed(
    operator_enabled: bool, visitor_choice_opt_out: bool, headers: Mapping[str, str]
) -> bool:
    """Whether this request may be written to the usage log."""
    if not operator_enabled or visitor_choice_opt_out:
        return False
    return not visitor_opted_out(headers)


def banner_needs_showing(acknowledged_version: str | None) -> bool:
    """True unless the visitor has acknowledged the current policy version."""
    return acknowledged_version != POLICY_VERSION


def _plural(amount: float, unit: str) -> str:
    return f"{amount:g} {unit}" + ("" if amount == 1 else "s")


def banner_markdown(
    output_ttl_minutes: float,
    retention_days: int,
    analytics_enabled: bool,
    policy_updated: bool,
    *,
    log_prompts: bool,
) -> str:
    """The privacy banner: what is kept, for how long, for whom, and the policy version."""
    if analytics_enabled:
        logged = (
            "a usage log: time, settings, duration, outcome, browser and OS family, "
            "and a daily-salted hash of your IP address (never the address itself)"
        )
        if log_prompts:
            logged += ", plus your prompts; images are never logged"
        else:
            logged += "; prompts and images are not logged"
        kept = (
            f"**Privacy:** this demo keeps {logged}. Log rows are deleted after "
            f"{_plural(retention_days, 'day')} (only daily counts remain); you can opt out."
        )
    else:
        kept = "**Privacy:** this demo keeps no usage log."
    lead_in = "**The privacy policy was updated.** " if policy_updated else ""
    return (
        f"{lead_in}{kept} Generated images are deleted from the server after "
        f"{_plural(output_ttl_minutes, 'minute')}. Not for children under 13.\n\n"
        f"[Privacy policy and your data](#privacy) · policy version {POLICY_VERSION}"
    )
