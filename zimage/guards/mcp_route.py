"""Routing the MCP address to the MCP server (zimage/agents/mcp_server.py), before Gradio, with
its error answers made public.

The MCP library answers a body it cannot read with the text of its own exceptions: a JSON-RPC
batch got four pydantic validation errors with their inputs and links, bad JSON the decoder's
message. Those answers never pass PublicErrors (which answers in Gradio's shape), so here every
JSON-RPC error the MCP server sends, and every failed tool result, is made readable and
internals-free in the same JSON-RPC shape, as a plain answer or inside its event stream.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zimage.engine.errors import INTERNAL_FAILURE
from zimage.guards.asgi import RewrittenAnswer, parse_json
from zimage.guards.public_errors import reveals_server

MCP_PATH = "/gradio_api/mcp"
NOT_JSON = "Parse error: the body is not valid JSON."
NOT_A_MESSAGE = (
    "Invalid request: send one JSON-RPC 2.0 message as a JSON object (batches are not supported)."
)
NOT_PROCESSED = "The request could not be processed."


class HandlesRequests(Protocol):
    """An ASGI handler as MCP's session manager is one (`StreamableHTTPSessionManager`)."""

    async def handle_request(self, scope: Scope, receive: Receive, send: Send) -> None: ...


class McpRoute:
    """Pure ASGI middleware: requests to MCP_PATH go to `server`, all others to the app."""

    def __init__(self, app: ASGIApp, server: HandlesRequests, hidden_paths: Iterable[str] = ()):
        self.app = app
        self.server = server
        self.hidden = list(hidden_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path", "").rstrip("/") == MCP_PATH:
            await self.server.handle_request(scope, receive, _PublicAnswer(self, send).send)
        else:
            await self.app(scope, receive, send)

    def public_message(self, message: dict[str, Any]) -> dict[str, Any]:
        """A JSON-RPC message with its error text, or its failed tool result's text, public."""
        error = message.get("error")
        if isinstance(error, dict):
            text = str(error.get("message", ""))
            if text.startswith("Parse error"):
                text = NOT_JSON
            elif text.startswith("Validation error"):
                text = NOT_A_MESSAGE
            elif reveals_server(text, self.hidden):
                text = NOT_PROCESSED
            public = {key: value for key, value in error.items() if key != "data"}
            return {**message, "error": {**public, "message": text}}
        result = message.get("result")
        if isinstance(result, dict) and result.get("isError"):
            content = [self._public_content(item) for item in result.get("content") or []]
            return {**message, "result": {**result, "content": content}}
        return message

    def _public_content(self, item: Any) -> Any:
        text = item.get("text") if isinstance(item, dict) else None
        if isinstance(text, str) and reveals_server(text, self.hidden):
            return {**item, "text": INTERNAL_FAILURE}
        return item


class _PublicAnswer(RewrittenAnswer):
    """One MCP answer on its way out: a JSON body is held and rewritten whole, an event stream
    rewritten line by line, anything else passed as it comes."""

    def __init__(self, route: McpRoute, send: Send) -> None:
        super().__init__(send)
        self.route = route

    def mode_for(self, start: Message) -> str:
        content_type = dict(start.get("headers", [])).get(b"content-type", b"")
        if content_type.startswith(b"application/json"):
            return "held"
        if content_type.startswith(b"text/event-stream"):
            return "stream"
        return "pass"

    def rewrite_piece(self, line: bytes) -> bytes:
        if not line.startswith(b"data:"):
            return line
        ending = b"\r" if line.endswith(b"\r") else b""
        public = self._public_body(line[5:].strip())
        return line if public is None else b"data: " + public + ending

    def _public_body(self, body: bytes) -> bytes | None:
        """The body made public, or None when it is not a JSON-RPC message (left alone)."""
        try:
            message = parse_json(body)
        except ValueError:
            return None
        if not isinstance(message, dict):
            return None
        public = self.route.public_message(message)
        return None if public is message else json.dumps(public).encode()

    async def send_held(self, start: Message, body: bytes) -> None:
        public = self._public_body(body)
        body = body if public is None else public
        headers = [
            (name, value)
            for name, value in start.get("headers", [])
            if name.lower() != b"content-length"
        ]
        headers.append((b"content-length", str(len(body)).encode()))
        await super().send_held({**start, "headers": headers}, body)
