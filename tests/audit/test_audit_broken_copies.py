"""Copies broken on purpose (tests/audit/broken_copy.py): the audit reports each breakage by the check
that owns it, and by nothing else.

The lifetime copy is audited with the wait for the image lifetime; the others skip it (quick,
no wait at all) and read the page statically, except the copy whose page loads a third-party
script, which is loaded in headless Chromium where one runs, and scanned statically too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.audit.broken_copy import BREAKAGES, THIRD_PARTY_SCRIPT
from tests.launcher import launched_app
from tests.audit.test_audit_app import BROKEN_TODAY
from zimage.audit import AuditOptions, Status, audit_copy
from zimage.audit.checks.page import check_page
from zimage.audit.client import CopyClient
from zimage.audit.events import GradioCopy

# Each breakage, and the one promise that must be reported broken.
REPORTED_BY = {
    "lifetime": "outputs.lifetime",
    "metadata": "outputs.no_metadata",
    "gpc": "consent.gpc",
    "third_party": "page.third_party",
    "policy_text": "policy.published",
}


def test_every_breakage_has_its_check() -> None:
    assert REPORTED_BY.keys() == BREAKAGES.keys()


@pytest.mark.parametrize("breakage", list(REPORTED_BY))
def test_a_breakage_is_reported_by_its_own_check_only(breakage: str, tmp_path: Path) -> None:
    # The lifetime copy announces 3 s and keeps images 60 s; the others keep what they say.
    settings = {"ZIMAGE_OUTPUT_TTL_S": "3" if breakage == "lifetime" else "10"}
    command = [sys.executable, "tests/audit/broken_copy.py", breakage, "app.py"]
    options = AuditOptions(
        browser=breakage == "third_party",
        quick=breakage != "lifetime",
        quick_wait_limit_s=0,
    )
    with launched_app(tmp_path, settings, command=command) as app:
        report = audit_copy(app.url, options)
        if breakage == "third_party":
            copy = GradioCopy(CopyClient(app.url), lambda seconds, why: None)
            static, _ = check_page(copy, use_browser=False)
    broken = {result.promise.key: result.evidence for result in report.broken}
    assert REPORTED_BY[breakage] in broken, report.results
    assert broken.keys() - BROKEN_TODAY == {REPORTED_BY[breakage]}, broken
    if breakage == "third_party":
        assert THIRD_PARTY_SCRIPT in broken["page.third_party"]
        assert static.status is Status.BROKEN and THIRD_PARTY_SCRIPT in static.evidence
