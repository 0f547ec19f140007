"""Throughput of the launched app when the GPU is the bottleneck: does the GPU slot spend its time
on the GPU?

    python bench/throughput.py [--gpu-seconds 0.5] [--clients 6] [--requests 6] [--rounds 1]
                               [--compare 1,2]

Each configuration starts the app (`app.build` + `app.launch`, in its own process) around an
engine whose GPU half holds the GPU slot for exactly --gpu-seconds per request and returns a
photo-like 1024x1024 image, so everything else (Gradio's queue and pre/post-processing,
validation, PNG encoding, the output cache, the usage log) is the app's real work. N
gradio_client clients then send requests back to back. Throughput is reported as a ratio to
the ideal 1 / gpu-seconds.

The configurations, alternated per round (--compare): `slots 1` (the whole handler holds the
queue's one slot, as before) and `slots N` (N handlers at once: CPU work overlaps the next
request's GPU work; the engine's lock still runs one GPU job at a time; the app uses
`app.GPU_SLOTS`).

Beside the rate, each configuration reports why it falls short of the ideal: the GPU's idle
time between jobs (from the engine's own start and end times), the server's CPU time per
request (its process CPU clock) and the clients' (this process's), and the machine's load
average. Clients and server share this machine's cores, so a loaded machine shows up as GPU
idle time while the next request's CPU work waits for a core.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from local_app import free_port, preview_app_env, serving, stop_app  # noqa: E402

START_TIMEOUT_S = 90


def serve(gpu_seconds: float, gpu_slots: int, job_log: Path) -> None:
    """The app around a fixed-GPU-time engine, until SIGTERM (runs in its own process); each
    job's start and end (monotonic clock) are appended to `job_log`."""
    import numpy as np
    from PIL import Image

    import app
    from zimage.engine.engine import Engine
    from zimage.engine.jobs import GpuJob, JobDone, StepDone
    from zimage.engine.results import Timings
    from zimage.engine.tiny_pipelines import build_preview_pipeline
    from zimage.settings import Settings

    rng = np.random.default_rng(0)
    base = Image.open(ROOT / "examples" / "house.png").convert("RGB").resize((1024, 1024))
    grain = rng.normal(0, 6, (1024, 1024, 3))
    photo_like = Image.fromarray(np.clip(np.asarray(base) + grain, 0, 255).astype(np.uint8))

    class FixedGpuTimeEngine(Engine):
        """Holds the GPU slot for `gpu_seconds` per request, reporting its steps."""

        def run_job(self, job: GpuJob, report) -> JobDone:
            steps = job.request.steps_to_run
            began = time.monotonic()
            for step in range(1, steps + 1):
                time.sleep(gpu_seconds / steps)
                report(StepDone(step, steps))
            with job_log.open("a") as log:
                log.write(f"{began} {time.monotonic()}\n")
            timings = Timings(0.0, gpu_seconds, 0.0, gpu_seconds)
            # A pixel of its own, so that each output is its own file as with real images.
            image = photo_like.copy()
            image.putpixel((0, 0), (job.job_id % 256, job.job_id // 256 % 256, 0))
            return JobDone([image] * job.request.num_images, "text-to-image", timings, steps)

    app.GPU_SLOTS = gpu_slots
    settings = Settings.from_env()
    engine = FixedGpuTimeEngine(build_preview_pipeline(), kind="preview", description="fixed")
    app.serve_until_stopped(app.build(settings, engine=engine), settings)


@dataclass
class Measured:
    rate: float  # requests per second, from the first answer to the last
    answered: int
    gpu_busy: float  # share of the time from the first job's start to the last one's end
    gap_ms: float  # median GPU idle time between two jobs
    job_ms: float  # median time a job held the GPU (the sleeps may run over under load)
    server_cpu_ms: float  # per request
    client_cpu_ms: float  # per request, all clients (this process)
    load: tuple[float, float]  # 1-minute load average before and after


def measure(args: argparse.Namespace, gpu_slots: int) -> Measured:
    """One configuration: start the app, run the clients, read the engine's job times."""
    from gradio_client import Client

    folder = Path(tempfile.mkdtemp(prefix="throughput-"))
    port = free_port()
    env = {**preview_app_env(folder, port), "ZIMAGE_QUEUE_MAX": "1000"}
    job_log = folder / "jobs.txt"
    command = [
        sys.executable,
        __file__,
        "--serve",
        "--gpu-seconds",
        str(args.gpu_seconds),
        "--gpu-slots",
        str(gpu_slots),
        "--job-log",
        str(job_log),
    ]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not serving(url):
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("the app did not start")
            time.sleep(0.25)
        clients = [
            Client(url, verbose=False, analytics_enabled=False, download_files=str(folder / "d"))
            for _ in range(args.clients)
        ]
        answered = []

        def work(client) -> None:
            for index in range(args.requests):
                client.predict(
                    prompt=f"a lighthouse {index}",
                    resolution="1024x1024",
                    seed=index,
                    randomize_seed=False,
                    steps=8,
                    api_name="/text_to_image",
                )
                answered.append(time.monotonic())

        # The server process's CPU clock (Linux: what clock_getcpuclockid(pid) returns).
        server_clock = ((~process.pid) << 3) | 2
        load_before = os.getloadavg()[0]
        server_cpu, client_cpu = time.clock_gettime(server_clock), time.process_time()
        threads = [threading.Thread(target=work, args=(client,)) for client in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        server_cpu = time.clock_gettime(server_clock) - server_cpu
        client_cpu = time.process_time() - client_cpu
        # The first answers include the start of the pipeline; count from the first one.
        first, last = min(answered), max(answered)
        rate = (len(answered) - 1) / (last - first) if last > first else float("nan")
        for client in clients:
            client.close()
        jobs = sorted(
            tuple(float(value) for value in line.split())
            for line in job_log.read_text().splitlines()
        )
        span = jobs[-1][1] - jobs[0][0]
        gaps = [max(0.0, start - end) for (_, end), (start, _) in zip(jobs, jobs[1:])]
        return Measured(
            rate=rate,
            answered=len(answered),
            gpu_busy=sum(end - start for start, end in jobs) / span,
            gap_ms=statistics.median(gaps) * 1000 if gaps else float("nan"),
            job_ms=statistics.median(end - start for start, end in jobs) * 1000,
            server_cpu_ms=server_cpu / len(answered) * 1000,
            client_cpu_ms=client_cpu / len(answered) * 1000,
            load=(load_before, os.getloadavg()[0]),
        )
    finally:
        stop_app(process)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpu-seconds", type=float, default=0.5)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--requests", type=int, default=6, help="per client")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--compare", default="1,2", help="GPU-queue slots to compare (the app uses app.GPU_SLOTS)"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--gpu-slots", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--job-log", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.gpu_seconds, args.gpu_slots, args.job_log)
        return 0
    ideal = 1 / args.gpu_seconds
    print(
        f"ideal {ideal:.2f} requests/s ({args.gpu_seconds} s of GPU each); "
        f"{args.clients} clients x {args.requests} requests; {os.cpu_count()} CPUs"
    )
    configurations = [int(slots) for slots in args.compare.split(",")]
    results: dict[int, list[Measured]] = {slots: [] for slots in configurations}
    for round_number in range(1, args.rounds + 1):
        # Alternate which configuration goes first, so a drift in the load falls on both.
        order = configurations if round_number % 2 else configurations[::-1]
        for slots in order:
            got = measure(args, slots)
            results[slots].append(got)
            print(
                f"round {round_number} slots {slots}: {got.rate:.3f} requests/s "
                f"= {got.rate / ideal:.3f} x ideal ({got.answered} answered); GPU busy "
                f"{got.gpu_busy:.3f} (jobs {got.job_ms:.0f} ms, idle between {got.gap_ms:.0f} ms); CPU per "
                f"request: server {got.server_cpu_ms:.0f} ms, clients {got.client_cpu_ms:.0f} ms; "
                f"load {got.load[0]:.1f} -> {got.load[1]:.1f}"
            )
    summary = []
    for slots, runs in results.items():
        rate = statistics.median(run.rate for run in runs)
        busy = statistics.median(run.gpu_busy for run in runs)
        print(
            f"slots {slots}: median {rate:.3f} requests/s, ratio to ideal {rate / ideal:.3f} "
            f"(GPU busy {busy:.3f}; {len(runs)} round(s))"
        )
        summary.append(f"slots {slots} {rate / ideal:.3f}")
    print(f"ratio to ideal: {', '.join(summary)} (goal >= 0.95)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
