"""What the app adds to a generation, side by side with a bare Gradio app and the engine alone.

    python bench/app_overhead.py [--runs 30] [--warm-up 3] [--size 256x256] [--steps 2]
                                 [--threads 1] [--cold-starts 1] [--null-engine] [--quick]

Starts three real processes on free ports of 127.0.0.1, one after the other, so that each cold
start (from `Popen` to the first /text_to_image answered through gradio_client) is timed alone:
  app    `python app.py`: preview engine, private temp and data folders, defaults otherwise;
  bare   `python bench/bare_app.py`: a `gr.Blocks` with the same /text_to_image inputs, outputs,
         queue and concurrency limit, whose handler calls the same preview engine and encodes
         the PNG the same way, with nothing else (no validation, privacy, usage log, cache,
         middleware, progress). Like the app's, its handler is a generator (an endpoint that
         can stream preview frames must be one), yielding the result once;
  plain  the same with a plain function (`--plain`): what the endpoint would cost without
         streaming. Gradio answers a generator in two messages, each carrying the result, and
         gradio_client downloads the image for each.
`--cold-starts N` starts each N times in all (app, bare, plain, then backwards, ...; the extra
ones are stopped once they answer) and reports the medians. `--quick` starts app and bare only,
both at once (a smoke test: its cold start ratio is rough).

Then each round times the same generation (same prompt, size, steps and seed; a new prompt
every round, so the app's prompt-embedding reuse never applies) seven ways:
  engine              `create_preview_engine().text_to_image(...)` in this process;
  app / bare / plain  http: the plain HTTP API with httpx (POST /gradio_api/call/text_to_image,
                      read the event stream, GET the PNG);
  app / bare / plain  client: `gradio_client` `predict`, which downloads the PNG.
The order is reversed every other round (engine, app http, bare http, plain http, plain client,
bare client, app client; then backwards), so a drift in the machine's load falls on all alike.
The app's overhead is the median of the per-round differences app - bare, per transport, in
wall-clock time and in the server process's CPU time for the request (its process CPU clock
read before and after: a measure that the machine's other work disturbs far less than
wall-clock time); app - plain and bare - plain (the generator's own cost) likewise. Issue 8's
figure (app through gradio_client - engine) is printed too. The app's own time per request
(validation to usage log) is read from its usage log. The first request's pixels of every
server and of the engine are compared, so all did the same work. The servers are stopped with
SIGTERM.

`--null-engine` runs all three (and the in-process engine) around an engine whose GPU half
does nothing: it reports its steps and returns a fixed noise picture of the asked size. What
is left is what the servers do around the engine, without the run-to-run spread of ~100 ms of
torch work per request in each process (two processes of the same server differ by a few ms
of CPU per request there, which no number of rounds averages out). The servers then run as
`python bench/app_overhead.py --serve NAME`, so their cold starts say nothing of app.py.

`--threads N` (default 1) gives every side N torch threads (OMP_NUM_THREADS for the servers): on
a small shared machine two threads per process on two cores stall whenever anything else runs,
which shows as noise of up to seconds per request; one thread does not.

Targets: app - bare <= 10 ms median (issue 14); app - engine <= 50 ms median and cold start
<= 20 s (issue 8).
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local_app import (  # a sibling: bench/ is on sys.path
    free_port,
    percentile,
    preview_app_env,
    serving,
    stop_app,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
START_TIMEOUT_S = 300
PROMPT = "A lighthouse on a basalt cliff at dusk"
SHIFT = 3.0
APPS = {
    "app": ["app.py"],
    "bare": ["bench/bare_app.py"],
    "plain": ["bench/bare_app.py", "--plain"],
}
QUICK_APPS = ("app", "bare")
# One round, in order; every other round runs it backwards.
ROUND = (
    "engine",
    "app http",
    "bare http",
    "plain http",
    "plain client",
    "bare client",
    "app client",
)
TRANSPORTS = ("http", "client")


@dataclass
class Server:
    """One app as a real process, and the two ways of calling it."""

    name: str
    folder: Path
    process: subprocess.Popen
    url: str
    started: float
    served: float = 0.0
    answered: float = 0.0
    closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def cold_start_s(self) -> float:
        return self.answered - self.started

    def cpu_s(self) -> float:
        """CPU time the server process has used so far, all its threads (ended ones too)."""
        # Linux's CPU clock of another process: what clock_getcpuclockid(pid) returns.
        return time.clock_gettime(((~self.process.pid) << 3) | 2)

    def stop(self) -> int:
        for close in self.closers:
            close()
        return stop_app(self.process)


def start(name: str, folder: Path, threads: int, null_engine: bool = False) -> Server:
    """Start `name` (one of APPS) on a free port, its output in folder/server.log."""
    folder.mkdir(parents=True)
    port = free_port()
    env = {**preview_app_env(folder, port), "OMP_NUM_THREADS": str(threads)}
    command = ["bench/app_overhead.py", "--serve", name] if null_engine else APPS[name]
    started = time.perf_counter()
    with (folder / "server.log").open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, *command], cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    return Server(name, folder, process, f"http://127.0.0.1:{port}/", started)


def null_engine() -> Any:
    """The preview engine's serving half around a GPU half that does nothing."""
    import numpy as np
    from PIL import Image

    from zimage.engine.engine import Engine
    from zimage.engine.jobs import GpuJob, JobDone, StepDone
    from zimage.engine.results import Timings
    from zimage.engine.tiny_pipelines import build_preview_pipeline

    pictures: dict[tuple[int, int], Image.Image] = {}

    class NullEngine(Engine):
        def run_job(self, job: GpuJob, report: Callable[[StepDone], None]) -> JobDone:
            request = job.request
            steps = request.steps_to_run
            for step in range(1, steps + 1):
                report(StepDone(step, steps))
            size = (request.width, request.height)
            if size not in pictures:
                noise = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3))
                pictures[size] = Image.fromarray(noise.astype(np.uint8))
            images = [pictures[size]] * request.num_images
            return JobDone(images, "text-to-image", Timings(0.0, 0.0, 0.0, 0.0), steps)

    return NullEngine(build_preview_pipeline(), kind="preview", description="null engine")


