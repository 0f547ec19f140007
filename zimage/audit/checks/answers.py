"""What every answer of the copy carries: the promised security headers; and what its error
answers leave out: server paths and program internals, for requests a visitor could send."""

from __future__ import annotations

import re
from collections.abc import Iterable

from zimage.audit.client import OPTED_OUT, Answer
from zimage.audit.events import GradioCopy
from zimage.audit.model import Promise, Result

HEADERS = Promise(
    "answers.headers",
    "Every answer says: nosniff, no referrer, and only camera, clipboard and fullscreen allowed",
    "PRIVACY.md §3; SECURITY.md",
)
ERRORS = Promise(
    "answers.errors",
    "Error answers name nothing on the server (no file paths, exception texts, internals)",
    "PRIVACY.md §3; SECURITY.md",
)
PROMISES = (HEADERS, ERRORS)

# Referrer policies under which the page's address never reaches another site.
NO_ADDRESS_SENT = {"no-referrer", "same-origin"}
ALLOWED_FEATURES = {"camera", "clipboard-read", "clipboard-write", "fullscreen"}
# Powerful features a browser grants a page unless its Permissions-Policy denies them (not
# "bluetooth": Chromium rejects that name in the header with a console warning on every page).
MUST_BE_DENIED = (
    "geolocation",
    "microphone",
    "display-capture",
    "usb",
    "serial",
    "hid",
    "payment",
    "midi",
)
SHOWN = 3

INTERNALS = re.compile(
    r"Traceback|File \"[^\"]+\", line \d+|<[\w.]+ object at 0x|\b[A-Z]\w*(?:Error|Exception)\b"
    r"|'\w+' object|pydantic|site-packages|dist-packages"
)
SERVER_PATH = re.compile(
    r"(?<![\w.:/])/(?:home|root|usr|opt|srv|app|data|tmp|var|etc|proc|sys|dev|mnt|run|"
    r"workspace|code|Users)/[^\s\"'<>,)]*"
)
JSON = "application/json"
# Requests a visitor could send by mistake or curiosity: (method, path, body, content type).
# `{api}` is the copy's API prefix; `{folder}` the folder its files are served from.
MALFORMED = (
    ("POST", "{api}/queue/join", b"{not json", JSON),
    ("POST", "{api}/queue/join", b'{"data": [], "fn_index": 9999, "session_hash": "audit"}', JSON),
    ("POST", "{api}/call/no-such-endpoint", b'{"data": []}', JSON),
    ("POST", "{api}/upload", b"not multipart", JSON),
    ("POST", "{api}/upload", b"--zz\r\nbroken", "multipart/form-data; boundary=zz"),
    ("GET", "{api}/file=/etc/passwd", b"", None),
    ("GET", "{api}/file=%2e%2e/%2e%2e/etc/passwd", b"", None),
    ("GET", "{api}/file={folder}/no-such-file.png", b"", None),
    ("GET", "/static/%2e%2e/%2e%2e/etc/passwd", b"", None),
)


def permissions(header: str) -> dict[str, str]:
    """A Permissions-Policy header as feature -> allowlist."""
    features = {}
    for directive in header.split(","):
        name, _, allowlist = directive.strip().partition("=")
        if name:
            features[name.strip().lower()] = allowlist.strip()
    return features


def header_problems(answer: Answer) -> list[str]:
    headers = answer.headers
    problems = []
    if headers.get("x-content-type-options", "").strip().lower() != "nosniff":
        problems.append("no X-Content-Type-Options: nosniff")
    # Of a list, the browser applies the last policy it knows.
    referrer = headers.get("referrer-policy", "").split(",")[-1].strip().lower()
    if referrer not in NO_ADDRESS_SENT:
        problems.append(f"Referrer-Policy {referrer or 'missing'}")
    policy = permissions(headers.get("permissions-policy", ""))
    allowed = {feature for feature, allowlist in policy.items() if allowlist != "()"}
    if not policy:
        problems.append("no Permissions-Policy")
    if allowed - ALLOWED_FEATURES:
        problems.append(f"Permissions-Policy allows {sorted(allowed - ALLOWED_FEATURES)}")
    if any("*" in policy[feature] for feature in allowed):
        problems.append("Permissions-Policy lets any site use a feature (*)")
    if policy and (undenied := [f for f in MUST_BE_DENIED if f not in policy]):
        problems.append(f"Permissions-Policy leaves {undenied} to the browser's defaults")
    return problems


def check_headers(answers: Iterable[Answer]) -> Result:
    answers = list(answers)
    if not answers:
        return HEADERS.not_checked("no answer was received")
    lacking = [(answer, problems) for answer in answers if (problems := header_problems(answer))]
    if lacking:
        shown = "; ".join(
            f"{answer}: {', '.join(problems)}" for answer, problems in lacking[:SHOWN]
        )
        return HEADERS.broken(f"{len(lacking)} of {len(answers)} answers: {shown}")
    return HEADERS.kept(f"all {len(answers)} answers the audit received carry them")


def leaks(text: str, server_folders: Iterable[str]) -> list[str]:
    """Server paths and program internals named in an answer."""
    found = [folder for folder in server_folders if folder and folder in text]
    found += [match.group(0) for match in SERVER_PATH.finditer(text)]
    found += [match.group(0) for match in INTERNALS.finditer(text)]
    return found


def check_errors(copy: GradioCopy, server_folders: list[str]) -> Result:
    """Send the malformed requests and two refused events; scan every answer."""
    api = copy.api_prefix
    folder = server_folders[0] if server_folders else "/tmp"
    answers: list[tuple[str, str]] = []
    statuses = set()
    for method, path, body, content_type in MALFORMED:
        path = path.format(api=api, folder=folder)
        headers = {"content-type": content_type} if content_type else {}
        answer = copy.client.request(method, path, content=body, headers=headers)
        statuses.add(answer.status_code)
        answers.append((f"{method} {path} ({answer.status_code})", answer.text))
    events = (
        ("show_my_data", copy.inputs("show_my_data", {"type:browserstate": "not a dict"})),
        ("edit", copy.inputs("edit", {"image": _file("/etc/passwd"), "instruction": "snow"})),
    )
    for api_name, data in events:
        outcome = copy.run(api_name, data, OPTED_OUT, wait_when_limited=False)
        answers.append(
            (f"event {api_name} with a wrong value", outcome.error or str(outcome.output))
        )
    found = [(what, named) for what, text in answers if (named := leaks(text, server_folders))]
    if found:
        shown = "; ".join(f"{what} names {named[:SHOWN]}" for what, named in found[:SHOWN])
        return ERRORS.broken(f"{len(found)} of {len(answers)} answers: {shown}")
    return ERRORS.kept(
        f"{len(MALFORMED)} malformed requests (answered {sorted(statuses)}) and {len(events)} "
        "events given wrong values: no server path or internal named"
    )


def _file(path: str) -> dict[str, object]:
    """A file parameter naming a path on the server, nothing uploaded."""
    return {"path": path, "meta": {"_type": "gradio.FileData"}}
