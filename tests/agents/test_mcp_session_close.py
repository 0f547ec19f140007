"""An MCP session's close leaves nothing in the server log but its INFO line (issue 25.7): every
close used to log an ERROR with a traceback (mcp 1.30's standalone SSE writer meeting the stream
its own `terminate()` closed). Real `python app.py`, real `mcp` client."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

from tests.launcher import launched_app, wait_until

WAIT_S = 120.0


async def one_session(url: str) -> bool:
    async with streamablehttp_client(f"{url}/gradio_api/mcp/") as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            result = await session.call_tool(
                "text_to_image", {"prompt": "a kite", "resolution": "256x256", "steps": 1}
            )
            return not result.isError


def test_closing_mcp_sessions_logs_no_error(tmp_path: Path) -> None:
    with launched_app(tmp_path) as app:
        for _ in range(3):
            assert asyncio.run(one_session(app.url))
        wait_until(
            lambda: app.output().count("Terminating session") >= 3,
            WAIT_S,
            "the sessions were never closed",
        )
    log = app.output()
    assert "Error in standalone SSE writer" not in log
    assert " ERROR " not in log and "Traceback" not in log, log[-3000:]
