"""The MCP server as agents use it: the real `mcp` client package against the launched app."""

from __future__ import annotations

import asyncio
import base64
import io
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client
from PIL import Image

from tests.conftest import serve
from zimage.agents.mcp_server import tool_listing
from zimage.tools.edit import Edit
from zimage.tools.enhance import EnhancePrompt
from zimage.tools.text_to_image import TextToImage

pytestmark = pytest.mark.xdist_group("mcp")  # its fixtures built once, on one worker

SAMPLES = Path(__file__).resolve().parents[2] / "examples"
SMALL = {"resolution": "256x256", "steps": 1, "randomize_seed": False}
SAMPLE = base64.b64encode((SAMPLES / "house.png").read_bytes()).decode()


@pytest.fixture(scope="module")
def app():
    yield from serve({"ZIMAGE_CACHE_MAX_PER_VISITOR": "2"})


def session(url: str, headers: dict[str, str] | None = None):
    """Run `work(session)` in one MCP session; returns what it returns."""

    def run(work: Callable[[ClientSession, Callable[[], str | None]], Awaitable[Any]]) -> Any:
        async def go() -> Any:
            async with streamablehttp_client(f"{url}/gradio_api/mcp/", headers=headers) as (
                read,
                write,
                session_id,
            ):
                async with ClientSession(read, write) as client:
                    await client.initialize()
                    return await work(client, session_id)

        return asyncio.run(go())

    return run


def images_of(result) -> list[Image.Image]:
    return [
        Image.open(io.BytesIO(base64.b64decode(item.data)))
        for item in result.content
        if item.type == "image"
    ]


def texts_of(result) -> list[str]:
    return [item.text for item in result.content if item.type == "text"]


def test_tools_are_described_with_typed_parameters_and_an_optional_mask(app) -> None:
    async def work(client, _):
        return (await client.list_tools()).tools

    tools = {tool.name: tool for tool in session(app.url)(work)}
    assert set(tools) == {"text_to_image", "edit_image", "enhance_prompt"}
    for tool in tools.values():
        assert tool.description
        for name, schema in tool.inputSchema["properties"].items():
            assert schema.get("description"), (tool.name, name)
    generate = tools["text_to_image"].inputSchema
    assert generate["required"] == ["prompt"]
    assert generate["properties"]["seed"]["type"] == "integer"
    assert generate["properties"]["steps"]["type"] == "integer"
    edit = tools["edit_image"].inputSchema
    assert "mask" not in edit["required"]


def test_images_come_back_as_image_content_with_their_seeds(app) -> None:
    progress: list[tuple[float, float | None]] = []

    async def work(client, _):
        async def on_progress(done, total, message):
            progress.append((done, total))

        return await client.call_tool(
            "text_to_image",
            {"prompt": "a kite", "seed": 5, "num_images": 2, **{**SMALL, "steps": 3}},
            progress_callback=on_progress,
        )

    result = session(app.url)(work)
    assert not result.isError
    assert [image.size for image in images_of(result)] == [(256, 256), (256, 256)]
    assert texts_of(result) == ["seed 5", "seed 6"]
    assert progress[-1] == (3, 3)


def test_edit_with_and_without_a_mask(app) -> None:
    picture = base64.b64encode((SAMPLES / "house.png").read_bytes()).decode()
    mask = Image.new("L", (512, 384), 0)
    mask.paste(255, (100, 100, 300, 300))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    mask_uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()

    async def work(client, _):
        plain = await client.call_tool(
            "edit_image", {"image": picture, "instruction": "snow", "steps": 2}
        )
        masked = await client.call_tool(
            "edit_image", {"image": picture, "instruction": "snow", "steps": 2, "mask": mask_uri}
        )
        return plain, masked

    plain, masked = session(app.url)(work)
    assert texts_of(plain)[-1] == "method img2img"
    assert texts_of(masked)[-1] == "method inpaint"
    assert images_of(plain)[0].size == (512, 384)


