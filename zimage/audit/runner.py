"""One audit of one copy: read the policy it serves, then check each promise in an order that
keeps the audit short (the long wait for the image lifetime comes after the other checks, the
rate limit, which holds the visitor back for a minute, last)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TextIO

import httpx

from zimage.audit.checks import answers, consent, limits, outputs, page, policy
from zimage.audit.client import CopyClient
from zimage.audit.events import GradioCopy
from zimage.audit.model import AuditError, Promise, Report, Result
from zimage.audit.progress import Waits
from zimage.audit.releases import Releases
from zimage.audit.served_policy import read_served_policy

# The report's order: the policy, then what happens to images, data, the page, answers, limits.
PROMISES: tuple[Promise, ...] = (
    *policy.PROMISES,
    *outputs.PROMISES,
    *consent.PROMISES,
    *page.PROMISES,
    *answers.PROMISES,
    *limits.PROMISES,
)


@dataclass(frozen=True)
class AuditOptions:
    """`browser`: load the page in headless Chromium when it can run (else a static scan).
    `quick`: skip waits longer than `quick_wait_limit_s`. `rate_per_min`: the rate limit to
    check, for an operator who knows it (the copy does not announce it). `progress`: where
    waits are shown (None: nowhere)."""

    browser: bool = True
    quick: bool = False
    quick_wait_limit_s: float = 60.0
    rate_per_min: int | None = None
    progress: TextIO | None = None


def audit_copy(url: str, options: AuditOptions | None = None) -> Report:
    """Audit the copy at `url`. Raises AuditError when it is not a Gradio app's page."""
    options = options or AuditOptions()
    client = CopyClient(url)
    waits = Waits(options.progress)
    copy = GradioCopy(client, waits.wait)
    try:
        served = read_served_policy(copy.config())
        results = policy.check_policy(served, Releases.load())
        image: outputs.MadeImage | None = None

        def made_image() -> list[Result]:
            nonlocal image
            image = outputs.make_image(copy, waits)
            return [outputs.check_metadata(image)]

        results += attempt([outputs.NO_METADATA, outputs.LIFETIME], made_image)
        results += attempt(consent.PROMISES, lambda: consent.check_consent(copy, served, waits))
        browser_requests = 0

        def page_loads() -> list[Result]:
            nonlocal browser_requests
            result, browser_requests = page.check_page(copy, options.browser)
            return [result]

        results += attempt(page.PROMISES, page_loads)
        folders = [image.server_folder] if image else []
        results += attempt([answers.ERRORS], lambda: [answers.check_errors(copy, folders)])
        results += attempt([limits.UPLOAD_SIZE], lambda: [limits.check_upload_size(copy, served)])
        if image is not None:
            wait_limit = options.quick_wait_limit_s if options.quick else None
            made = image
            results += attempt(
                [outputs.LIFETIME],
                lambda: [outputs.check_lifetime(copy, made, served, waits, wait_limit)],
            )
        results += attempt([limits.RATE], lambda: [limits.check_rate(copy, options.rate_per_min)])
        results.append(answers.check_headers(client.answers))
    finally:
        client.close()
    order = {promise.key: index for index, promise in enumerate(PROMISES)}
    return Report(
        url=client.url,
        audited_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        policy=served.summary(),
        results=sorted(results, key=lambda result: order[result.promise.key]),
        requests_sent=client.requests_sent,
        browser_requests=browser_requests,
    )


def attempt(promises: Sequence[Promise], run: Callable[[], list[Result]]) -> list[Result]:
    """The results of `run`; where the copy does not answer as expected, its promises are not
    checked (with the reason), never broken."""
    try:
        return run()
    except AuditError as error:
        reason = str(error)
    except httpx.HTTPError as error:
        reason = f"the connection failed: {str(error) or type(error).__name__}"
    return [promise.not_checked(reason) for promise in promises]
