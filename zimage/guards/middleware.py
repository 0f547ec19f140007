"""The Space's ASGI middleware, in the order the app stacks them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from starlette.middleware import Middleware

from zimage.guards.cancel_relay import CancelRelay, CancelsEvents
from zimage.guards.gradio_calls import KnownEndpoints
from zimage.guards.mcp_route import HandlesRequests, McpRoute
from zimage.guards.page_language import PageLanguage
from zimage.guards.protocol_guard import ProtocolGuard
from zimage.guards.public_errors import PublicErrors
from zimage.guards.security_headers import SecurityHeaders
from zimage.guards.upload_guard import UploadGuard
from zimage.guards.uploads import HeldUploads, UploadBudget
from zimage.settings import Settings


def middleware_stack(
    settings: Settings,
    *,
    upload_budget: UploadBudget,
    held_uploads: HeldUploads,
    endpoints: KnownEndpoints,
    cancels: CancelsEvents,
    mcp_server: HandlesRequests | None,
    hidden_paths: Iterable[str],
    files_given: Callable[[str, str], bool] = lambda path, address: False,
) -> list[Middleware]:
    """For Gradio's `app_kwargs={"middleware": ...}`, outermost first (Starlette stacks the
    list that way; Gradio's CORS and compression wrap it all). Why this order:

    - SecurityHeaders first, so that every answer carries its headers, refusals included;
      `headers_outermost` later moves it before Gradio's own middleware too.
    - UploadGuard next: every request body is counted against its sender's budget and bounded
      before anything further in reads it (the MCP server's requests included).
    - CancelRelay and PageLanguage touch only `/cancel`, `/reset` and the page.
    - McpRoute before the two guards of Gradio's protocol: MCP requests are not Gradio's, and
      the MCP server answers its errors in its own protocol (McpRoute makes them public).
    - ProtocolGuard: Gradio's protocol, checked against what the app serves.
    - PublicErrors last: it then rewrites only what Gradio answers, never the readable
      refusals of the middleware before it.
    """
    stack = [
        Middleware(SecurityHeaders, frame_ancestors=settings.frame_ancestors),
        Middleware(
            UploadGuard,
            budget=upload_budget,
            held=held_uploads,
            endpoints=endpoints,
            trusted_proxy_hops=settings.trusted_proxy_hops,
            max_upload_bytes=settings.max_upload_mb * 1024 * 1024,
            files_given=files_given,
        ),
        Middleware(CancelRelay, cancels=cancels),
        Middleware(PageLanguage),
    ]
    hidden_paths = list(hidden_paths)
    if mcp_server is not None:
        stack.append(Middleware(McpRoute, server=mcp_server, hidden_paths=hidden_paths))
    stack.append(Middleware(ProtocolGuard, endpoints=endpoints))
    stack.append(Middleware(PublicErrors, hidden_paths=hidden_paths))
    return stack


def headers_outermost(app: Any) -> None:
    """Move SecurityHeaders in front of the middleware Gradio adds around ours (its CORS
    middleware answers preflight requests itself, which would go without the headers) and
    rebuild the Starlette `app`'s stack. Call from its lifespan, before the first request."""
    stack = app.user_middleware
    headers = next(entry for entry in stack if entry.cls is SecurityHeaders)
    stack.remove(headers)
    stack.insert(0, headers)
    app.middleware_stack = app.build_middleware_stack()
