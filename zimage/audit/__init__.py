"""A black-box privacy audit of a running copy of the Z-Image Space: it reads the policy the copy
serves and checks each promise with an observable effect from outside, with only its public URL
and no credentials, sending no more requests than one visitor would.

    python -m zimage.audit https://owner-space.hf.space [--json] [--quick] [--no-browser]

From a script or CI:

    from zimage.audit import AuditOptions, audit_copy
    report = audit_copy("https://owner-space.hf.space", AuditOptions(quick=True))
    assert not report.broken, report.broken
"""

from zimage.audit.model import AuditError, Promise, Report, Result, Status
from zimage.audit.runner import PROMISES, AuditOptions, audit_copy

__all__ = [
    "PROMISES",
    "AuditError",
    "AuditOptions",
    "Promise",
    "Report",
    "Result",
    "Status",
    "audit_copy",
]
