"""Routing the MCP address to the MCP server (zimage/agents/mcp_server.py), before Gradio."""

from __future__ import annotations

from typing import Protocol

from starlette.types import ASGIApp, Receive, Scope, Send

MCP_PATH = "/gradio_api/mcp"


class HandlesRequests(Protocol):
    """An ASGI handler as MCP's session manager is one (`StreamableHTTPSessionManager`)."""

    async def handle_request(self, scope: Scope, receive: Receive, send: Send) -> None: ...


class McpRoute:
    """Pure ASGI middleware: requests to MCP_PATH go to `server`, all others to the app."""

    def __init__(self, app: ASGIApp, server: HandlesRequests) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path", "").rstrip("/") == MCP_PATH:
            await self.server.handle_request(scope, receive, send)
        else:
            await self.app(scope, receive, send)
