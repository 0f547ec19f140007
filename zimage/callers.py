"""Who is asking, from what an HTTP request shows: the one place that reads client addresses."""

from __future__ import annotations

from collections.abc import Mapping

from zimage.service import Visitor
from zimage.settings import Settings


def client_address(peer: str, headers: Mapping[str, str], settings: Settings) -> str:
    """The caller's address: on a Space, as the Space's proxy reports it."""
    forwarded = headers.get("x-forwarded-for", "")
    if settings.on_space and forwarded:
        return forwarded.split(",")[0].strip()
    return peer


def visitor_from_http(
    peer: str,
    headers: Mapping[str, str],
    settings: Settings,
    owner: str,
    pseudonym: str = "",
    analytics_opt_out: bool = False,
) -> Visitor:
    """A Visitor for a request seen at the HTTP level (page, script or agent)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    return Visitor(
        owner=owner,
        pseudonym=pseudonym,
        analytics_opt_out=analytics_opt_out,
        headers=lowered,
        client_ip=client_address(peer, lowered, settings),
        user_agent=lowered.get("user-agent", ""),
    )
