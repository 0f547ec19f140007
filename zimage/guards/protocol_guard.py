"""Refuses malformed protocol requests with a 4xx and a sentence, before Gradio sees them.

Gradio 6.31 answers these with HTTP 500 and a traceback in the log (or a stream cut short):
an unknown endpoint name (`/gradio_api/call/nope`, `/run/nope`, `/api/nope`), a `fn_index`
that no function has (9999, -1) or none at all on `/queue/join`, a stream asked for an event or
session the queue does not know, and a null character in a path or a JSON body (Python's
"embedded null byte" when Gradio turns it into a file path). This pure ASGI middleware checks
each against what the app serves and lets everything else through untouched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_NAMED_CALL = re.compile(r"/gradio_api/(?:call/v2|call)/(?P<name>[^/]+)/?$")
_CALL_STREAM = re.compile(r"/gradio_api/call/(?:v2/)?(?P<name>[^/]+)/(?P<event_id>[^/]+)/?$")
_QUEUE_JOIN = re.compile(r"/gradio_api/queue/join/?$")
# Gradio's direct calls: a body's fn_index, when it has one, names the function, not the
# address (the page itself posts its unqueued events to /run/predict this way).
_DIRECT_CALL = re.compile(r"/gradio_api/(?:run|api)/(?P<name>[^/]+)/?$")
_QUEUE_DATA = re.compile(r"/gradio_api/queue/data/?$")
_INFO = "The endpoints are listed at /gradio_api/info."


class KnownEndpoints(Protocol):
    """What the app serves, as the guard asks it (see server_state.GradioState)."""

    def has_api_name(self, name: str) -> bool: ...

    def has_fn_index(self, index: int) -> bool: ...

    def has_stream_for_event(self, event_id: str) -> bool: ...

    def has_stream_for_session(self, session_hash: str) -> bool: ...


class ProtocolGuard:
    def __init__(self, app: ASGIApp, endpoints: KnownEndpoints) -> None:
        self.app = app
        self.endpoints = endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, query = scope.get("path", ""), scope.get("query_string", b"")
        if "\x00" in path or b"%00" in query or b"\x00" in query:
            await _refuse(send, 400, "The address contains a null character.")
            return
        refusal = self._check_address(scope["method"], path, query)
        if refusal is None and scope["method"] == "POST" and _takes_json_body(path):
            body = await _read_body(receive)
            refusal = self._check_body(path, body)
            receive = _replay(body, receive)
        if refusal is not None:
            await _refuse(send, *refusal)
            return
        await self.app(scope, receive, send)

    def _check_address(self, method: str, path: str, query: bytes) -> tuple[int, str] | None:
        if method == "GET" and (stream := _CALL_STREAM.search(path)):
            if refusal := self._check_api_name(unquote(stream["name"])):
                return refusal
            event_id = unquote(stream["event_id"])
            if not self.endpoints.has_stream_for_event(event_id):
                return 404, f"No event {event_id} is waiting to be read (or it was read already)."
        elif method == "POST" and (named := _NAMED_CALL.search(path)):
            return self._check_api_name(unquote(named["name"]))
        elif method == "GET" and _QUEUE_DATA.search(path):
            session = parse_qs(query.decode("latin-1")).get("session_hash", [""])[0]
            if session and not self.endpoints.has_stream_for_session(session):
                return 404, "This session has no events waiting to be read."
        return None

    def _check_body(self, path: str, body: bytes) -> tuple[int, str] | None:
        try:
            document = json.loads(body)
        except ValueError:
            return None  # not JSON: Gradio answers 422 itself
        if _holds_null_character(document):
            return (
                400,
                "The request contains a null character, which no parameter or file path may.",
            )
        if _QUEUE_JOIN.search(path) and isinstance(document, dict):
            return self._check_fn_index(document.get("fn_index"))
        if direct := _DIRECT_CALL.search(path):
            if isinstance(document, dict) and document.get("fn_index") is not None:
                return self._check_fn_index(document["fn_index"])
            return self._check_api_name(unquote(direct["name"]))
        return None

    def _check_api_name(self, name: str) -> tuple[int, str] | None:
        if self.endpoints.has_api_name(name):
            return None
        return 404, f"There is no endpoint /{name}. {_INFO}"

    def _check_fn_index(self, value: object) -> tuple[int, str] | None:
        if value is None:
            return 422, f"fn_index is missing: say which function to run. {_INFO}"
        # Read as leniently as Gradio's own parsing (3, 3.0 and "3"); anything it would
        # refuse is left to it (422).
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return None
        try:
            index = int(value)
        except (ValueError, OverflowError):
            return None
        if isinstance(value, float) and index != value:
            return None
        if not self.endpoints.has_fn_index(index):
            return 404, f"There is no function with fn_index {index}. {_INFO}"
        return None


def _takes_json_body(path: str) -> bool:
    return bool(_QUEUE_JOIN.search(path) or _NAMED_CALL.search(path) or _DIRECT_CALL.search(path))


def _holds_null_character(document: object) -> bool:
    pending = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away; the app will see the disconnect too
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The same body once, then whatever the client sends next (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
