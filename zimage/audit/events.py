"""The copy's page events and script endpoints, called through Gradio's queue exactly as its
page and `gradio_client` call them: /config lists every event with its inputs, and any event
runs by its index (POST queue/join, then its answer streams from queue/data)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from zimage.audit.client import CopyClient
from zimage.audit.model import AuditError

# Gradio marks a translated text as this prefix, a JSON object naming its key, then any suffix.
I18N = re.compile(r"__i18n__(\{[^{}]*\})(.*)", re.DOTALL)
# What the copy answers a visitor over its rate limit (README, ZIMAGE_RATE_PER_MIN).
LIMIT_REACHED = re.compile(r"Limit reached: (\d+) images a minute\. Try again in (\d+) s\.")
RETRIES_WHEN_LIMITED = 3


@dataclass(frozen=True)
class EventOutcome:
    success: bool
    output: list[Any]
    error: str


def translation_key(text: object) -> tuple[str, str] | None:
    """(key, suffix) of a translated text as /config serves it; None for plain text."""
    if not isinstance(text, str):
        return None
    match = I18N.fullmatch(text)
    if match is None:
        return None
    try:
        key = json.loads(match.group(1)).get("key")
    except ValueError:
        return None
    return (key, match.group(2)) if isinstance(key, str) else None


def component_names(component: Mapping[str, Any]) -> set[str]:
    """The names an input can be picked by: its label (the translation key of a translated
    one), its element id, and `type:<type>`."""
    props = component.get("props") or {}
    label = props.get("label")
    translated = translation_key(label)
    names = {f"type:{component.get('type')}"}
    names.add(translated[0] if translated else str(label))
    if props.get("elem_id"):
        names.add(str(props["elem_id"]))
    return names


def files_in(value: Any) -> Iterator[dict[str, Any]]:
    """Every Gradio file (a dict with a `path`, as outputs carry them) inside an output."""
    if isinstance(value, dict):
        if isinstance(value.get("path"), str) and (value.get("meta") or {}).get("_type"):
            yield value
        for item in value.values():
            yield from files_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from files_in(item)


class GradioCopy:
    """A copy spoken to through Gradio's protocol. `wait(seconds, why)` is how a visitor told to
    wait (rate limit) waits before trying again."""

    def __init__(self, client: CopyClient, wait: Callable[[float, str], None]) -> None:
        self.client = client
        self._wait = wait
        self._config: dict[str, Any] | None = None

    def config(self) -> dict[str, Any]:
        """The copy's /config (asked once)."""
        if self._config is None:
            answer = self.client.get("/config")
            config = json_of(answer)
            if answer.status_code != 200 or "dependencies" not in config:
                raise AuditError(
                    f"/config answered {answer.status_code}, not a Gradio app's config"
                )
            self._config = config
        return self._config

    @property
    def api_prefix(self) -> str:
        return str(self.config().get("api_prefix") or "/gradio_api")

    def components(self) -> dict[int, dict[str, Any]]:
        return {component["id"]: component for component in self.config().get("components", [])}

    def event(self, api_name: str) -> dict[str, Any]:
        for dependency in self.config()["dependencies"]:
            if dependency.get("api_name") == api_name:
                return dependency
        raise AuditError(f"the copy has no event named {api_name!r}")

    def inputs(self, api_name: str, values: Mapping[str, Any]) -> list[Any]:
        """The event's inputs: each component's value as the page starts, except those named
        in `values` (see `component_names`)."""
        components = self.components()
        data, used = [], set()
        for component_id in self.event(api_name)["inputs"]:
            component = components.get(component_id, {})
            names = component_names(component) & values.keys()
            if names:
                name = min(names)
                used.add(name)
                data.append(values[name])
            else:
                data.append((component.get("props") or {}).get("value"))
        if missing := values.keys() - used:
            raise AuditError(f"event {api_name!r} has no input {sorted(missing)}")
        return data

    def run(
        self,
        api_name: str,
        data: list[Any],
        headers: Mapping[str, str] | None = None,
        *,
        wait_when_limited: bool = True,
    ) -> EventOutcome:
        """Run an event through the queue. Told to wait by the rate limit, wait as told and try
        again (up to three times), unless `wait_when_limited` is False."""
        for _ in range(RETRIES_WHEN_LIMITED):
            outcome = self._run_once(api_name, data, headers)
            limited = LIMIT_REACHED.search(outcome.error)
            if outcome.success or not limited or not wait_when_limited:
                return outcome
            self._wait(int(limited.group(2)) + 1, "waiting as the copy's rate limit asks")
        return outcome

    def succeeded(
        self, api_name: str, data: list[Any], headers: Mapping[str, str] | None = None
    ) -> list[Any]:
        """The outputs of an event that must succeed for a check to go on."""
        outcome = self.run(api_name, data, headers)
        if not outcome.success:
            raise AuditError(f"event {api_name!r} failed: {outcome.error or 'no message'}")
        return outcome.output

    def file_path(self, file: Mapping[str, Any]) -> str:
        """Where the copy serves a file of an output."""
        return f"{self.api_prefix}/file={file['path']}"

    def _run_once(
        self,
        api_name: str,
        data: list[Any],
        headers: Mapping[str, str] | None,
    ) -> EventOutcome:
        session_hash = uuid.uuid4().hex[:12]
        body = {
            "data": data,
            "fn_index": self.event(api_name)["id"],
            "session_hash": session_hash,
            "trigger_id": None,
        }
        joined = self.client.post(f"{self.api_prefix}/queue/join", json=body, headers=headers)
        if joined.status_code != 200:
            return EventOutcome(False, [], str(detail_of(joined) or f"HTTP {joined.status_code}"))
        event_id = json_of(joined).get("event_id")
        params = {"session_hash": session_hash}
        with self.client.stream(
            "GET", f"{self.api_prefix}/queue/data", params=params, headers=headers
        ) as stream:
            for line in stream.iter_lines():
                message = _message(line)
                if message is None or message.get("event_id") not in (event_id, None):
                    continue
                if message.get("msg") == "process_completed":
                    output = message.get("output") or {}
                    if message.get("success"):
                        return EventOutcome(True, list(output.get("data") or []), "")
                    return EventOutcome(False, [], str(output.get("error") or ""))
                if message.get("msg") == "unexpected_error":
                    return EventOutcome(False, [], str(message.get("message") or ""))
        raise AuditError(f"the answer to event {api_name!r} ended without a result")


def _message(line: str) -> dict[str, Any] | None:
    if not line.startswith("data:"):
        return None
    try:
        message = json.loads(line[5:])
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def json_of(answer: httpx.Response) -> dict[str, Any]:
    """An answer's JSON object; {} for any other body."""
    try:
        document = answer.json()
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def detail_of(answer: httpx.Response) -> object:
    """The `detail` of an error answer (FastAPI's sentence), None without one."""
    return json_of(answer).get("detail")