def serve(name: str) -> None:
    """Serve `name` around the null engine until SIGTERM (a process of its own)."""
    if name == "app":
        import app
        from zimage.settings import Settings

        settings = Settings.from_env()
        app.serve_until_stopped(app.build(settings, engine=null_engine()), settings)
    else:
        import bare_app  # a sibling: bench/ is on sys.path

        bare_app.serve(null_engine(), plain=name == "plain")


def wait_until_serving(server: Server) -> None:
    deadline = server.started + START_TIMEOUT_S
    while not serving(server.url):
        if server.process.poll() is not None or time.perf_counter() > deadline:
            log = (server.folder / "server.log").read_text(errors="replace")[-2000:]
            server.stop()
            raise SystemExit(
                f"{server.name} did not serve {server.url} within {START_TIMEOUT_S} s:\n{log}"
            )
        time.sleep(0.05)
    server.served = time.perf_counter()


def callers(server: Server, size: str, steps: int) -> dict[str, Callable[[str, int], str]]:
    """The server's "client" and "http" calls: (prompt, seed) -> the PNG file it served."""
    import httpx
    from gradio_client import Client

    downloads = server.folder / "downloads"
    downloads.mkdir(exist_ok=True)
    client = Client(server.url, verbose=False, analytics_enabled=False, download_files=downloads)
    http = httpx.Client(base_url=server.url, timeout=120)
    server.closers += [client.close, http.close]

    def through_client(prompt: str, seed: int) -> str:
        gallery, _ = client.predict(
            prompt=prompt,
            resolution=size,
            seed=seed,
            randomize_seed=False,
            steps=steps,
            shift=SHIFT,
            api_name="/text_to_image",
        )
        return gallery[0]["image"]

    def through_http(prompt: str, seed: int) -> str:
        from zimage.tools.text_to_image import TextToImage

        arguments = TextToImage.endpoint_values(
            prompt=prompt, resolution=size, seed=seed, steps=steps, shift=SHIFT
        )
        posted = http.post("/gradio_api/call/text_to_image", json={"data": arguments})
        event_id = posted.raise_for_status().json()["event_id"]
        with http.stream("GET", f"/gradio_api/call/text_to_image/{event_id}") as stream:
            body = "".join(stream.iter_text())
        event, _, data = body.strip().rpartition("event: ")[2].partition("\ndata: ")
        if event != "complete":
            raise SystemExit(f"{server.name} /text_to_image over HTTP failed: {body[:500]}")
        png = http.get(json.loads(data)[0][0]["image"]["url"]).raise_for_status().content
        path = downloads / f"http-{seed}.png"
        path.write_bytes(png)
        return str(path)

    return {"client": through_client, "http": through_http}


def cold_start(
    name: str, folder: Path, threads: int, size: str, steps: int, null_engine: bool
) -> Server:
    """Start `name` alone and wait for its first /text_to_image answered through gradio_client;
    the server keeps running, its callers attached."""
    server = start(name, folder, threads, null_engine)
    wait_until_serving(server)
    calls = callers(server, size, steps)
    calls["client"](PROMPT, 0)
    server.answered = time.perf_counter()
    return server


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


