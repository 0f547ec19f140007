"""Refuses malformed protocol requests with a 4xx and a sentence, before Gradio sees them.

Gradio 6.31 answers these with HTTP 500 and a traceback in the log (or a stream cut short):
an unknown endpoint name (`/gradio_api/call/nope`, `/run/nope`, `/api/nope`), a `fn_index`
that no function has (9999, -1) or none at all on `/queue/join`, a stream asked for an event or
session the queue does not know, a null character in a path or a JSON body (Python's
"embedded null byte" when Gradio turns it into a file path), and JSON nested too deeply for
Python's parser. Fewer values than a function takes fail in its event stream with a message
that `show_error=False` blanks; here they get a sentence naming the parameters. This pure ASGI
middleware checks each against what the app serves and lets everything else through untouched.

Two things Gradio serves are refused outright. A session id of any length (a megabyte was
taken) becomes a key of Gradio's tables and travels in addresses: ids no Gradio client makes are
refused wherever they come (query, address, body). And deep links (`GET /gradio_api/deep_link`,
which the app never offers): given a session id, Gradio saves that session's values (the
browser state with its signed pseudonym, the prompt) in a file that `/config?deep_link=...`
hands to anyone, so whoever learnt a session id from an address or a log could act as that
browser.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, unquote

from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from zimage.guards.asgi import JsonTooDeep, parse_json, read_body, replay, send_detail
from zimage.guards.gradio_calls import (
    QUEUE_JOIN,
    SESSION_HASH_REFUSED,
    GradioFunction,
    KnownEndpoints,
    fn_index_in,
    is_session_hash,
    value_refusal,
)

_NAMED_CALL = re.compile(r"/gradio_api/call/(?P<v2>v2/)?(?P<name>[^/]+)/?$")
_CALL_STREAM = re.compile(r"/gradio_api/call/(?:v2/)?(?P<name>[^/]+)/(?P<event_id>[^/]+)/?$")
# Gradio's direct calls: a body's fn_index, when it has one, names the function, not the
# address (the page itself posts its unqueued events to /run/predict this way).
_DIRECT_CALL = re.compile(r"/gradio_api/(?:run|api)/(?P<name>[^/]+)/?$")
_QUEUE_DATA = re.compile(r"/gradio_api/queue/data/?$")
_COMPONENT_SERVER = re.compile(r"/gradio_api/component_server/?$")
_DEEP_LINK = re.compile(r"/gradio_api/deep_link/?$")
# Routes whose address carries a session id: /heartbeat/<id>, /stream/<id>/...
_SESSION_IN_PATH = re.compile(r"/gradio_api/(?:heartbeat|stream)/(?P<session>[^/]*)")
NO_DEEP_LINKS = "This Space offers no deep links."
_INFO = "The endpoints are listed at /gradio_api/info."
NULL_CHARACTER = "The request contains a null character, which no parameter or file path may."
TOO_DEEP = "The request body nests its JSON too deeply to be read."

# A refusal: the status and the detail answered.
Refusal = tuple[int, object]


class ProtocolGuard:
    """Pure ASGI middleware; see the module docstring."""

    def __init__(self, app: ASGIApp, endpoints: KnownEndpoints) -> None:
        self.app = app
        self.endpoints = endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, query = scope.get("path", ""), scope.get("query_string", b"")
        if "\x00" in path or b"%00" in query or b"\x00" in query:
            await send_detail(scope, receive, send, 400, "The address contains a null character.")
            return
        refusal = self._check_address(scope["method"], path, query)
        if refusal is None and scope["method"] == "POST" and _takes_json_body(scope):
            try:
                body = await read_body(receive)
            except ClientDisconnect:
                return  # nobody left to answer
            refusal = self._check_body(path, body)
            receive = replay(body, receive)
        if refusal is not None:
            await send_detail(scope, receive, send, *refusal)
            return
        await self.app(scope, receive, send)

    def _check_address(self, method: str, path: str, query: bytes) -> Refusal | None:
        if _DEEP_LINK.search(path):
            return 404, NO_DEEP_LINKS
        in_path = _SESSION_IN_PATH.search(path)
        if in_path and not is_session_hash(unquote(in_path["session"])):
            return 400, SESSION_HASH_REFUSED
        if b"session_hash" in query:
            sessions = parse_qs(query.decode("latin-1")).get("session_hash", [])
            if not all(map(is_session_hash, sessions)):
                return 400, SESSION_HASH_REFUSED
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

    def _check_body(self, path: str, body: bytes) -> Refusal | None:
        try:
            document = parse_json(body)
        except JsonTooDeep:
            return 400, TOO_DEEP
        except ValueError:
            return None  # not JSON: Gradio answers 422 itself
        if _holds_null_character(document):
            return value_refusal(
                path, document, self.endpoints, _holds_null_character, NULL_CHARACTER
            )
        if not isinstance(document, dict):
            return None  # Gradio answers 422 itself
        session = document.get("session_hash")
        if session is not None and not is_session_hash(session):
            return 400, SESSION_HASH_REFUSED
        if QUEUE_JOIN.search(path):
            if document.get("fn_index") is None:
                return 422, f"fn_index is missing: say which function to run. {_INFO}"
            if refusal := self._check_fn_index(document["fn_index"]):
                return refusal
            index = fn_index_in(document["fn_index"])
            function = self.endpoints.function_at(index) if index is not None else None
            return _check_values(function, document, hidden_filled=False)
        if (named := _NAMED_CALL.search(path)) and not named["v2"]:
            function = self.endpoints.function_named(unquote(named["name"]))
            return _check_values(function, document, hidden_filled=True)
        if direct := _DIRECT_CALL.search(path):
            if document.get("fn_index") is not None:
                return self._check_fn_index(document["fn_index"])
            return self._check_api_name(unquote(direct["name"]))
        return None

    def _check_api_name(self, name: str) -> Refusal | None:
        if self.endpoints.function_named(name) is not None:
            return None
        return 404, f"There is no endpoint /{name}. {_INFO}"

    def _check_fn_index(self, value: object) -> Refusal | None:
        index = fn_index_in(value)
        if index is None or self.endpoints.function_at(index) is not None:
            return None  # a known function, or a value Gradio refuses itself (422)
        return 404, f"There is no function with fn_index {index}. {_INFO}"


def _check_values(
    function: GradioFunction | None, document: dict, *, hidden_filled: bool
) -> Refusal | None:
    data = document.get("data")
    if function is None or not isinstance(data, list):
        return None  # Gradio answers a missing or mistyped "data" with 422 itself
    problem = function.too_few_values(len(data), hidden_filled=hidden_filled)
    return (400, problem) if problem else None


def _takes_json_body(scope: Scope) -> bool:
    """Whether the request posts a JSON body to one of Gradio's event routes (the image
    editor's multipart uploads to the component server are the upload guard's)."""
    path = scope.get("path", "")
    multipart = Headers(scope=scope).get("content-type", "").startswith("multipart/")
    return not multipart and any(
        pattern.search(path)
        for pattern in (QUEUE_JOIN, _NAMED_CALL, _DIRECT_CALL, _COMPONENT_SERVER)
    )


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
