"""What the guards' ASGI middleware share: reading a request body, handing it on, answering.

A middleware that looks at a body must read all of it before the app does, then give the app
the same body (`replay`). A middleware that refuses a request answers with a JSON
`{"detail": ...}`, the shape Gradio's own HTTP errors have, which its clients read
(`send_detail`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send


class AnsweredOutside(Exception):
    """Raised through the app on purpose by a middleware further out, which answers it (the
    upload guard stops a body mid-read this way): not an error of the app's, so let it pass."""


class BodyTooLarge(Exception):
    """The body went past the limit its reader set."""


class JsonTooDeep(ValueError):
    """JSON nested deeper than Python's parser can follow (it would raise RecursionError)."""


async def read_body(receive: Receive, max_bytes: int | None = None) -> bytes:
    """The whole request body.

    Raises BodyTooLarge once more than `max_bytes` arrived (nothing more is read), and
    Starlette's ClientDisconnect when the client leaves before the end (nobody to answer).
    """
    chunks = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunks += message.get("body", b"")
        if max_bytes is not None and len(chunks) > max_bytes:
            raise BodyTooLarge()
        if not message.get("more_body", False):
            return bytes(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive() that gives `body` (already read) once, then what the connection says next."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def parse_json(body: bytes) -> object:
    """The JSON document in `body`; ValueError when it is not JSON (JsonTooDeep when it nests
    too deeply to read, which json.loads reports as a RecursionError)."""
    try:
        return json.loads(body)
    except RecursionError:
        raise JsonTooDeep("The JSON nests too deeply to read.") from None


async def send_detail(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    detail: object,
    *,
    headers: Mapping[str, str] | None = None,
    kept_headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Answer with `status` and the JSON `{"detail": detail}`: `headers` added (such as
    Retry-After), and `kept_headers` (raw, from an answer this one replaces) kept in front."""
    response = JSONResponse({"detail": detail}, status_code=status, headers=headers)
    response.raw_headers = [*kept_headers, *response.raw_headers]
    await response(scope, receive, send)
