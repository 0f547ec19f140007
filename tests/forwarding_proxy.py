"""A real reverse proxy for tests: forwards HTTP to an upstream and appends the address of the
connection it received to X-Forwarded-For, as a host's load balancer does.

Clients pick their source address on the loopback network (127.0.0.2, 127.0.0.3, ...) with
`client_from(address)`, so the proxy, like a real one, writes each client's true address.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from tests.launcher import WAIT_S, free_port, wait_until

HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"transfer-encoding",
    b"te",
    b"trailer",
    b"upgrade",
    b"host",
    b"proxy-connection",
}


class ForwardingProxy:
    """Pure ASGI app that forwards every HTTP request to `upstream`, streaming both ways."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.client: httpx.AsyncClient | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        assert scope["type"] == "http"
        assert self.client is not None
        peer = scope["client"][0]
        headers = [(k, v) for k, v in scope["headers"] if k not in HOP_BY_HOP]
        forwarded = [v.decode("latin-1") for k, v in headers if k == b"x-forwarded-for"]
        headers = [(k, v) for k, v in headers if k != b"x-forwarded-for"]
        headers.append((b"x-forwarded-for", ", ".join([*forwarded, peer]).encode()))
        query = scope.get("query_string", b"").decode()
        url = self.upstream + scope["path"] + (f"?{query}" if query else "")

        async def body() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    return

        request = self.client.build_request(scope["method"], url, headers=headers, content=body())
        response = await self.client.send(request, stream=True)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [
                        (k, v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP
                    ],
                }
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.client = httpx.AsyncClient(timeout=60)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.client is not None:
                    await self.client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


@contextmanager
def forwarding_proxy(upstream: str) -> Iterator[str]:
    """Serve a ForwardingProxy to `upstream` on 127.0.0.1; yields its URL."""
    port = free_port()
    # proxy_headers=False: the proxy itself must see the true peer, never a header's claim.
    config = uvicorn.Config(
        ForwardingProxy(upstream),
        host="127.0.0.1",
        port=port,
        proxy_headers=False,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, WAIT_S, "proxy did not start", poll_s=0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=WAIT_S)


def client_from(address: str, **kwargs: Any) -> httpx.Client:
    """An HTTP client whose connections leave from `address` (any 127.x.y.z on Linux)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=60, **kwargs)
