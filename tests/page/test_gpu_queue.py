"""One queue for the GPU, whatever the door (issues 25.1, 25.7 and 24.3): the app served on a port,
called with the real gradio_client and the real `mcp` client, each visitor its own address
behind one trusted proxy (X-Forwarded-For).

The GPU is held shut while a test sets up its queue (the job on the GPU waits at its first step),
so what the queue decides is seen in order, whatever the machine's speed: which run got the next
GPU slot, and which joins were refused before any slot came free.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

from tests.conftest import serve
from tests.gpu_gate import (
    WAIT_S,
    eventually,
    gpu_held,
    next_address,
    refused,
    small,
    visitor,
    waiting,
)
from zimage.service.gpu_turns import fair_order

RATE = 6
PER_VISITOR = 4
QUEUE_MAX = 10

pytestmark = pytest.mark.xdist_group("gpu_queue")  # its fixtures built once, on one worker


@pytest.fixture(scope="module")
def app():
    yield from serve(
        {
            "ZIMAGE_TRUSTED_PROXY_HOPS": "1",
            "ZIMAGE_RATE_PER_MIN": str(RATE),
            "ZIMAGE_QUEUE_PER_VISITOR": str(PER_VISITOR),
            "ZIMAGE_QUEUE_MAX": str(QUEUE_MAX),
        }
    )


class McpAgent:
    """An MCP session in a thread of its own; `call` returns a future of the tool result."""

    def __init__(self, url: str, address: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.session: ClientSession | None = None
        self._stop: asyncio.Event | None = None
        ready = threading.Event()

        async def hold_session() -> None:
            headers = {"X-Forwarded-For": address}
            async with streamablehttp_client(f"{url}/gradio_api/mcp/", headers=headers) as (
                read,
                write,
                _,
            ):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    self.session, self._stop = session, asyncio.Event()
                    ready.set()
                    await self._stop.wait()

        self.thread = threading.Thread(
            target=self.loop.run_until_complete, args=(hold_session(),), daemon=True
        )
        self.thread.start()
        assert ready.wait(WAIT_S), "the MCP session never opened"

    def call(self, tool: str, arguments: dict[str, Any]) -> Any:
        assert self.session is not None
        coroutine = self.session.call_tool(tool, arguments)
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def close(self) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(WAIT_S)


def test_the_next_slot_goes_to_a_waiting_visitor_before_a_greedy_ones_next_run(app) -> None:
    greedy, polite = visitor(app), visitor(app)
    with gpu_held(app) as held:
        entered = held.entered
        jobs = [greedy.submit(**small(100 + n), api_name="/text_to_image") for n in range(4)]
        eventually(lambda: len(entered) == 2 and waiting(app) == 2, "two runs hold the slots")
        mine = polite.submit(**small(7), api_name="/text_to_image")
        eventually(lambda: waiting(app) == 3, "the polite run never joined")
        held.open()
        for job in [*jobs, mine]:
            assert job.result(timeout=WAIT_S)[0]
    # Both slots went to runs of the greedy visitor (gradio_client joins them in any order); the
    # next free slot to the polite one, though two more of the greedy one's had joined before.
    assert entered[2] == 7
    assert sorted(entered[:2] + entered[3:]) == [100, 101, 102, 103]
    greedy.close()
    polite.close()


def test_an_agent_with_many_calls_waits_its_turn_like_a_script(app) -> None:
    agent = McpAgent(app.url, next_address())
    polite = visitor(app)
    with gpu_held(app) as held:
        entered = held.entered
        calls = [agent.call("text_to_image", small(200 + n)) for n in range(4)]
        eventually(lambda: len(entered) == 2 and waiting(app) == 2, "two calls hold the slots")
        mine = polite.submit(**small(8), api_name="/text_to_image")
        eventually(lambda: waiting(app) == 3, "the polite run never joined")
        # An MCP call waits in the queue itself, not in a thread.
        assert threads_in("zimage/agents/mcp_server.py") <= 2
        held.open()
        assert mine.result(timeout=WAIT_S)[0]
        assert not any(call.result(WAIT_S).isError for call in calls)
    assert entered[2] == 8
    assert sorted(entered[:2] + entered[3:]) == [200, 201, 202, 203]
    agent.close()
    polite.close()


def test_refusals_come_at_join_while_every_slot_is_taken(app) -> None:
    """Over the visitor's bound, over the rate limit (counting images), bad parameters: each
    refused while the GPU is held, so none waited for a turn."""
    busy, limited, careless = visitor(app), visitor(app), visitor(app)
    address = next_address()
    agent = McpAgent(app.url, address)
    with gpu_held(app) as held:
        runs = [busy.submit(**small(300 + n), api_name="/text_to_image") for n in range(4)]
        eventually(lambda: len(held.entered) == 2 and waiting(app) == 2, "the runs never joined")
        one_too_many = busy.submit(**small(304), api_name="/text_to_image")
        assert refused(one_too_many) == (
            f"You have {PER_VISITOR} requests waiting or running, the most one visitor may have "
            "at once. Please wait for one of them to finish."
        )
        four = limited.submit(**small(310, num_images=4), api_name="/text_to_image")
        two = limited.submit(**small(311, num_images=2), api_name="/text_to_image")
        eventually(lambda: waiting(app) == 4, "the limited visitor's runs never joined")
        over = limited.submit(**small(312), api_name="/text_to_image")
        assert refused(over).startswith(f"Limit reached: {RATE} images a minute. Try again in ")
        bad = careless.submit(**small(320, resolution="1x1"), api_name="/text_to_image")
        assert "is not WIDTHxHEIGHT" in refused(bad)
        # The agent's calls meet the same bound and the same checks.
        bad_call = agent.call("text_to_image", small(330, steps=999)).result(WAIT_S)
        assert bad_call.isError and "Steps must be from" in bad_call.content[0].text
        assert waiting(app) == 4  # none of the refused took a place
    for job in [*runs, four, two]:
        assert job.result(timeout=WAIT_S)[0]
    agent.close()
    for client in (busy, limited, careless):
        client.close()


def test_a_full_queue_says_its_size_as_set_for_every_door(app) -> None:
    visitors = [visitor(app) for _ in range(3)]
    agent = McpAgent(app.url, next_address())
    with gpu_held(app):
        runs = [
            client.submit(**small(400 + 10 * i + n), api_name="/text_to_image")
            for i, client in enumerate(visitors)
            for n in range(PER_VISITOR)
        ]
        eventually(lambda: waiting(app) == QUEUE_MAX, "the queue never filled")
        late = visitor(app)
        expected = (
            f"Queue is full: {QUEUE_MAX} requests are waiting, the most this Space holds. "
            "Please try again in a minute."
        )
        assert refused(late.submit(**small(499), api_name="/text_to_image")) == expected
        call = agent.call("text_to_image", small(498)).result(WAIT_S)
        assert call.isError and call.content[0].text == expected
    for job in runs:
        assert job.result(timeout=WAIT_S)[0]
    agent.close()
    for client in [*visitors, late]:
        client.close()


def threads_in(module: str) -> int:
    """Threads of this process now running code of `module` (a path ending)."""
    return sum(
        1
        for frame in sys._current_frames().values()
        if any(entry.filename.endswith(module) for entry in traceback.extract_stack(frame))
    )


def test_agents_waiting_hold_no_threads_and_files_are_served_meanwhile() -> None:
    """50 MCP calls in flight used to wait in the thread pool that also serves files: with 57,
    a file took 12-15 s. Waiting is now a place in the queue: no thread, and files come."""
    running = serve({"ZIMAGE_QUEUE_MAX": "100", "ZIMAGE_QUEUE_PER_VISITOR": "100"})
    app = next(running)
    try:
        client = visitor(app, "127.0.0.1")
        gallery, _ = client.predict(**small(1), api_name="/text_to_image")
        agent = McpAgent(app.url, "127.0.0.1")
        with gpu_held(app):
            calls = [agent.call("text_to_image", small(500 + n)) for n in range(50)]
            eventually(lambda: waiting(app) == 48, "the calls never joined")
            assert threads_in("zimage/agents/mcp_server.py") <= 2  # the two in GPU slots
            output = app.space.service.outputs_of(f"session:{client.session_hash}")[0]
            served = httpx.get(f"{app.url}/gradio_api/file={output.files[0]}", timeout=WAIT_S)
            kept = Path(output.files[0]).read_bytes()  # served from its file, kept once
            assert served.status_code == 200 and served.content == kept
        assert not any(call.result(WAIT_S).isError for call in calls)
        assert gallery
        agent.close()
        client.close()
    finally:
        running.close()


def test_fair_order_is_round_robin_between_visitors_counting_their_running_runs() -> None:
    waiting = ["g1", "g2", "g3", "p1", "q1", "p2", "g4"]
    ordered = fair_order(waiting, lambda run: run[0], Counter({"g": 1}))
    # g has one run on the GPU already: p and q go first, then each visitor's next in turn.
    assert ordered == ["p1", "q1", "g1", "p2", "g2", "g3", "g4"]
    assert fair_order(ordered, lambda run: run[0], Counter({"g": 1})) == ordered  # stable
    assert fair_order(waiting, lambda run: run[0], Counter()) == [
        "g1",
        "p1",
        "q1",
        "g2",
        "p2",
        "g3",
        "g4",
    ]
