"""Consent and the visitor's rights, seen as one browser sees them: requests made with Global
Privacy Control, Do Not Track or the opt-out toggle leave no row in "Your data"; a request made
without them leaves one row holding only what the policy lists; "Delete my data" empties the
data, deletes the images and ends the download link.

The page's events are called through Gradio's queue as the page calls them, with the browser
state the page keeps (a signed pseudonym the copy issues at page load).
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from zimage.audit.checks.outputs import SMALL_IMAGE, first_file
from zimage.audit.client import USER_AGENT
from zimage.audit.events import GradioCopy, files_in
from zimage.audit.model import AuditError, Promise, Result
from zimage.audit.progress import Waits
from zimage.audit.served_policy import ServedPolicy

GPC = Promise(
    "consent.gpc",
    "A request sent with Sec-GPC: 1 leaves no row in the usage log",
    "PRIVACY.md §5, §8",
)
DNT = Promise(
    "consent.dnt",
    "A request sent with DNT: 1 leaves no row in the usage log",
    "PRIVACY.md §5, §8",
)
OPT_OUT = Promise(
    "consent.opt_out",
    'With "Keep my requests out of the usage log" on, a request leaves no row',
    "PRIVACY.md §8",
)
ROW_CONTENTS = Promise(
    "log.contents",
    "A usage row holds only what the policy lists: no prompt unless announced, no browser "
    "string, no address",
    "PRIVACY.md §1.2",
)
DELETE = Promise(
    "rights.delete",
    '"Delete my data" empties the visitor\'s data and deletes their images at once',
    "PRIVACY.md §8",
)
EXPORT_LINK = Promise(
    "rights.export_link",
    'After "Delete my data", the download of the visitor\'s data is no longer served',
    "PRIVACY.md §7, §8",
)
PROMISES = (GPC, DNT, OPT_OUT, ROW_CONTENTS, DELETE, EXPORT_LINK)

# The fields PRIVACY.md §1.2 lists (the row's number, time and day, endpoint, settings,
# duration, outcome, browser and OS family, the IP hash, the pseudonym, the prompt if logged).
ROW_FIELDS = frozenset(
    {
        "id",
        "ts",
        "day",
        "endpoint",
        "params",
        "duration_ms",
        "outcome",
        "browser",
        "os",
        "ip_hash",
        "pseudonym",
        "prompt",
    }
)
BROWSER = "type:browserstate"
PROMPT = "a kite over a field, privacy audit"
# Each way of opting out: its promise, in words, the request headers, the toggle.
OPT_OUT_WAYS = (
    (GPC, "with Sec-GPC: 1", {"Sec-GPC": "1"}, False),
    (DNT, "with DNT: 1", {"DNT": "1"}, False),
    (OPT_OUT, "with the opt-out on", {}, True),
)


@dataclass(frozen=True)
class MyData:
    """What "Show my data" shows, and where its download is served."""

    rows: list[dict[str, Any]]
    images: list[Any]
    download_path: str | None
    made_at: float


@dataclass(frozen=True)
class Served:
    """A file fetched at some moment: its answer, and how old the file was then."""

    status: int
    age_s: float


class BrowserVisit:
    """One browser on the page: its state as the copy issued it at page load."""

    def __init__(self, copy: GradioCopy, waits: Waits) -> None:
        self.copy = copy
        self.waits = waits
        output = copy.succeeded("on_page_load", copy.inputs("on_page_load", {BROWSER: None}))
        state = output[0] if output else None
        if not isinstance(state, dict) or not state.get("pseudonym"):
            raise AuditError("page load gave the browser no pseudonym")
        self.browser: dict[str, Any] = state

    def generate(self, prompt: str, headers: Mapping[str, str], opt_out: bool) -> tuple[str, float]:
        """Generate as the Text-to-image tab does; (the image's path, when it was made)."""
        browser = {**self.browser, "opt_out": opt_out}
        values = {
            "generate.prompt": prompt,
            "generate.resolution": SMALL_IMAGE["resolution"],
            "controls.steps": SMALL_IMAGE["steps"],
            "controls.seed": SMALL_IMAGE["seed"],
            "controls.random_seed": False,
            "privacy.opt_out": opt_out,
            BROWSER: browser,
        }
        data = self.copy.inputs("generate_in_browser", values)
        output = self.copy.succeeded("generate_in_browser", data, headers)
        return self.copy.file_path(first_file(output)), self.waits.clock()

    def my_data(self) -> MyData:
        data = self.copy.inputs("show_my_data", {BROWSER: self.browser})
        output = self.copy.succeeded("show_my_data", data)
        shown = output[0] if output else None
        if not isinstance(shown, dict) or not isinstance(shown.get("usage_rows"), list):
            raise AuditError('"Show my data" did not show usage rows')
        downloads = list(files_in(output[1:]))
        return MyData(
            shown["usage_rows"],
            list(shown.get("images_in_memory") or []),
            self.copy.file_path(downloads[0]) if downloads else None,
            self.waits.clock(),
        )

    def delete_my_data(self) -> str:
        data = self.copy.inputs("delete_my_data", {BROWSER: self.browser})
        output = self.copy.succeeded("delete_my_data", data)
        return next((item for item in output if isinstance(item, str)), "")

    def fetch(self, path: str, made_at: float) -> Served:
        status = self.copy.client.get(path).status_code
        return Served(status, self.waits.clock() - made_at)


def check_consent(copy: GradioCopy, policy: ServedPolicy, waits: Waits) -> list[Result]:
    visit = BrowserVisit(copy, waits)
    rows = len(visit.my_data().rows)
    added: dict[Promise, int] = {}
    for promise, _, headers, opt_out in OPT_OUT_WAYS:
        visit.generate(f"{PROMPT} (opted out)", headers, opt_out)
        added[promise] = len(visit.my_data().rows) - rows
        rows += added[promise]
    # The same request without opting out, its prompt marked to be found in the row.
    token = uuid.uuid4().hex
    image_path, image_made_at = visit.generate(f"{PROMPT} {token}", {}, False)
    before = visit.my_data()
    control_added = len(before.rows) - rows
    download = before.download_path
    download_before = visit.fetch(download, before.made_at) if download else None
    image_before = visit.fetch(image_path, image_made_at)
    message = visit.delete_my_data()
    after = visit.my_data()
    image_after = visit.fetch(image_path, image_made_at)
    download_after = visit.fetch(download, before.made_at) if download else None
    return [
        *(
            _opted_out(promise, how, added[promise], control_added, policy)
            for promise, how, _, _ in OPT_OUT_WAYS
        ),
        _row_contents(before.rows[rows:], control_added, token, policy),
        _deleted(message, after, image_before, image_after, policy),
        _download_ended(download_before, download_after, policy),
    ]


def _opted_out(
    promise: Promise, how: str, added: int, control_added: int, policy: ServedPolicy
) -> Result:
    if added:
        return promise.broken(f"a request {how} left {added} row(s) in the visitor's data")
    if control_added == 1:
        return promise.kept(f"a request {how} left no row; the same request without it left one")
    if control_added == 0 and policy.usage_log is False:
        return promise.kept(f"a request {how} left no row (the notice says no usage log is kept)")
    return promise.not_checked(
        f"the same request without opting out left {control_added} rows: nothing to compare with"
    )


def _row_contents(
    new_rows: list[dict[str, Any]], control_added: int, token: str, policy: ServedPolicy
) -> Result:
    if policy.usage_log is False:
        return ROW_CONTENTS.judged(
            not new_rows,
            f"the notice says no usage log is kept; a request left {len(new_rows)} row(s)",
        )
    if control_added != 1:
        return ROW_CONTENTS.not_checked(f"a request left {control_added} rows, not one")
    row = new_rows[-1]
    text = json.dumps(row, ensure_ascii=False)
    problems = []
    if unlisted := sorted(set(row) - ROW_FIELDS):
        problems.append(f"fields the policy does not list: {unlisted}")
    if USER_AGENT in text:
        problems.append("the full browser identification string")
    if addresses := [value for value in _strings(row) if _is_address(value)]:
        problems.append(f"an IP address ({addresses[0]})")
    if token in text and not policy.prompts_logged:
        problems.append("the prompt, though the notice says prompts are not logged")
    described = f"fields {sorted(row)}; browser {row.get('browser')!r}, os {row.get('os')!r}"
    if problems:
        return ROW_CONTENTS.broken(f"the row holds {'; '.join(problems)} ({described})")
    prompt = "the prompt, as announced" if token in text else "no prompt"
    return ROW_CONTENTS.kept(f"{described}; {prompt}, no browser string, no address")


def _deleted(
    message: str, after: MyData, image_before: Served, image_after: Served, policy: ServedPolicy
) -> Result:
    problems = []
    if after.rows:
        problems.append(f"{len(after.rows)} row(s) still shown")
    if after.images:
        problems.append(f"{len(after.images)} image(s) still listed")
    if image_before.status == 200 and image_after.status == 200:
        problems.append(f"the image still served {image_after.age_s:.0f} s after it was made")
    if problems:
        return DELETE.broken(f"{message!r}; afterwards {'; '.join(problems)}")
    image = f"the image answered {image_after.status}"
    if image_before.status != 200:
        image = f"the image was not served even before ({image_before.status})"
    elif _expired(image_after, policy):
        image += " (it had reached its lifetime anyway)"
    return DELETE.kept(f"{message!r}; afterwards no row, no image listed; {image}")


def _download_ended(before: Served | None, after: Served | None, policy: ServedPolicy) -> Result:
    if before is None or after is None:
        return EXPORT_LINK.not_checked('"Show my data" offered no download')
    if before.status != 200:
        return EXPORT_LINK.not_checked(f"the download was not served even before ({before.status})")
    if after.status == 200:
        lifetime = f" (its lifetime is {policy.output_ttl_s:g} s)" if policy.output_ttl_s else ""
        return EXPORT_LINK.broken(
            f'still served after "Delete my data", {after.age_s:.0f} s after it was made{lifetime}'
        )
    if _expired(after, policy):
        return EXPORT_LINK.not_checked("the download had reached its lifetime before the check")
    return EXPORT_LINK.kept(f"served before (200), answered {after.status} after deletion")


def _expired(served: Served, policy: ServedPolicy) -> bool:
    return policy.output_ttl_s is not None and served.age_s >= policy.output_ttl_s


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
