"""Throughput of the launched app when the GPU is the bottleneck: does the GPU slot spend its time
on the GPU?

    python bench/throughput.py [--gpu-seconds 0.5] [--clients 6] [--requests 6] [--rounds 1]

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
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from local_app import free_port, preview_app_env, serving, stop_app  # noqa: E402

START_TIMEOUT_S = 90


def serve(gpu_seconds: float, gpu_slots: int) -> None:
    """The app around a fixed-GPU-time engine, until SIGTERM (runs in its own process)."""
    import numpy as np
    from PIL import Image

    import app
    from zimage.engine import Engine
    from zimage.jobs import GpuJob, JobDone, StepDone
    from zimage.preview import build_preview_pipeline
    from zimage.requests import Timings
    from zimage.settings import Settings

    rng = np.random.default_rng(0)
    base = Image.open(ROOT / "examples" / "house.png").convert("RGB").resize((1024, 1024))
    grain = rng.normal(0, 6, (1024, 1024, 3))
    photo_like = Image.fromarray(np.clip(np.asarray(base) + grain, 0, 255).astype(np.uint8))

    class FixedGpuTimeEngine(Engine):
        """Holds the GPU slot for `gpu_seconds` per request, reporting its steps."""

        def run_job(self, job: GpuJob, report) -> JobDone:
            steps = job.request.steps_to_run
            for step in range(1, steps + 1):
                time.sleep(gpu_seconds / steps)
                report(StepDone(step, steps))
            timings = Timings(0.0, gpu_seconds, 0.0, gpu_seconds)
            # A pixel of its own, so that each output is its own file as with real images.
            image = photo_like.copy()
            image.putpixel((0, 0), (job.job_id % 256, job.job_id // 256 % 256, 0))
            return JobDone([image] * job.request.num_images, "text-to-image", timings, steps)

    app.GPU_SLOTS = gpu_slots
    settings = Settings.from_env()
    engine = FixedGpuTimeEngine(build_preview_pipeline(), kind="preview", description="fixed")
    app.serve_until_stopped(app.build(settings, engine=engine), settings)


def measure(args: argparse.Namespace, gpu_slots: int) -> tuple[float, int]:
    """(requests per second, requests answered) for one configuration."""
    from gradio_client import Client

    folder = Path(tempfile.mkdtemp(prefix="throughput-"))
    port = free_port()
    env = {**preview_app_env(folder, port), "ZIMAGE_QUEUE_MAX": "1000"}
    command = [
        sys.executable,
        __file__,
        "--serve",
        "--gpu-seconds",
        str(args.gpu_seconds),
        "--gpu-slots",
        str(gpu_slots),
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

        threads = [threading.Thread(target=work, args=(client,)) for client in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # The first answers include the start of the pipeline; count from the first one.
        first, last = min(answered), max(answered)
        rate = (len(answered) - 1) / (last - first) if last > first else float("nan")
        for client in clients:
            client.close()
        return rate, len(answered)
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
    args = parser.parse_args()
    if args.serve:
        serve(args.gpu_seconds, args.gpu_slots)
        return 0
    ideal = 1 / args.gpu_seconds
    print(
        f"ideal {ideal:.2f} requests/s ({args.gpu_seconds} s of GPU each); "
        f"{args.clients} clients x {args.requests} requests; {os.cpu_count()} CPUs"
    )
    configurations = [int(slots) for slots in args.compare.split(",")]
    results: dict[int, list[float]] = {slots: [] for slots in configurations}
    for round_number in range(1, args.rounds + 1):
        for slots in configurations:
            rate, answered = measure(args, slots)
            results[slots].append(rate)
            print(
                f"round {round_number} slots {slots}: {rate:.3f} requests/s "
                f"= {rate / ideal:.3f} x ideal ({answered} answered)"
            )
    for slots, rates in results.items():
        best = sorted(rates)[len(rates) // 2]
        print(f"slots {slots}: median {best:.3f} requests/s, ratio to ideal {best / ideal:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
