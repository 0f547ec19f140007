"""Who is asking: the visitor behind an HTTP request (page, script or agent)."""

from __future__ import annotations

from typing import Any

from zimage.guards.client_address import client_address
from zimage.service.service import Visitor
from zimage.settings import Settings


def visitor_from_http(
    peer: str,
    headers: Any,
    settings: Settings,
    owner: str,
    pseudonym: str = "",
    analytics_opt_out: bool = False,
) -> Visitor:
    """A Visitor for a request seen at the HTTP level.

    `headers` as the server has them (Starlette's `Headers` keeps repeated lines apart, which
    the client address needs); the address comes from trusted proxy hops only.
    """
    lowered = {name.lower(): value for name, value in dict(headers).items()}
    return Visitor(
        owner=owner,
        pseudonym=pseudonym,
        analytics_opt_out=analytics_opt_out,
        headers=lowered,
        client_ip=client_address(peer, headers, settings.trusted_proxy_hops),
        user_agent=lowered.get("user-agent", ""),
    )
