"""Who is asking: a browser (its pseudonym and choices) or a script (its Gradio session)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from zimage.privacy.policy import BrowserKeys
from zimage.service.visitors import Visitor, visitor_from_http
from zimage.settings import Settings


def browser_defaults() -> dict[str, Any]:
    return {"pseudonym": "", "opt_out": False, "policy_seen": None}


def visitor_of(
    request: gr.Request | None,
    settings: Settings,
    browser: dict | None = None,
    opt_out: bool | None = None,
    keys: BrowserKeys | None = None,
) -> Visitor:
    """The visitor behind a Gradio request.

    `opt_out` is the page's checkbox as sent with the request: the visitor's latest choice, even
    when the browser's stored copy has not been updated yet. Only a pseudonym signed with
    `keys` counts; any other (forged, altered, guessed) is no pseudonym at all. Scripts (no
    browser state) are their Gradio session.
    """
    headers = request.headers if request is not None else {}
    peer = request.client.host if request is not None and request.client else ""
    session = getattr(request, "session_hash", None) or ""
    stored = browser or {}
    pseudonym = keys.verified_id(stored.get("pseudonym")) if keys is not None else ""
    return visitor_from_http(
        peer,
        headers,
        settings,
        owner=pseudonym or f"session:{session}",
        pseudonym=pseudonym,
        analytics_opt_out=bool(stored.get("opt_out") if opt_out is None else opt_out),
    )
