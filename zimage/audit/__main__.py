"""python -m zimage.audit URL: audit a running copy; exit 0 when no promise is broken, 1 when
one is, 2 when the copy cannot be audited (not reachable, not this Space)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import httpx

from zimage.audit.model import AuditError
from zimage.audit.report import as_json, as_text
from zimage.audit.runner import AuditOptions, audit_copy

CANNOT_AUDIT = 2


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m zimage.audit",
        description="Check from outside that a running copy of the Z-Image Space keeps its "
        "privacy policy. Needs only its public address; sends what one visitor would (about 50 "
        "requests: five small images, one upload just over the size limit; the report counts "
        "them).",
    )
    parser.add_argument("url", help="the copy's address, e.g. https://owner-space.hf.space")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="skip waits longer than --quick-limit (the image lifetime, 10 minutes by default)",
    )
    parser.add_argument(
        "--quick-limit", type=float, default=60.0, metavar="S", help="with --quick (default 60 s)"
    )
    parser.add_argument(
        "--no-browser",
        action="store_true",
        help="read the page's HTML and style sheets instead of loading it in headless Chromium",
    )
    parser.add_argument(
        "--rate-limit",
        type=int,
        metavar="N",
        help="the copy's rate limit in requests a minute, if you know it (ZIMAGE_RATE_PER_MIN): "
        "checked with N + 1 requests",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    options = AuditOptions(
        browser=not arguments.no_browser,
        quick=arguments.quick,
        quick_wait_limit_s=arguments.quick_limit,
        rate_per_min=arguments.rate_limit,
        progress=sys.stderr,
    )
    try:
        report = audit_copy(arguments.url, options)
    except (AuditError, httpx.HTTPError) as error:
        print(f"Cannot audit {arguments.url}: {error}", file=sys.stderr)
        return CANNOT_AUDIT
    sys.stdout.write(as_json(report) if arguments.json else as_text(report))
    return report.exit_status


if __name__ == "__main__":
    sys.exit(main())
