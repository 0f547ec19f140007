"""The Space's ASGI middleware, in the order the app stacks them."""

from __future__ import annotations

from collections.abc import Iterable

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
) -> list[Middleware]:
    """For Gradio's `app_kwargs={"middleware": ...}`, outermost first (Starlette stacks the
    list that way; Gradio's CORS and compression wrap it all). Why this order:

    - SecurityHeaders first, so that every answer carries its headers, refusals included.
    - UploadGuard next: every request body is counted against its sender's budget and bounded
      before anything further in reads it (the MCP server's requests included).
    - CancelRelay and PageLanguage touch only `/cancel`, `/reset` and the page.
    - McpRoute before the two guards of Gradio's protocol: MCP requests are not Gradio's, and
      the MCP server answers its errors in its own protocol.
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
        ),
        Middleware(CancelRelay, cancels=cancels),
        Middleware(PageLanguage),
    ]
    if mcp_server is not None:
        stack.append(Middleware(McpRoute, server=mcp_server))
    stack.append(Middleware(ProtocolGuard, endpoints=endpoints))
    stack.append(Middleware(PublicErrors, hidden_paths=hidden_paths))
    return stack
