"""MCP sessions shared fairly: at most so many open per client address.

MCP's session manager keeps at most `max_sessions` sessions open, each until its client ends
it or it idles out. One address that opened them all (1,005 `initialize` requests in 19 s)
locked every other agent out with "Too many open sessions" until the idle expiry. Here a new
session is refused to an address that already holds `per_address` of them, with a readable
429, and every other address keeps its places.

The manager's own hooks are used, as mcp 1.30 names them: `_admit_session` (under its session
lock, when it registers a new session) and `_discard_session` (however a session ends: the
client's DELETE, the idle expiry, a failed opening request).
tests/guards/test_strangers.py::test_one_address_cannot_lock_other_agents_out_of_mcp
catches an mcp that changes them.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.types import ErrorData, JSONRPCError
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

# JSON-RPC's code for an error of the server's own (the reserved range -32000 to -32099).
TOO_MANY_SESSIONS = -32001


@dataclass
class _Opening:
    """A request that may open a session: whose address, and the session it opened."""

    address: str
    session_id: str | None = None


_opening: contextvars.ContextVar[_Opening | None] = contextvars.ContextVar(
    "mcp_opening", default=None
)


class SessionsPerAddress(StreamableHTTPSessionManager):
    """MCP's streamable-HTTP session manager with at most `per_address` open sessions per
    client address; `address_of(scope)` names a request's address (a keyed hash: no raw
    address is kept)."""

    def __init__(
        self, app: Any, *, per_address: int, address_of: Callable[[Scope], str], **options: Any
    ) -> None:
        super().__init__(app, **options)
        self.per_address = per_address
        self._address_of = address_of
        self._open: dict[str, int] = {}  # address -> sessions open or opening
        self._session_address: dict[str, str] = {}

    def open_sessions(self, address: str) -> int:
        return self._open.get(address, 0)

    async def handle_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        if Headers(scope=scope).get(MCP_SESSION_ID_HEADER) is not None:
            await super().handle_request(scope, receive, send)
            return
        address = self._address_of(scope)
        if self._open.get(address, 0) >= self.per_address:
            await self._refusal()(scope, receive, send)
            return
        # Counted before the first await: requests opening at once from one address see it.
        self._open[address] = self._open.get(address, 0) + 1
        opening = _Opening(address)
        token = _opening.set(opening)
        try:
            await super().handle_request(scope, receive, send)
        finally:
            _opening.reset(token)
            if opening.session_id is None:  # none opened (refused, failed): the place is free
                self._release(address)

    def _admit_session(self, requestor: Any) -> Any:
        transport = super()._admit_session(requestor)
        opening = _opening.get()
        if transport is not None and opening is not None:
            opening.session_id = transport.mcp_session_id
            self._session_address[transport.mcp_session_id] = opening.address
        return transport

    async def _discard_session(self, session_id: str, transport: Any) -> None:
        address = self._session_address.pop(session_id, None)
        if address is not None:
            self._release(address)
        await super()._discard_session(session_id, transport)

    def _release(self, address: str) -> None:
        left = self._open.get(address, 0) - 1
        if left > 0:
            self._open[address] = left
        else:
            self._open.pop(address, None)

    def _refusal(self) -> Response:
        idle_s = int(self.session_idle_timeout or 0)
        message = (
            f"This address already holds {self.per_address} open MCP sessions, the most one "
            "address may. End the sessions you no longer use (HTTP DELETE with their "
            f"Mcp-Session-Id), or wait: an idle session closes after {idle_s} s."
        )
        body = JSONRPCError(
            jsonrpc="2.0",
            id="server-error",
            error=ErrorData(code=TOO_MANY_SESSIONS, message=message),
        )
        return Response(
            body.model_dump_json(by_alias=True, exclude_none=True),
            status_code=429,
            media_type="application/json",
            headers={"Retry-After": str(idle_s)},
        )
