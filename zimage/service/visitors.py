"""Who is asking: the visitor behind a request (page, script or agent), as far as the policy
lets the server know."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zimage.guards.client_address import address_key, client_address
from zimage.settings import Settings


@dataclass(frozen=True)
class Visitor:
    """`owner` decides who may see the outputs: the browser's pseudonym, or the session of a
    script or agent. `pseudonym` links usage rows to a browser for "your data"; scripts have
    none."""

    owner: str
    pseudonym: str = ""
    analytics_opt_out: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)
    client_ip: str = ""
    user_agent: str = ""
    # The keyed hash of `client_ip` (zimage/guards/client_address.py `address_key`): the files
    # made for this visitor are given to it, and only requests from it may name them.
    address_key: str = ""


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
    address = client_address(peer, headers, settings.trusted_proxy_hops)
    return Visitor(
        owner=owner,
        pseudonym=pseudonym,
        analytics_opt_out=analytics_opt_out,
        headers=lowered,
        client_ip=address,
        user_agent=lowered.get("user-agent", ""),
        address_key=address_key(address),
    )
