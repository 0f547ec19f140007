"""The prompt enhancer as the Space runs it: in the GPU slot, through the request path (checks,
content filter, usage log), across ZeroGPU's boundary, and for scripts and agents."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import sys
from pathlib import Path

import pytest
from gradio_client.exceptions import AppError
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

from tests.conftest import make_service
from zimage.engine.engine import Engine
from zimage.engine.enhancer import create_enhancer
from zimage.engine.errors import Cancelled, EngineUnavailable, TimedOut
from zimage.engine.jobs import JobControl, RunHooks, StopReason
from zimage.engine.loading import create_engine
from zimage.engine.tiny_pipelines import build_preview_pipeline
from zimage.privacy.usage_log import UsageLog
from zimage.service.moderation import ContentFlagged, Moderation
from zimage.service.visitors import Visitor
from zimage.settings import Settings
from zimage.tools.enhance import EnhancePrompt

pytestmark = pytest.mark.xdist_group("enhance_flow")  # its fixtures built once, on one worker

STANDINS = Path(__file__).resolve().parents[1] / "standins"
PROMPT = "a red kite over the sea"
VISITOR = Visitor(owner="p-enhance", pseudonym="p-enhance", client_ip="203.0.113.9")


def engine_with_enhancer(**overrides) -> Engine:
    engine = Engine(build_preview_pipeline(), kind="preview", description="t", **overrides)
    engine.enhancer = create_enhancer(
        Settings.from_env({"ZIMAGE_ENHANCER_MAX_TOKENS": "24"}),
        engine.pipeline.text_encoder,
        engine.pipeline.tokenizer,
        engine.prompt_tokens,
    )
    return engine


@pytest.fixture(scope="module")
def engine() -> Engine:
    return engine_with_enhancer()


def test_the_rewrite_streams_and_repeats_for_a_seed(engine) -> None:
    seen: list[str] = []
    first = engine.enhance_prompt(
        EnhancePrompt(prompt=PROMPT, seed=5), RunHooks(on_text=seen.append)
    )
    assert seen and seen[-1] == first
    assert all(later.startswith(earlier[:1]) for earlier, later in zip(seen, seen[1:]))
    assert engine.enhance_prompt(EnhancePrompt(prompt=PROMPT, seed=5)) == first
    assert engine.enhance_prompt(EnhancePrompt(prompt=PROMPT)) == engine.enhance_prompt(
        EnhancePrompt(prompt=PROMPT)
    )


def test_cancel_and_time_limit_stop_it(engine) -> None:
    control = JobControl()
    tokens: list[str] = []

    def stop_after_three(text: str) -> None:
        tokens.append(text)
        if len(tokens) == 3:
            control.stop(StopReason.CANCELLED)

    with pytest.raises(Cancelled):
        engine.enhance_prompt(
            EnhancePrompt(prompt=PROMPT, seed=1),
            RunHooks(on_text=stop_after_three, control=control),
        )
    assert len(tokens) == 3
    slow = engine_with_enhancer(time_limit_s=0.0)
    with pytest.raises(TimedOut):
        slow.enhance_prompt(EnhancePrompt(prompt=PROMPT))


def test_without_an_enhancer_it_says_so() -> None:
    plain = Engine(build_preview_pipeline(), kind="preview", description="t")
    with pytest.raises(EngineUnavailable, match="not available"):
        plain.enhance_prompt(EnhancePrompt(prompt=PROMPT))


def test_the_enhanced_text_passes_the_content_filter(engine, tmp_path) -> None:
    service = make_service(engine)
    enhanced = service.enhance_prompt(EnhancePrompt(prompt=PROMPT, seed=7), VISITOR)
    written = enhanced.strip()[:4]  # something the enhancer wrote that the visitor did not
    assert written and written not in PROMPT
    blocklist = tmp_path / "blocklist.txt"
    blocklist.write_text("re:" + re.escape(written) + "\n", encoding="utf-8")
    service.moderation = Moderation.load(str(blocklist), "")
    service.moderation.check_prompt(PROMPT)  # the visitor's own prompt is allowed
    with pytest.raises(ContentFlagged):
        service.enhance_prompt(EnhancePrompt(prompt=PROMPT, seed=7), VISITOR)


def test_it_is_logged_without_the_prompt_and_not_at_all_when_opted_out(engine, tmp_path) -> None:
    log = UsageLog(tmp_path / "usage.sqlite3")
    service = make_service(engine, usage_log=log)
    service.enhance_prompt(EnhancePrompt(prompt=PROMPT, seed=-1), VISITOR)
    service.enhance_prompt(
        EnhancePrompt(prompt=PROMPT, seed=-1),
        Visitor(owner="p-out", pseudonym="p-out", analytics_opt_out=True),
    )
    log.flush()
    with sqlite3.connect(tmp_path / "usage.sqlite3") as db:
        rows = db.execute("SELECT endpoint, params, prompt, pseudonym FROM usage").fetchall()
    assert rows == [("enhance", '{"sampled": false}', None, "p-enhance")]
    raw = b"".join(path.read_bytes() for path in tmp_path.glob("usage.sqlite3*"))
    assert PROMPT.encode() not in raw
    log.close()


def test_it_crosses_the_zero_gpu_boundary(monkeypatch, engine) -> None:
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.syspath_prepend(str(STANDINS))
    monkeypatch.delitem(sys.modules, "spaces", raising=False)
    forked = engine_with_enhancer()
    assert forked.on_zero_gpu
    seen: list[str] = []
    text = forked.enhance_prompt(
        EnhancePrompt(prompt=PROMPT, seed=5), RunHooks(on_text=seen.append)
    )
    assert text == engine.enhance_prompt(EnhancePrompt(prompt=PROMPT, seed=5))
    assert seen[-1] == text


def test_the_app_loads_the_enhancer_with_the_engine() -> None:
    assert create_engine(Settings.from_env({"ZIMAGE_ENGINE": "preview"})).enhancer is not None
    off = create_engine(Settings.from_env({"ZIMAGE_ENGINE": "preview", "ZIMAGE_ENHANCER": "off"}))
    assert off.enhancer is None


def test_scripts_call_enhance_prompt(client) -> None:
    greedy = client.predict(prompt=PROMPT, api_name="/enhance_prompt")
    assert greedy and greedy == client.predict(prompt=PROMPT, seed=-1, api_name="/enhance_prompt")
    sampled = client.predict(prompt=PROMPT, seed=11, api_name="/enhance_prompt")
    assert sampled == client.predict(prompt=PROMPT, seed=11, api_name="/enhance_prompt")
    with pytest.raises(AppError, match="prompt is empty"):
        client.predict(prompt="  ", api_name="/enhance_prompt")


def test_agents_call_enhance_prompt(running_app) -> None:
    async def work():
        async with streamablehttp_client(f"{running_app.url}/gradio_api/mcp/") as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                names = [tool.name for tool in (await session.list_tools()).tools]
                result = await session.call_tool("enhance_prompt", {"prompt": PROMPT})
                return names, result

    names, result = asyncio.run(work())
    assert "enhance_prompt" in names
    assert not result.isError and result.content[0].text