def test_bad_input_gets_a_readable_error(app) -> None:
    async def work(client, _):
        return [
            await client.call_tool("text_to_image", {"prompt": "  ", **SMALL}),
            await client.call_tool("text_to_image", {"prompt": "x", "resolution": "big"}),
            await client.call_tool("edit_image", {"image": "not base64!", "instruction": "x"}),
        ]

    results = session(app.url)(work)
    assert all(result.isError for result in results)
    messages = [texts_of(result)[0] for result in results]
    assert "prompt is empty" in messages[0]
    assert "WIDTHxHEIGHT" in messages[1]
    assert "not valid base64" in messages[2]
    assert not any("Traceback" in message or "/" in message[:1] for message in messages)


def test_tool_schemas_are_the_tools_own_descriptions(app) -> None:
    async def work(client, _):
        return (await client.list_tools()).tools

    listed = {tool.name: tool for tool in session(app.url)(work)}
    offered = app.space.service.offered()  # the models and adapters this Space serves
    for tool in (TextToImage, Edit, EnhancePrompt):
        assert listed[tool.agent_name].inputSchema == tool_listing(tool, offered).inputSchema
        assert listed[tool.agent_name].description.startswith(tool.summary())
    assert "base64" in listed["edit_image"].inputSchema["properties"]["image"]["description"]


def test_the_official_tools_argument_names_work_and_unknown_ones_are_named(app) -> None:
    async def work(client, _):
        return [
            await client.call_tool(
                "text_to_image",
                {"prompt": "a kite", "seed": 7, "random_seed": False, "resolution": "256x256"},
            ),
            await client.call_tool("text_to_image", {"prompt": "a kite", "sizes": "big"}),
            await client.call_tool(
                "text_to_image", {"prompt": "a kite", "seed": 7, "resolution": "256x256"}
            ),
            await client.call_tool(
                "edit_image", {"image": SAMPLE, "instruction": "snow", "seed": 7, "steps": 1}
            ),
        ]

    official, unknown, seed_alone, edited = session(app.url)(work)
    assert not official.isError and "seed 7" in texts_of(official)
    assert unknown.isError
    assert unknown.isError
    assert "Unknown argument 'sizes'" in texts_of(unknown)[0]
    assert "seed 7" in texts_of(seed_alone) and "seed 7" in texts_of(edited)


def test_each_mcp_session_is_its_own_visitor(app) -> None:
    """Outputs belong to the session that made them, and one session's cap evicts only its own."""
    service = app.space.service

    def make(count: int):
        async def work(client, session_id):
            for index in range(count):
                await client.call_tool("text_to_image", {"prompt": f"a kite {index}", **SMALL})
            return session_id()

        return work

    alice = session(app.url)(make(3))
    bob = session(app.url)(make(1))
    assert alice != bob
    assert len(service.outputs_of(f"mcp:{alice}")) == 2  # the cap of 2, her own oldest evicted
    assert len(service.outputs_of(f"mcp:{bob}")) == 1


def test_do_not_track_and_global_privacy_control_are_honoured(app) -> None:
    def rows() -> int:
        with sqlite3.connect(app.usage_db) as db:
            return db.execute("SELECT COUNT(*) FROM usage").fetchone()[0]

    async def one(client, _):
        await client.call_tool("text_to_image", {"prompt": "a kite", **SMALL})

    before = rows()
    session(app.url, {"DNT": "1"})(one)
    session(app.url, {"Sec-GPC": "1"})(one)
    assert rows() == before
    session(app.url)(one)
    assert rows() == before + 1


def test_mcp_can_be_switched_off() -> None:
    app = serve({"ZIMAGE_MCP": "off"})
    running = next(app)
    try:
        response = httpx.post(f"{running.url}/gradio_api/mcp/", json={}, timeout=10)
        assert response.status_code == 404
    finally:
        app.close()
