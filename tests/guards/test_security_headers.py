"""Every answer carries nosniff, no-referrer and a Permissions-Policy that allows only what the
page uses; framing stays allowed unless the operator restricts it (issue 12, item 6)."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import serve
from tests.gradio_http import call
from zimage.settings import Settings, SettingsError

PAGE_FEATURES = {"camera", "clipboard-read", "clipboard-write", "fullscreen"}


def permissions(header: str) -> dict[str, str]:
    return dict(item.strip().split("=", 1) for item in header.split(","))


def answers(url: str) -> dict[str, httpx.Response]:
    """A sample of every kind of answer: the page, JSON, CSS, a script, an output file, an
    upload, an event stream, refusals."""
    with httpx.Client(base_url=url, timeout=60) as client:
        page = client.get("/")
        script = re.search(r'src="([^"]+\.js)"', page.text)
        assert script, "the page loads a script"
        result = call(url, "generate", ["a kite", "256x256", 1, 2, 3.0, False, []])
        output = re.search(r'"url": "([^"]+)"', result)
        assert output, result
        with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": "x"}) as events:
            stream = events  # its headers; the body is an endless event stream
        return {
            "page": page,
            "config": client.get("/config"),
            "info": client.get("/gradio_api/info"),
            "theme": client.get("/theme.css"),
            "script": client.get(script.group(1)),
            "output": client.get(output.group(1)),
            "upload": client.post("/gradio_api/upload", files={"files": ("a.png", b"x")}),
            "events": stream,
            "refused file": client.get("/gradio_api/file=/etc/passwd"),
            "not found": client.get("/no-such-page"),
            "malformed": client.post("/gradio_api/queue/join", content=b"{"),
        }


def test_every_answer_carries_the_security_headers(running_app) -> None:
    for name, answer in answers(running_app.url).items():
        headers = answer.headers
        assert headers.get("x-content-type-options") == "nosniff", name
        assert headers.get("referrer-policy") == "no-referrer", name
        policy = permissions(headers.get("permissions-policy", ""))
        allowed = {feature for feature, origins in policy.items() if origins != "()"}
        assert allowed == PAGE_FEATURES, name
        assert all(policy[feature] == "(self)" for feature in PAGE_FEATURES), name
        assert {"geolocation", "microphone", "payment", "usb"} <= set(policy), name
        # The Space is meant to be embedded: no frame restriction unless the operator sets one.
        assert "content-security-policy" not in headers, name
        assert "x-frame-options" not in headers, name
        assert len(headers.get_list("x-content-type-options")) == 1, name


def test_operator_can_restrict_framing() -> None:
    app = serve({"ZIMAGE_FRAME_ANCESTORS": "'self'  https://example.org https://*.hf.space"})
    running = next(app)
    try:
        for path in ("/", "/config", "/gradio_api/file=/etc/passwd"):
            policy = httpx.get(f"{running.url}{path}").headers.get("content-security-policy")
            assert policy == "frame-ancestors 'self' https://example.org https://*.hf.space"
    finally:
        app.close()


@pytest.mark.parametrize(
    "value", ["'none'", "'self'", "https://example.org:8443", "http://localhost:7860 'self'"]
)
def test_frame_ancestors_setting_accepts_source_lists(value: str) -> None:
    assert Settings.from_env({"ZIMAGE_FRAME_ANCESTORS": value}).frame_ancestors == value


@pytest.mark.parametrize(
    "value",
    [
        "'self'; script-src *",
        "https://example.org/path",
        "javascript:alert(1)",
        "'none' https://example.org",
        "'unsafe-inline'",
        "https://exa mple.org\nX-Injected: 1",
    ],
)
def test_frame_ancestors_setting_refuses_anything_else(value: str) -> None:
    with pytest.raises(SettingsError, match="^ZIMAGE_FRAME_ANCESTORS="):
        Settings.from_env({"ZIMAGE_FRAME_ANCESTORS": value})
