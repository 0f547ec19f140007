"""One admission for every door, through `python app.py` (issues 25.1 and 25.7): a script's
request (real gradio_client) and an agent's call (real `mcp` client) are refused at join with
the same words for the same reasons: more images than the rate limit's whole minute (the limit
counts images, and says so), and a bad parameter. Neither answer depends on timing: these
requests can never run.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

from tests.gpu_gate import refused, small
from tests.launcher import launched_app

RATE = 2


async def agent_refusals(url: str, calls: list[dict[str, Any]]) -> list[str]:
    """Each call's error text (an answered call fails the test)."""
    async with streamablehttp_client(f"{url}/gradio_api/mcp/") as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            texts = []
            for arguments in calls:
                result = await session.call_tool("text_to_image", arguments)
                assert result.isError, result
                texts.append(result.content[0].text)
            return texts


def test_a_script_and_an_agent_are_refused_at_join_with_the_same_words(tmp_path: Path) -> None:
    too_many = small(1, num_images=RATE + 1)
    bad_steps = small(2, steps=999)
    with launched_app(tmp_path, {"ZIMAGE_RATE_PER_MIN": str(RATE)}) as app:
        client = app.client()
        script = [
            refused(client.submit(**asked, api_name="/text_to_image"))
            for asked in (too_many, bad_steps)
        ]
        agent = asyncio.run(agent_refusals(app.url, [too_many, bad_steps]))
        client.close()
    assert script == agent
    assert script[0] == (
        f"This Space makes at most {RATE} images a minute per visitor: "
        f"please ask for {RATE} or fewer."
    )
    assert script[1].startswith("Steps must be from")