def spread(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):.1f} ms, "
        f"p10 {percentile(values, 0.1):.1f}, p90 {percentile(values, 0.9):.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="timed rounds")
    parser.add_argument("--warm-up", type=int, default=3, help="untimed rounds first")
    parser.add_argument("--size", default="256x256")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads on every side")
    parser.add_argument("--cold-starts", type=int, default=1, help="starts of each server")
    parser.add_argument(
        "--null-engine", action="store_true", help="an engine whose GPU half does nothing"
    )
    parser.add_argument(
        "--quick", action="store_true", help="app and bare started at once, 3 rounds (a test)"
    )
    parser.add_argument("--serve", choices=APPS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    names: tuple[str, ...] = tuple(APPS)
    if args.quick:
        args.runs, args.warm_up, args.cold_starts = 3, 1, 1
        names = QUICK_APPS
    sides = [side for side in ROUND if side.split()[0] in ("engine", *names)]
    width, height = (int(side) for side in args.size.split("x"))
    folder = Path(tempfile.mkdtemp(prefix="zimage-overhead-"))

    load_before = os.getloadavg()[0]  # other work on the machine shows up as noise
    servers: dict[str, Server] = {}
    cold: dict[str, list[float]] = {name: [] for name in names}
    calls: dict[str, Callable[[str, int], Any]] = {}
    first_paths: dict[str, str] = {}
    exit_status: dict[str, int] = {}
    service_ms: list[float] = []
    try:
        if args.quick:  # all at once: the smoke test stays short, the ratio is rough
            started = {
                name: start(name, folder / name, args.threads, args.null_engine) for name in names
            }
            for name, server in started.items():
                wait_until_serving(server)
                servers[name] = server
        else:
            # app, bare, plain, plain, bare, app, ...: the last start of each keeps serving.
            order = [
                name for index in range(args.cold_starts) for name in names[:: 1 - 2 * (index % 2)]
            ]
            for position, name in enumerate(order):
                server = cold_start(
                    name,
                    folder / f"{name}-{position}",
                    args.threads,
                    args.size,
                    args.steps,
                    args.null_engine,
                )
                cold[name].append(server.cold_start_s)
                if name in order[position + 1 :]:
                    server.stop()
                else:
                    servers[name] = server
        for name, server in servers.items():
            for transport, call in callers(server, args.size, args.steps).items():
                calls[f"{name} {transport}"] = call
            first_paths[name] = calls[f"{name} client"](PROMPT, 0)
            if args.quick:
                server.answered = time.perf_counter()
                cold[name].append(server.cold_start_s)

        import numpy as np
        import torch
        from PIL import Image

        from zimage.engine.loading import create_preview_engine
        from zimage.service.images import encode_png
        from zimage.tools.text_to_image import TextToImage

        torch.set_num_threads(args.threads)
        engine = null_engine() if args.null_engine else create_preview_engine()
        made: list[Image.Image] = []

        def direct(prompt: str, seed: int) -> Image.Image:
            request = TextToImage(
                prompt=prompt,
                resolution=f"{width}x{height}",
                seed=seed,
                steps=args.steps,
                shift=SHIFT,
            )
            made[:] = [engine.text_to_image(request).image]
            return made[0]

        calls["engine"] = direct
        expected = np.asarray(direct(PROMPT, 0))
        same_pixels = True
        for path in first_paths.values():
            with Image.open(path) as served_image:
                same_pixels &= np.array_equal(np.asarray(served_image), expected)

        times: dict[str, list[float]] = {side: [] for side in sides}
        server_cpu: dict[str, list[float]] = {side: [] for side in sides if side != "engine"}
        png_s: list[float] = []
        for index in range(args.warm_up + args.runs):
            prompt, seed = f"{PROMPT}, study {index}", index + 1
            took: dict[str, float] = {}
            used: dict[str, float] = {}
            for side in sides if index % 2 == 0 else reversed(sides):
                server = servers.get(side.split()[0])
                cpu_before = server.cpu_s() if server else 0.0
                begin = time.perf_counter()
                calls[side](prompt, seed)
                took[side] = time.perf_counter() - begin
                if server:
                    used[side] = server.cpu_s() - cpu_before
            begin = time.perf_counter()
            encode_png(made[0])
            encoded = time.perf_counter() - begin
            if index >= args.warm_up:
                for side, seconds in took.items():
                    times[side].append(seconds)
                for side, seconds in used.items():
                    server_cpu[side].append(seconds)
                png_s.append(encoded)
    finally:
        for name, server in servers.items():
            exit_status[name] = server.stop()
        if "app" in servers:
            # Skip the requests before the rounds and the warm-up rounds (two app requests each).
            before = 1 if args.quick else 2  # (the cold start's,) the pixel check's
            service_ms = service_durations_ms(servers["app"].folder)[before + 2 * args.warm_up :]
        shutil.rmtree(folder, ignore_errors=True)

    def median_ms(side: str, measured: dict[str, list[float]] = times) -> float:
        return statistics.median(measured[side]) * 1000

    def differences_ms(
        side: str, base: str, measured: dict[str, list[float]] = times
    ) -> list[float]:
        return [(seconds - other) * 1000 for seconds, other in zip(measured[side], measured[base])]

    engine_name = "null engine (GPU half does nothing)" if args.null_engine else "preview engine"
    print(
        f"app overhead: {engine_name}, {args.size}, {args.steps} steps, {args.runs} rounds "
        f"(+{args.warm_up} warm-up), torch threads {args.threads}, {os.cpu_count()} CPUs"
    )
    how = "started together" if args.quick else f"each alone, {args.cold_starts} start(s) each"
    cold_median = {name: statistics.median(values) for name, values in cold.items()}
    for name, server in servers.items():
        print(
            f"cold start {name:<5}           median {cold_median[name]:.1f} s "
            f"({', '.join(f'{s:.1f}' for s in cold[name])}; last: GET / after "
            f"{server.served - server.started:.1f} s, first request "
            f"{server.answered - server.served:.2f} s; {how})"
        )
    cold_ratio = cold_median["app"] / cold_median["bare"]
    print(f"cold start ratio app/bare  {cold_ratio:.2f}")
    for side in sides:
        cpu = f", server CPU {median_ms(side, server_cpu):.1f} ms" if side in server_cpu else ""
        print(f"{side:<26} median {median_ms(side):.1f} ms{cpu}")
    overhead: dict[tuple[str, str, str], float] = {}
    overhead_cpu: dict[tuple[str, str, str], float] = {}
    pairs = [("app", "bare"), ("app", "plain"), ("bare", "plain")] if "plain" in names else []
    for ours, theirs in pairs or [("app", "bare")]:
        for transport in TRANSPORTS:
            side, base = f"{ours} {transport}", f"{theirs} {transport}"
            wall = differences_ms(side, base)
            cpu = differences_ms(side, base, server_cpu)
            overhead[ours, theirs, transport] = statistics.median(wall)
            overhead_cpu[ours, theirs, transport] = statistics.median(cpu)
            print(f"{ours} - {theirs}, {transport:<6}".ljust(27) + spread(wall))
            print(f"  in server CPU time       {spread(cpu)}")
    engine_overhead = statistics.median(differences_ms("app client", "engine"))
    print(f"app client - engine        {spread(differences_ms('app client', 'engine'))}")
    print(f"bare client - engine       {spread(differences_ms('bare client', 'engine'))}")
    if service_ms:
        print(
            f"app's own time (usage log) median {statistics.median(service_ms):.0f} ms "
            f"(validation, engine, PNG, cache, log; n={len(service_ms)})"
        )
    print(f"PNG encoding (in here)     median {statistics.median(png_s) * 1000:.1f} ms")
    print(f"same pixels (engine, {', '.join(servers)}) {'yes' if same_pixels else 'NO'}")
    for name, status in exit_status.items():
        print(f"{name} exit status {status} after SIGTERM")
    print(f"load average (1 min)       {load_before:.2f} at start, {os.getloadavg()[0]:.2f} at end")
    over_bare = {transport: overhead["app", "bare", transport] for transport in TRANSPORTS}
    cpu_bare = {transport: overhead_cpu["app", "bare", transport] for transport in TRANSPORTS}
    print(
        f"goals: app - bare <= 10 ms: {'met' if max(over_bare.values()) <= 10 else 'NOT met'}; "
        f"app - engine <= 50 ms: {'met' if engine_overhead <= 50 else 'NOT met'}; "
        f"cold start <= 20 s: {'met' if cold_median['app'] <= 20 else 'NOT met'}"
    )
    over_plain = ""
    if pairs:
        over_plain = (
            f"; over a plain-function bare app {overhead['app', 'plain', 'http']:.1f}, "
            f"{overhead['app', 'plain', 'client']:.1f} ms"
        )
    print(
        f"overhead over bare Gradio median {over_bare['http']:.1f} ms (plain HTTP), "
        f"{over_bare['client']:.1f} ms (gradio_client); server CPU {cpu_bare['http']:.1f}, "
        f"{cpu_bare['client']:.1f} ms{over_plain}; cold start ratio app/bare {cold_ratio:.2f}"
    )


if __name__ == "__main__":
    main()
