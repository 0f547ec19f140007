"""What the app adds to a generation: the engine called directly against /text_to_image over HTTP.

    python bench/app_overhead.py [--runs 30] [--warm-up 3] [--size 256x256] [--steps 2]
                                 [--threads N] [--quick]

Starts `python app.py` (preview engine, private temp and data folders, app defaults otherwise)
on a free port of 127.0.0.1 and measures the cold start: from `Popen` to the first /text_to_image
answered through `gradio_client`. Then it times the same preview generation, in turn
  (a) on an engine in this process: `create_preview_engine().text_to_image(...)`;
  (b) through `gradio_client` against the app: queue, HTTP, validation, PNG encoding, output
      cache, usage log, file download, and the client's own work;
  (c) through the plain HTTP API with httpx (POST /gradio_api/call/text_to_image, read the event
      stream, GET the PNG): the same server path without gradio_client,
with the same prompt, size, steps and seed in each round (a new prompt every round, so the
app's prompt-embedding reuse never applies and all of them run the text encoder), rotating
which goes first. The overhead is the median of the per-round differences b - a (and c - a);
the ratio is median(b) / median(a). The app's own time per request (validation to usage log)
is read from its usage log (`duration_ms`). The first round's pixels are compared, so both
sides certainly did the same work. The app is stopped with SIGTERM.

`--threads N` gives both sides N torch threads (OMP_NUM_THREADS for the app): on a small shared
machine, two threads per process on two cores stall whenever anything else runs, which shows
as noise of up to seconds per request; one thread does not.

Targets (issue 8): overhead <= 50 ms median per request; cold start <= 20 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from local_app import (  # a sibling: bench/ is on sys.path
    free_port,
    percentile,
    preview_app_env,
    serving,
    stop_app,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
START_TIMEOUT_S = 120
PROMPT = "A lighthouse on a basalt cliff at dusk"
SHIFT = 3.0


def start_app(folder: Path, port: int, threads: int | None) -> subprocess.Popen:
    """`python app.py` on the preview engine, its output in folder/server.log."""
    env = preview_app_env(folder, port)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    with (folder / "server.log").open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT
        )


def service_durations_ms(folder: Path) -> list[float]:
    """The app's own time per /text_to_image (validation to usage log), oldest first."""
    database = folder / "data" / "usage.sqlite3"
    if not database.exists():
        return []
    connection = sqlite3.connect(database)
    try:
        rows = connection.execute(
            "SELECT duration_ms FROM usage WHERE endpoint = 'generate' ORDER BY id"
        ).fetchall()
    finally:
        connection.close()
    return [float(duration) for (duration,) in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="timed rounds (a, b, c)")
    parser.add_argument("--warm-up", type=int, default=3, help="untimed rounds first")
    parser.add_argument("--size", default="256x256")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, help="torch threads on both sides")
    parser.add_argument("--quick", action="store_true", help="5 rounds, 1 warm-up (smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.warm_up = 5, 1
    width, height = (int(side) for side in args.size.split("x"))
    folder = Path(tempfile.mkdtemp(prefix="zimage-overhead-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}/"

    load_before = os.getloadavg()[0]  # other work on the machine shows up as noise
    started = time.perf_counter()
    process = start_app(folder, port, args.threads)
    try:
        deadline = started + START_TIMEOUT_S
        while not serving(url):
            if process.poll() is not None or time.perf_counter() > deadline:
                log = (folder / "server.log").read_text(errors="replace")[-2000:]
                raise SystemExit(f"the app did not serve {url} within {START_TIMEOUT_S} s:\n{log}")
            time.sleep(0.05)
        served = time.perf_counter()
        from gradio_client import Client

        client = Client(
            url, verbose=False, analytics_enabled=False, download_files=str(folder / "downloads")
        )

        def through_client(prompt: str, seed: int) -> str:
            gallery, _ = client.predict(
                prompt=prompt,
                resolution=args.size,
                seed=seed,
                randomize_seed=False,
                steps=args.steps,
                shift=SHIFT,
                api_name="/text_to_image",
            )
            return gallery[0]["image"]

        first_path = through_client(PROMPT, 0)
        answered = time.perf_counter()

        import httpx
        import numpy as np
        from PIL import Image

        from zimage.images import encode_png
        from zimage.loading import create_preview_engine
        from zimage.requests import GenerateRequest

        http = httpx.Client(base_url=url, timeout=60)

        def through_http(prompt: str, seed: int) -> bytes:
            arguments = [prompt, args.size, seed, False, args.steps, SHIFT, 1, False]
            posted = http.post("/gradio_api/call/text_to_image", json={"data": arguments})
            event_id = posted.raise_for_status().json()["event_id"]
            with http.stream("GET", f"/gradio_api/call/text_to_image/{event_id}") as stream:
                body = "".join(stream.iter_text())
            last_event = body.strip().rsplit("event: ", 1)[-1]
            kind, _, data = last_event.partition("\ndata: ")
            if kind != "complete":
                raise SystemExit(f"/text_to_image over HTTP failed: {body[:500]}")
            return http.get(json.loads(data)[0][0]["image"]["url"]).raise_for_status().content

        if args.threads is not None:
            import torch

            torch.set_num_threads(args.threads)
        engine = create_preview_engine()
        made: list[Image.Image] = []

        def direct(prompt: str, seed: int) -> Image.Image:
            request = GenerateRequest(
                prompt, width, height, seed=seed, steps=args.steps, shift=SHIFT
            )
            made[:] = [engine.text_to_image(request).image]
            return made[0]

        with Image.open(first_path) as served_image:
            same_pixels = np.array_equal(np.asarray(served_image), np.asarray(direct(PROMPT, 0)))

        sides: dict[str, Callable[[str, int], object]] = {
            "a": direct,
            "b": through_client,
            "c": through_http,
        }
        times: dict[str, list[float]] = {side: [] for side in sides}
        png_s: list[float] = []
        for index in range(args.warm_up + args.runs):
            prompt, seed = f"{PROMPT}, study {index}", index + 1
            took: dict[str, float] = {}
            # Rotate which side goes first, so drift in the machine's load hits all of them.
            order = "abc"[index % 3 :] + "abc"[: index % 3]
            for side in order:
                begin = time.perf_counter()
                sides[side](prompt, seed)
                took[side] = time.perf_counter() - begin
            begin = time.perf_counter()
            encode_png(made[0])
            encoded = time.perf_counter() - begin
            if index >= args.warm_up:
                for side, seconds in took.items():
                    times[side].append(seconds)
                png_s.append(encoded)
        client.close()
        http.close()
    finally:
        exit_status = stop_app(process)
        # Skip the first request and the warm-up rounds (two app requests per round).
        service_ms = service_durations_ms(folder)[1 + 2 * args.warm_up :]
        shutil.rmtree(folder, ignore_errors=True)

    def median_ms(side: str) -> float:
        return statistics.median(times[side]) * 1000

    def overheads_ms(side: str) -> list[float]:
        return [(seconds - a) * 1000 for a, seconds in zip(times["a"], times[side])]

    overhead = statistics.median(overheads_ms("b"))
    ratio = statistics.median(times["b"]) / statistics.median(times["a"])
    cold_start = answered - started
    threads = args.threads if args.threads is not None else "default"
    print(
        f"app overhead: preview engine, {args.size}, {args.steps} steps, {args.runs} rounds, "
        f"torch threads {threads}"
    )
    print(f"cold start                 {cold_start:.1f} s (Popen -> first /text_to_image answered)")
    print(f"  until GET / answers 200  {served - started:.1f} s")
    print(f"  first request            {answered - served:.2f} s")
    print(f"(a) engine direct          median {median_ms('a'):.1f} ms")
    print(f"(b) gradio_client -> app   median {median_ms('b'):.1f} ms")
    print(f"(c) plain HTTP API -> app  median {median_ms('c'):.1f} ms")
    for side in "bc":
        spread = overheads_ms(side)
        print(
            f"overhead {side} - a             median {statistics.median(spread):.1f} ms, "
            f"p10 {percentile(spread, 0.1):.1f}, p90 {percentile(spread, 0.9):.1f} ms"
        )
    if service_ms:
        print(
            f"app's own time (usage log) median {statistics.median(service_ms):.0f} ms "
            f"(validation, engine, PNG, cache, log; n={len(service_ms)})"
        )
    print(f"PNG encoding (in here)     median {statistics.median(png_s) * 1000:.1f} ms")
    print(f"same pixels (a vs b)       {'yes' if same_pixels else 'NO'}")
    print(f"app exit status            {exit_status} after SIGTERM")
    print(f"load average (1 min)       {load_before:.2f} at start, {os.getloadavg()[0]:.2f} at end")
    print(
        f"goals: overhead <= 50 ms: {'met' if overhead <= 50 else 'NOT met'}; "
        f"cold start <= 20 s: {'met' if cold_start <= 20 else 'NOT met'}"
    )
    print(
        f"overhead median {overhead:.1f} ms per request, ratio b/a {ratio:.2f}, "
        f"cold start {cold_start:.1f} s"
    )


if __name__ == "__main__":
    main()
