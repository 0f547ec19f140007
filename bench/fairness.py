"""Fair share of the GPU: polite visitors' latency beside a greedy one, over each door.

Starts `python app.py` (preview engine, one trusted proxy so that each visitor is an address of
its own in X-Forwarded-For) and measures, in one run:

  lone     one visitor, one request at a time: one job's own time (T)
  polite   8 visitors, each one request at a time (gradio_client): their median latency alone
  script   the same 8 beside a greedy gradio_client visitor keeping 30 requests in flight
  mcp      the same 8 beside a greedy MCP agent keeping 30 calls in flight

A greedy visitor's refused joins (ZIMAGE_QUEUE_PER_VISITOR) are tried again after 2 s, so it
always has about as many requests queued as the Space lets it. Goal (issue 25): a polite
visitor beside a greedy one waits at most 2x its own time plus the job ahead of it, i.e. its
median beside the greedy one <= 2 x (its median alone + T). Printed: the medians and the ratio
to that goal (<= 1.00 meets it), and the greedy visitor's successes.

    python bench/fairness.py [--rounds 6] [--greedy 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from gradio_client import Client
from local_app import (  # a sibling: bench/ is on sys.path
    free_port,
    preview_app_env,
    serving,
    stop_app,
)

ROOT = Path(__file__).resolve().parent.parent

POLITE = 8
# A new seed each time: identical requests make identical PNGs, which share one served file.
REQUEST = {"prompt": "a kite", "resolution": "256x256", "randomize_seed": True, "steps": 2}
# A greedy visitor refused at join (past ZIMAGE_QUEUE_PER_VISITOR) tries again after this.
REFUSED_PAUSE_S = 2.0
START_TIMEOUT_S = 300


def client_of(url: str, address: str, downloads: str) -> Client:
    return Client(
        url,
        verbose=False,
        analytics_enabled=False,
        download_files=downloads,
        headers={"X-Forwarded-For": address},
    )


def polite_visitors(url: str, downloads: str) -> list[Client]:
    """The polite visitors, connected before anything is measured (a Client reads the app's
    config when it is made, which a busy machine may take long to answer)."""
    return [client_of(url, f"203.0.113.{number + 1}", downloads) for number in range(POLITE)]


def polite_latencies(clients: list[Client], rounds: int) -> list[float]:
    """Each client making `rounds` requests one after the other, all at once."""
    latencies: list[float] = []
    lock = threading.Lock()

    def visit(client: Client) -> None:
        for _ in range(rounds):
            started = time.monotonic()
            client.predict(**REQUEST, api_name="/text_to_image")
            with lock:
                latencies.append(time.monotonic() - started)

    threads = [threading.Thread(target=visit, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def greedy_script(url: str, in_flight: int, stop: threading.Event, downloads: str) -> list[int]:
    """A gradio_client visitor keeping `in_flight` requests submitted until `stop`."""
    done = [0, 0]  # answered, refused
    client = client_of(url, "198.51.100.66", downloads)

    def keep_one() -> None:
        while not stop.is_set():
            job = client.submit(**REQUEST, api_name="/text_to_image")
            try:
                job.result(timeout=600)
                done[0] += 1
            except Exception:  # noqa: BLE001 - refused at join: try again soon
                done[1] += 1
                time.sleep(REFUSED_PAUSE_S)

    threads = [threading.Thread(target=keep_one, daemon=True) for _ in range(in_flight)]
    for thread in threads:
        thread.start()
    stop.wait()
    for thread in threads:
        thread.join(600)
    client.close()
    return done


def greedy_agent(url: str, in_flight: int, stop: threading.Event, _downloads: str) -> list[int]:
    """An MCP agent keeping `in_flight` calls in flight in one session until `stop`."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    done = [0, 0]

    async def keep_one(session: ClientSession) -> None:
        while not stop.is_set():
            result = await session.call_tool("text_to_image", REQUEST)
            if result.isError:
                done[1] += 1
                await asyncio.sleep(REFUSED_PAUSE_S)
            else:
                done[0] += 1

    async def agent() -> None:
        headers = {"X-Forwarded-For": "198.51.100.77"}
        async with streamablehttp_client(f"{url}/gradio_api/mcp/", headers=headers) as (
            read,
            write,
            _,
        ):
            async with ClientSession(read, write) as session:
                await session.initialize()
                await asyncio.gather(*(keep_one(session) for _ in range(in_flight)))

    asyncio.run(agent())
    return done


def beside(
    greedy: Callable[[str, int, threading.Event, str], list[int]],
    url: str,
    polite: list[Client],
    rounds: int,
    in_flight: int,
    downloads: str,
) -> tuple[list[float], list[int]]:
    stop = threading.Event()
    outcome: list[list[int]] = []
    thread = threading.Thread(
        target=lambda: outcome.append(greedy(url, in_flight, stop, downloads)), daemon=True
    )
    thread.start()
    time.sleep(3.0)  # the greedy visitor fills its share of the queue first
    latencies = polite_latencies(polite, rounds)
    stop.set()
    thread.join(900)
    return latencies, outcome[0] if outcome else [0, 0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6, help="requests per polite visitor")
    parser.add_argument("--greedy", type=int, default=30, help="the greedy visitor's in flight")
    arguments = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fairness-"))
    downloads = str(folder / "downloads")
    port = free_port()
    env = {**preview_app_env(folder, port), "ZIMAGE_TRUSTED_PROXY_HOPS": "1"}
    log = open(folder / "app.log", "wb")  # noqa: SIM115 - the app's output
    process = subprocess.Popen(
        [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not serving(url):
            if process.poll() is not None or time.monotonic() > deadline:
                print((folder / "app.log").read_text()[-3000:])
                return 1
            time.sleep(0.5)
        polite = polite_visitors(url, downloads)
        polite_latencies(polite[:1], 2)  # warm up
        lone = statistics.median(polite_latencies(polite[:1], 10))
        alone = statistics.median(polite_latencies(polite, arguments.rounds))
        goal = 2 * (alone + lone)
        print(f"load average at start: {os.getloadavg()[0]:.1f}")
        print(f"one job alone (T):              median {lone:6.2f} s")
        print(f"{POLITE} polite visitors alone:       median {alone:6.2f} s")
        for door, greedy in (("script", greedy_script), ("mcp", greedy_agent)):
            latencies, (answered, refused) = beside(
                greedy, url, polite, arguments.rounds, arguments.greedy, downloads
            )
            median = statistics.median(latencies)
            print(
                f"beside a greedy {door:6} visitor: median {median:6.2f} s "
                f"(x{median / alone:.2f} alone; {median / goal:.2f} of the goal "
                f"2 x (alone + T) = {goal:.2f} s); greedy: {answered} answered, "
                f"{refused} refused at join"
            )
        print(f"load average at end: {os.getloadavg()[0]:.1f}")
        for client in polite:
            client.close()
    finally:
        stop_app(process)
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
