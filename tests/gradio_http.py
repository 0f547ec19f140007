"""Gradio's HTTP protocol spoken by hand, as an attacker with curl would: any event by its
index (private ones included), any payload, and the raw answers."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from zimage.audit.client import CopyClient
from zimage.audit.events import GradioCopy

TIMEOUT = httpx.Timeout(120, connect=10)


def fn_index(url: str, api_name: str) -> int:
    """The index of the event whose API name is ``api_name`` (as /config lists it)."""
    dependencies = httpx.get(f"{url}/config", timeout=TIMEOUT).json()["dependencies"]
    for dependency in dependencies:
        if dependency.get("api_name") == api_name:
            return dependency["id"]
    raise LookupError(f"no event named {api_name!r} in /config")


def join(
    url: str,
    index: int,
    data: list[Any],
    session_hash: str | None = None,
    headers: dict[str, str] | None = None,
) -> str:
    """Run event ``index`` through the queue with ``data`` (and request ``headers``); the raw
    event stream (or the refusal's body) as text."""
    session_hash = session_hash or uuid.uuid4().hex[:12]
    body = {"data": data, "fn_index": index, "session_hash": session_hash, "trigger_id": None}
    with httpx.Client(timeout=TIMEOUT, headers=headers) as client:
        joined = client.post(f"{url}/gradio_api/queue/join", json=body)
        if joined.status_code != 200:
            return joined.text
        stream = ""
        params = {"session_hash": session_hash}
        with client.stream("GET", f"{url}/gradio_api/queue/data", params=params) as events:
            for line in events.iter_lines():
                stream += line + "\n"
                if '"process_completed"' in line or '"unexpected_error"' in line:
                    break
    return stream


def completed(stream: str) -> dict[str, Any]:
    """The final message of a queue event stream."""
    for line in stream.splitlines():
        if line.startswith("data:") and '"process_completed"' in line:
            return json.loads(line[5:])
    raise AssertionError(f"no completion in {stream!r}")


def run(
    url: str,
    api_name: str,
    data: list[Any],
    session_hash: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """The outputs of a successful event, looked up by its API name."""
    message = completed(join(url, fn_index(url, api_name), data, session_hash, headers))
    assert message["success"], message
    return message["output"]["data"]


def call(url: str, api_name: str, data: Any) -> str:
    """POST /gradio_api/call/<api_name> and read its result stream; the raw text."""
    with httpx.Client(timeout=TIMEOUT) as client:
        posted = client.post(f"{url}/gradio_api/call/{api_name}", json={"data": data})
        if posted.status_code != 200:
            return posted.text
        event_id = posted.json()["event_id"]
        return client.get(f"{url}/gradio_api/call/{api_name}/{event_id}").text


def file_data(path: str) -> dict[str, Any]:
    """A file parameter naming ``path`` on the server, without uploading anything."""
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


# A small text-to-image run as the page's Generate button sends it: inputs named as the audit
# names them (a label's translation key, an element id, or `type:<type>`).
SMALL_PAGE_RUN = {
    "generate.prompt": "a kite",
    "generate.resolution": "256x256",
    "controls.steps": 2,
    "controls.seed": 1,
}


def page_inputs(url: str, api_name: str, values: dict[str, Any]) -> list[Any]:
    """The data of a page event, read from the page's config: the inputs named in `values`,
    every other at the value the page starts with."""
    return GradioCopy(CopyClient(url), lambda seconds, why: None).inputs(api_name, values)


def page_run_data(url: str, browser: dict[str, Any], **names: Any) -> list[Any]:
    """The data of a small run through the page's Generate button for the visitor whose state
    is `browser`; `names` change inputs as SMALL_PAGE_RUN names them."""
    values = {**SMALL_PAGE_RUN, "type:browserstate": browser, **names}
    return page_inputs(url, "generate_in_browser", values)


def generate_in_browser(
    url: str, browser: dict[str, Any], headers: dict[str, str] | None = None, **names: Any
) -> list[Any]:
    """A small run through the page's Generate button; its outputs."""
    return run(url, "generate_in_browser", page_run_data(url, browser, **names), headers=headers)
