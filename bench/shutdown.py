"""SIGTERM to exit under load: open MCP sessions, queued jobs and their event streams.

    python bench/shutdown.py [--mcp-sessions 1000] [--queued 10] [--grace-s 10]

Starts `python app.py` on the preview engine, opens the MCP sessions (one address, with the
per-address cap raised to let it), joins the jobs (512x512, 8 steps) with a reader on each
event stream, then sends SIGTERM and prints the seconds until the process exits against the
grace period (goal: within it; issue 24 saw > 25 s against 10 s).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
from local_app import free_port, preview_app_env, serving  # a sibling: bench/ is on sys.path

ROOT = Path(__file__).resolve().parent.parent
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "1"},
    },
}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
JOB = ["a lighthouse", "512x512", 1, False, 8, 3.0, 1, False]


def read_stream(url: str, session: str) -> None:
    try:
        with httpx.Client(timeout=None) as client:
            params = {"session_hash": session}
            with client.stream("GET", f"{url}/gradio_api/queue/data", params=params) as events:
                for _ in events.iter_lines():
                    pass
    except httpx.HTTPError:
        pass  # the server went away: what the benchmark waits for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mcp-sessions", type=int, default=1000)
    parser.add_argument("--queued", type=int, default=10)
    parser.add_argument("--grace-s", type=int, default=10)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-shutdown-"))
    port = free_port()
    env = {
        **preview_app_env(folder, port),
        "ZIMAGE_SHUTDOWN_GRACE_S": str(args.grace_s),
        "ZIMAGE_MCP_MAX_SESSIONS": str(max(args.mcp_sessions, 1)),
        "ZIMAGE_MCP_SESSIONS_PER_ADDRESS": str(max(args.mcp_sessions, 1)),
    }
    url = f"http://127.0.0.1:{port}"
    with open(folder / "app.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        while not serving(url):
            if process.poll() is not None:
                raise SystemExit(f"the app exited; see {folder / 'app.log'}")
            time.sleep(0.5)
        with httpx.Client(timeout=60) as client:
            opened = sum(
                client.post(
                    f"{url}/gradio_api/mcp", json=INITIALIZE, headers=MCP_HEADERS
                ).status_code
                == 200
                for _ in range(args.mcp_sessions)
            )
            index = next(
                d["id"]
                for d in client.get(f"{url}/config").json()["dependencies"]
                if d.get("api_name") == "text_to_image"
            )
            for _ in range(args.queued):
                session = uuid.uuid4().hex
                body = {"data": JOB, "fn_index": index, "session_hash": session}
                client.post(f"{url}/gradio_api/queue/join", json=body)
                threading.Thread(target=read_stream, args=(url, session), daemon=True).start()
        time.sleep(5)  # one job running, the others waiting
        signalled = time.monotonic()
        process.terminate()
        code = process.wait(timeout=300)
        took = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            process.kill()
    print(f"MCP sessions open   {opened}")
    print(f"jobs joined         {args.queued} (512x512, 8 steps), their streams read")
    print(f"SIGTERM to exit     {took:.1f} s (exit status {code})")
    print(f"grace period        {args.grace_s} s: {'within' if took <= args.grace_s else 'OVER'}")


if __name__ == "__main__":
    main()
