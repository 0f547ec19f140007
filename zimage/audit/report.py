"""A report as a person reads it (a line per promise) and as a program reads it (JSON)."""

from __future__ import annotations

import json
from typing import Any

from zimage.audit.model import Report, Status

STATUS_WIDTH = max(len(status.value) for status in Status)


def announced(policy: dict[str, Any]) -> str:
    """What the copy's notice and configuration announce, in a sentence."""
    parts = [f"policy version {policy.get('banner_version') or '?'}"]
    if policy.get("output_ttl_s") is not None:
        parts.append(f"images kept {policy['output_ttl_s']:g} s")
    if policy.get("usage_log") is False:
        parts.append("no usage log")
    elif policy.get("usage_log"):
        prompts = "prompts logged" if policy.get("prompts_logged") else "prompts not logged"
        parts.append(f"usage log kept {policy.get('log_retention_days'):g} days, {prompts}")
    if policy.get("max_upload_bytes") is not None:
        parts.append(f"uploads up to {policy['max_upload_bytes'] / 2**20:g} MB")
    return "; ".join(parts)


def as_text(report: Report) -> str:
    digests = ", ".join(
        f"{language} {digest}"
        for language, digest in report.policy.get("policy_sha256", {}).items()
    )
    lines = [
        f"Privacy audit of {report.url} ({report.audited_at})",
        f"The copy announces: {announced(report.policy)}",
        f"Policy text sha256: {digests or 'none served'}",
        "",
    ]
    for result in report.results:
        status = result.status.value
        shown = status.upper() if result.status is Status.BROKEN else status
        lines.append(
            f"{shown:<{STATUS_WIDTH}}  {result.promise.key:<20} {result.promise.statement}: "
            f"{result.evidence}"
        )
    counts = ", ".join(f"{len(report.with_status(status))} {status.value}" for status in Status)
    lines += [
        "",
        f"{len(report.results)} promises: {counts}.",
        f"Requests sent: {report.requests_sent} by the audit"
        + (
            f", {report.browser_requests} by the headless browser."
            if report.browser_requests
            else "."
        ),
    ]
    return "\n".join(lines) + "\n"


def as_json(report: Report) -> str:
    document = {
        "url": report.url,
        "audited_at": report.audited_at,
        "policy": report.policy,
        "results": [result.as_json() for result in report.results],
        "summary": {status.value: len(report.with_status(status)) for status in Status},
        "requests": {"audit": report.requests_sent, "browser": report.browser_requests},
        "exit_status": report.exit_status,
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
