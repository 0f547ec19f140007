"""`/cancel` and `/reset` answered by the Space, bound to the session that owns the event.

Gradio's `/cancel` route stops every running task of the caller's session and function, not
just the event named, and a handler running in a worker thread cannot be interrupted anyway: it
would go on denoising while Gradio counts its slot as free. `CancelRelay` reads each `/cancel`
and `/reset` (gradio_client sends `/reset` with the event id after a cancel it sent before it
knew that id) and hands it to `CancelsEvents` (zimage/page/cancels.py `EventCancels`), which
cancels exactly that event, for its own session only. It answers `/cancel` as Gradio does
(`{"success": true}`, whatever was found: an unknown or foreign event id teaches the caller
nothing); `/reset` goes on to Gradio, where it does nothing.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from zimage.guards.asgi import BodyTooLarge, parse_json, read_body, replay, send_detail

logger = logging.getLogger(__name__)

CANCEL_ROUTE = "/gradio_api/cancel"
RESET_ROUTE = "/gradio_api/reset"
# A /cancel or /reset body is a few ids; anything longer is not ours to read.
MAX_CANCEL_BODY_BYTES = 4096


class CancelsEvents(Protocol):
    async def cancel(self, event_id: str | None, session_hash: str, fn_index: Any) -> None:
        """Cancel that event if that session owns it (None: before the caller knew its id)."""
        ...

    async def reset(self, event_id: str) -> None:
        """A `/reset` after a cancel sent without the event id."""
        ...


class CancelRelay:
    """Pure ASGI middleware: `/cancel` and `/reset` go to `cancels` first."""

    def __init__(self, app: ASGIApp, cancels: CancelsEvents) -> None:
        self.app = app
        self.cancels = cancels

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "").rstrip("/") if scope["type"] == "http" else ""
        if scope.get("method") != "POST" or not path.endswith((CANCEL_ROUTE, RESET_ROUTE)):
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
        request = _json_object(body)
        if path.endswith(RESET_ROUTE):
            if isinstance(request.get("event_id"), str):
                await self.cancels.reset(request["event_id"])
            await self.app(scope, replay(body, receive), send)
            return
        event_id, session = request.get("event_id"), request.get("session_hash")
        if isinstance(session, str) and (event_id is None or isinstance(event_id, str)):
            await self.cancels.cancel(event_id, session, request.get("fn_index"))
        await _answer_success(send)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        request = parse_json(body)
    except ValueError:
        return {}
    return request if isinstance(request, dict) else {}


async def _answer_success(send: Send) -> None:
    payload = json.dumps({"success": True}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
