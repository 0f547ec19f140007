"""Telling the running request about a `/cancel` before Gradio handles it.

Gradio's `/cancel` route cancels the event's asyncio task, but a handler running in a worker
thread cannot be interrupted: it would go on denoising while Gradio counts its slot as free.
`CancelRelay` reads each `/cancel` on its way to Gradio and first asks the running requests
(zimage/page/running.py `RunningRequests`) to stop the one with that event id and session.
"""

from __future__ import annotations

import logging
from typing import Protocol

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from zimage.guards.asgi import BodyTooLarge, parse_json, read_body, replay, send_detail

logger = logging.getLogger(__name__)

CANCEL_ROUTE = "/gradio_api/cancel"
# A /cancel body is a few ids; anything longer is not ours to read.
MAX_CANCEL_BODY_BYTES = 4096


class CancelsRequests(Protocol):
    def cancel(self, event_id: str, session_hash: str) -> bool:
        """Stop the running request of that event if that session owns it; whether one was."""
        ...


class CancelRelay:
    """Pure ASGI middleware: tells `running` about each `/cancel` before Gradio handles it."""

    def __init__(self, app: ASGIApp, running: CancelsRequests) -> None:
        self.app = app
        self.running = running

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope.get("path", "").endswith(CANCEL_ROUTE)
        ):
            await self.app(scope, receive, send)
            return
        try:
            body = await read_body(receive, MAX_CANCEL_BODY_BYTES)
        except BodyTooLarge:
            detail = "A cancel request is a few ids, not this much data."
            await send_detail(scope, receive, send, 413, detail)
            return
        except ClientDisconnect:
            return  # nobody left to answer
        self._relay(body)
        await self.app(scope, replay(body, receive), send)

    def _relay(self, body: bytes) -> None:
        try:
            request = parse_json(body)
        except ValueError:
            return
        if isinstance(request, dict):
            event_id, session = request.get("event_id"), request.get("session_hash")
            if isinstance(event_id, str) and isinstance(session, str):
                if self.running.cancel(event_id, session):
                    logger.info("request cancelled by its caller")
