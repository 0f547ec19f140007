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


class RewrittenAnswer:
    """An answer on its way out through `send`, in the mode `mode_for` picks at its start:
    "pass" sends it as it comes; "held" holds the whole body and gives it to `send_held`;
    "stream" rewrites it piece by piece (each ending with `separator`) with `rewrite_piece`,
    holding back an unfinished piece until the rest of it arrives."""

    separator = b"\n"

    def __init__(self, send: Send) -> None:
        self._send = send
        self._mode = "pass"
        self._start: Message | None = None
        self._held = bytearray()

    def mode_for(self, start: Message) -> str:
        return "pass"

    def rewrite_piece(self, piece: bytes) -> bytes:
        return piece

    async def send_held(self, start: Message, body: bytes) -> None:
        await self._send(start)
        await self._send({"type": "http.response.body", "body": body, "more_body": False})

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._mode = self.mode_for(message)
            if self._mode == "held":
                self._start = message
            else:
                await self._send(message)
            return
        if message["type"] != "http.response.body" or self._mode == "pass":
            await self._send(message)
            return
        self._held += message.get("body", b"")
        more = message.get("more_body", False)
        if self._mode == "held":
            if not more:
                assert self._start is not None
                await self.send_held(self._start, bytes(self._held))
            return
        complete, found, rest = bytes(self._held).rpartition(self.separator)
        self._held = bytearray(rest)
        pieces = complete.split(self.separator) if found else []
        body = b"".join(self.rewrite_piece(piece) + self.separator for piece in pieces)
        if not more:
            body += bytes(self._held)
        if body or not more:
            await self._send({"type": "http.response.body", "body": body, "more_body": more})
