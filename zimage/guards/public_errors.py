"""Error answers that reveal nothing about the server: Gradio's texts stay in the server log.

Gradio is launched with ``show_error=False``, so the queue sends the text of our own
``gr.Error``s only and blanks every other exception. This ASGI middleware fills those blanks
with a readable message, and replaces any error text that still names the server: Gradio's
own HTTP errors echo file paths ("File not allowed: /etc/passwd."), its pydantic checks echo
the request, and some of its ``gr.Error``s name folders. Successful answers are not touched.

Register it last in the app's middleware list: it then sees only what Gradio answers, never
the messages of the middleware before it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zimage.guards.asgi import AnsweredOutside, RewrittenAnswer, parse_json, send_detail
from zimage.guards.uploads import is_out_of_space

logger = logging.getLogger(__name__)

REQUEST_REFUSED = (
    "This request could not be processed. Please reload the page and try again; scripts: "
    "check each value against the API page, and upload files before naming them."
)
STATUS_MESSAGES = {
    400: "The request is malformed.",
    401: "Not signed in.",
    403: "Not available.",
    404: "Not found.",
    405: "This method is not allowed here.",
    413: "The upload is too large.",
    422: "The request is malformed.",
    500: "Something went wrong on the server. Please try again.",
}
# What a Python error looks like: an exception class name, a repr, a traceback line.
_INTERNALS = re.compile(
    r"\b[A-Z]\w*(Error|Exception)\b|<[\w.]+ object at 0x[0-9a-f]+>|Traceback|File \"|"
    r"(^|[\s'\"(=:])\.{0,2}/[\w.-]"  # a file path
)


def server_paths(*paths: str | os.PathLike[str]) -> list[str]:
    """The given folders plus the working directory, home and Python's, as written and
    resolved (what an error text must never contain)."""
    candidates = [*paths, os.getcwd(), os.path.expanduser("~"), sys.prefix, sys.base_prefix]
    found: set[str] = set()
    for path in candidates:
        text = os.fspath(path)
        found.update(p.rstrip("/") for p in (text, os.path.realpath(text)) if len(p) > 1)
    return sorted(found, key=len, reverse=True)


def reveals_server(text: str, hidden: Iterable[str]) -> bool:
    """Whether an error text names a server path or looks like a Python error."""
    return bool(_INTERNALS.search(text)) or any(path in text for path in hidden)


class PublicErrors:
    """Pure ASGI middleware: every error a client gets is readable and names nothing inside."""

    def __init__(self, app: ASGIApp, hidden_paths: Iterable[str] = ()) -> None:
        self.app = app
        self.hidden = list(hidden_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # A HEAD answer has no body to reveal anything.
        answer = _Answer(self, scope, receive, send, rewrite=scope.get("method") != "HEAD")
        try:
            await self.app(scope, receive, answer.send)
        except AnsweredOutside:
            raise
        except Exception as error:
            # A full disk is answered further out, by the upload guard, with when to retry.
            if answer.started or is_out_of_space(error):
                raise
            # Starlette's last resort would answer too, then drop the connection.
            logger.exception("request %s %s failed", scope.get("method"), scope.get("path"))
            await answer.send_detail(500, STATUS_MESSAGES[500])

    def public_text(self, text: object) -> str:
        """``text`` if it is a message fit for a client, else our readable message."""
        if isinstance(text, str) and text.strip() and not reveals_server(text, self.hidden):
            return text
        return REQUEST_REFUSED

    def public_detail(self, status: int, body: bytes) -> str:
        try:
            document = parse_json(body)
        except ValueError:
            document = None
        if isinstance(document, dict):
            detail = document.get("detail")
        else:
            detail = body.decode("utf-8", "replace")
        if isinstance(detail, list):  # FastAPI's validation errors echo the request
            fields = sorted({_field(error) for error in detail if isinstance(error, dict)})
            named = f" Check: {', '.join(f for f in fields if f)}." if any(fields) else ""
            return STATUS_MESSAGES[422] + named
        fallback = STATUS_MESSAGES.get(status, STATUS_MESSAGES[500 if status >= 500 else 400])
        if isinstance(detail, str) and detail.strip() and not reveals_server(detail, self.hidden):
            return detail
        return fallback

    def public_event(self, event: bytes) -> bytes:
        """One server-sent event with its error text made public (others unchanged)."""
        if b"error" not in event:
            return event
        lines = event.split(b"\n")
        is_error_event = b"event: error" in lines
        for index, line in enumerate(lines):
            if not line.startswith(b"data:"):
                continue
            try:
                data = parse_json(line[5:])
            except ValueError:
                continue
            changed = self._public_message(data, is_error_event)
            if changed is not None:
                lines[index] = b"data: " + json.dumps(changed).encode()
        return b"\n".join(lines)

    def _public_message(self, data: Any, is_error_event: bool) -> Any:
        if is_error_event and isinstance(data, dict):  # /call/<api>/<id>: the output itself
            return {**data, "error": self.public_text(data.get("error")), "visible": True}
        if is_error_event:
            return self.public_text(data)
        if not isinstance(data, dict):
            return None
        if data.get("msg") == "unexpected_error":
            return {**data, "message": self.public_text(data.get("message"))}
        output = data.get("output")
        if data.get("success") is False and isinstance(output, dict) and "error" in output:
            error = self.public_text(output.get("error"))
            return {**data, "output": {**output, "error": error, "visible": True}}
        return None


class _Answer(RewrittenAnswer):
    """The response as it passes: error bodies are held and rewritten, event streams
    rewritten event by event, everything else forwarded as it comes."""

    separator = b"\n\n"

    def __init__(
        self, owner: PublicErrors, scope: Scope, receive: Receive, send: Send, *, rewrite: bool
    ) -> None:
        super().__init__(send)
        self.owner = owner
        self._scope = scope
        self._receive = receive
        self._rewrite = rewrite
        self.started = False

    def mode_for(self, start: Message) -> str:
        self.started = True
        content_type = dict(start.get("headers", [])).get(b"content-type", b"")
        if self._rewrite and start["status"] >= 400:
            return "held"
        if self._rewrite and content_type.startswith(b"text/event-stream"):
            return "stream"
        return "pass"

    def rewrite_piece(self, piece: bytes) -> bytes:
        return self.owner.public_event(piece)

    async def send_held(self, start: Message, body: bytes) -> None:
        status = start["status"]
        kept = [
            (name, value)
            for name, value in start.get("headers", [])
            if name.lower() not in (b"content-length", b"content-type", b"content-encoding")
        ]
        await self.send_detail(status, self.owner.public_detail(status, body), kept)

    async def send_detail(
        self, status: int, detail: str, kept_headers: Sequence[tuple[bytes, bytes]] = ()
    ) -> None:
        await send_detail(
            self._scope, self._receive, self._send, status, detail, kept_headers=kept_headers
        )


def _field(error: dict[str, Any]) -> str:
    location = [str(part) for part in error.get("loc", ()) if isinstance(part, str)]
    return ".".join(part for part in location if part != "body") or ""
