"""The guards' shared ASGI helpers (zimage/guards/asgi.py), the value checks of Gradio calls
(zimage/guards/gradio_calls.py) and the middleware order, on a tiny Starlette app."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zimage.guards.asgi import (
    BodyTooLarge,
    JsonTooDeep,
    parse_json,
    read_body,
    replay,
    send_detail,
)
from zimage.guards.cancel_relay import CancelRelay
from zimage.guards.gradio_calls import GradioFunction
from zimage.guards.mcp_route import McpRoute
from zimage.guards.middleware import middleware_stack
from zimage.guards.page_language import PageLanguage
from zimage.guards.protocol_guard import ProtocolGuard
from zimage.guards.public_errors import PublicErrors
from zimage.guards.security_headers import SecurityHeaders
from zimage.guards.upload_guard import UploadGuard
from zimage.guards.uploads import HeldUploads, UploadBudget
from zimage.settings import Settings

LIMIT = 1000


class Inspector:
    """Middleware that reads each body within LIMIT, refuses a body that says "refuse", and
    hands the others on to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            body = await read_body(receive, LIMIT)
        except BodyTooLarge:
            await send_detail(scope, receive, send, 413, "Too large.", headers={"Retry-After": "7"})
            return
        if body == b"refuse":
            kept = [(b"x-kept", b"1"), (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]
            await send_detail(scope, receive, send, 400, "Refused.", kept_headers=kept)
            return
        await self.app(scope, replay(body, receive), send)


async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/octet-stream")


@pytest.fixture(scope="module")
def http() -> Iterator[TestClient]:
    app = Starlette(routes=[Route("/", echo, methods=["POST"])])
    with TestClient(Inspector(app)) as client:
        yield client


def chunks(*parts: bytes) -> Iterator[bytes]:
    yield from parts


def test_the_app_gets_the_body_the_middleware_read(http: TestClient) -> None:
    answer = http.post("/", content=chunks(b"one ", b"two ", b"three"))
    assert answer.status_code == 200
    assert answer.content == b"one two three"
    assert http.post("/", content=b"").content == b""


def test_a_refusal_is_json_with_its_headers(http: TestClient) -> None:
    answer = http.post("/", content=b"x" * (LIMIT + 1))
    assert answer.status_code == 413
    assert answer.json() == {"detail": "Too large."}
    assert answer.headers["retry-after"] == "7"
    assert answer.headers["content-type"] == "application/json"
    assert int(answer.headers["content-length"]) == len(answer.content)


def test_a_refusal_keeps_the_headers_it_is_given(http: TestClient) -> None:
    answer = http.post("/", content=b"refuse")
    assert answer.status_code == 400
    assert answer.json() == {"detail": "Refused."}
    assert answer.headers["x-kept"] == "1"
    assert answer.headers.get_list("set-cookie") == ["a=1", "b=2"]


def receiver(*messages: Message) -> tuple[Receive, list[Message]]:
    """A receive() giving `messages` in turn, and the list of those it gave."""
    given: list[Message] = []
    pending = list(messages)

    async def receive() -> Message:
        given.append(pending.pop(0))
        return given[-1]

    return receive, given


def test_reading_stops_at_the_limit() -> None:
    chunk = {"type": "http.request", "body": b"x" * 400, "more_body": True}
    receive, given = receiver(*[chunk] * 10)
    with pytest.raises(BodyTooLarge):
        asyncio.run(read_body(receive, LIMIT))
    assert len(given) == 3  # 1200 bytes: nothing read past the chunk that crossed the limit


def test_a_client_that_leaves_mid_body_is_not_answered() -> None:
    receive, _ = receiver(
        {"type": "http.request", "body": b"{", "more_body": True}, {"type": "http.disconnect"}
    )
    with pytest.raises(ClientDisconnect):
        asyncio.run(read_body(receive))


def test_the_replay_gives_the_body_once_then_the_connection() -> None:
    receive, _ = receiver({"type": "http.disconnect"})

    async def twice() -> list[Message]:
        replayed = replay(b"body", receive)
        return [await replayed(), await replayed()]

    first, second = asyncio.run(twice())
    assert first == {"type": "http.request", "body": b"body", "more_body": False}
    assert second == {"type": "http.disconnect"}


def test_json_too_deep_to_read_is_a_value_error() -> None:
    assert parse_json(b'{"a": [1]}') == {"a": [1]}
    with pytest.raises(JsonTooDeep):
        parse_json(b"[" * 100_000)
    assert issubclass(JsonTooDeep, ValueError)
    with pytest.raises(ValueError):
        parse_json(b"{")


GENERATE = GradioFunction(
    "/generate", ("prompt", "resolution", "seed", "steps", "shift", "random_seed", "gallery")
)


def test_too_few_values_are_named() -> None:
    assert GENERATE.too_few_values(6, hidden_filled=True) == (
        "/generate takes 7 values (prompt, resolution, seed, steps, shift, random_seed, "
        "gallery); this request sent 6."
    )
    # Gradio ignores values past the last input.
    assert GENERATE.too_few_values(7, hidden_filled=False) is None
    assert GENERATE.too_few_values(9, hidden_filled=False) is None
    one = GradioFunction("fn_index 3", ("prompt",))
    assert one.too_few_values(0, hidden_filled=False) == (
        "fn_index 3 takes 1 value (prompt); this request sent 0."
    )
    assert GradioFunction("/b", ("a",), batched=True).too_few_values(0, hidden_filled=False) is None


def test_hidden_inputs_count_on_the_queue_only() -> None:
    """/call/<api> fills a session-state input itself when only the others are sent."""
    with_state = GradioFunction("/chat", ("message", "history"), hidden=frozenset({1}))
    assert with_state.too_few_values(1, hidden_filled=True) is None
    assert with_state.too_few_values(0, hidden_filled=True) == (
        "/chat takes 1 value (message); this request sent 0."
    )
    assert with_state.too_few_values(1, hidden_filled=False) == (
        "/chat takes 2 values (message, history); this request sent 1."
    )


def test_a_refused_value_in_the_format_of_gradio_validators() -> None:
    assert GradioFunction("/edit", ("image", "instruction")).refused_value(0, "No URLs.") == [
        {
            "__type__": "validate",
            "is_valid": False,
            "message": "No URLs.",
            "parameter_name": "image",
        },
        {"is_valid": True, "message": ""},
    ]


@pytest.mark.parametrize("with_mcp", [True, False])
def test_the_middleware_stack_order(tmp_path, with_mcp: bool) -> None:
    class Server:
        async def handle_request(self, scope: Scope, receive: Receive, send: Send) -> None:
            pass

    class Running:
        def cancel(self, event_id: str, session_hash: str) -> bool:
            return False

    stack = middleware_stack(
        Settings.from_env({"ZIMAGE_DATA_DIR": str(tmp_path)}),
        upload_budget=UploadBudget(1024, 60),
        held_uploads=HeldUploads(tmp_path, 1024, 60),
        endpoints=None,  # not asked while stacking
        running=Running(),
        mcp_server=Server() if with_mcp else None,
        hidden_paths=[],
    )
    expected = [SecurityHeaders, UploadGuard, CancelRelay, PageLanguage, McpRoute]
    expected = expected if with_mcp else expected[:-1]
    assert [entry.cls for entry in stack] == [*expected, ProtocolGuard, PublicErrors]


def test_the_app_stacks_the_middleware_in_that_order(running_app) -> None:
    """Gradio puts its own middleware around ours; ours keep their order, PublicErrors last."""
    ours = {SecurityHeaders, UploadGuard, CancelRelay, PageLanguage, McpRoute}
    ours |= {ProtocolGuard, PublicErrors}
    stacked = [entry.cls for entry in running_app.space.demo.app.user_middleware]
    assert [cls for cls in stacked if cls in ours] == [
        SecurityHeaders,
        UploadGuard,
        CancelRelay,
        PageLanguage,
        McpRoute,
        ProtocolGuard,
        PublicErrors,
    ]
    assert stacked[-1] is PublicErrors
