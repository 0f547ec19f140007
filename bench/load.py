"""Load test of the script API: N concurrent gradio_client clients against the preview engine.

    python bench/load.py [--clients 32] [--requests 4] [--bad-share 0.25] [--url URL]
                         [--size 256x256] [--steps 2] [--timeout 300]

Without --url it starts `python app.py` (preview engine, private temp and data folders) on a
free port of 127.0.0.1 and stops it with SIGTERM at the end. Each client sends its requests one
after another: a seeded mix of /generate, /edit and /edit with a mask, a share of them with bad
inputs. Every request ends as "succeeded", "rejected-with-message" (AppError or QueueError with
a message) or "failed-without-answer" (anything else, or no answer within --timeout); the exit
status is 1 when any request failed without an answer.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from gradio_client.utils import QueueError
from local_app import (  # a sibling: bench/ is on sys.path
    free_port,
    percentile,
    preview_app_env,
    serving,
    stop_app,
)
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "house.png"
MB = 1024 * 1024
START_TIMEOUT_S = 60
QUEUE_MAX_LIMIT = 10000  # the largest ZIMAGE_QUEUE_MAX the settings accept
LOOPBACK = {"127.0.0.1", "localhost", "::1"}

SUCCEEDED = "succeeded"
REJECTED = "rejected-with-message"
FAILED = "failed-without-answer"

PROMPTS = [
    "A lighthouse on a basalt cliff at dusk",
    "A bowl of lemons on a blue tablecloth",
    "A red bicycle leaning on a brick wall",
    "Morning fog over a pine forest",
]
INSTRUCTIONS = ["Make it a snowy evening", "Paint the door green", "Add warm sunset light"]


@dataclass(frozen=True)
class Files:
    """Input files for /edit, written once per run."""

    image: Path
    mask: Path
    empty_mask: Path
    corrupt: Path
    text: Path
    tiny: Path


@dataclass(frozen=True)
class Request:
    """One planned call: endpoint, label and keyword arguments (file paths still plain)."""

    endpoint: str
    label: str
    bad: bool
    arguments: dict[str, Any]


@dataclass
class Outcome:
    """What one request came to."""

    request: Request
    status: str
    latency_s: float
    message: str = ""


@dataclass
class Results:
    """Outcomes from every client, appended under a lock."""

    outcomes: list[Outcome] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)


def write_files(folder: Path) -> Files:
    """The sample, a mask drawn here, and the damaged inputs of the bad-input table."""
    with Image.open(SAMPLE) as sample:
        size = sample.size
    mask = Image.new("L", size, 0)
    width, height = size
    ImageDraw.Draw(mask).rectangle(
        (width // 3, height // 4, 2 * width // 3, 3 * height // 4), fill=255
    )
    files = Files(
        image=SAMPLE,
        mask=folder / "mask.png",
        empty_mask=folder / "empty-mask.png",
        corrupt=folder / "corrupt.png",
        text=folder / "notes.txt",
        tiny=folder / "tiny.png",
    )
    mask.save(files.mask)
    Image.new("L", size, 0).save(files.empty_mask)
    files.corrupt.write_bytes(SAMPLE.read_bytes()[:200])
    files.text.write_text("These are notes, not an image.\n")
    Image.new("RGB", (32, 32), "white").save(files.tiny)
    return files


def bad_cases(files: Files) -> list[tuple[str, str, dict[str, Any]]]:
    """(endpoint, label, overrides of a good request) for each kind of bad input."""
    return [
        ("/text_to_image", "empty prompt", {"prompt": ""}),
        ("/text_to_image", "resolution 500x512", {"resolution": "500x512"}),
        ("/text_to_image", "resolution 'large'", {"resolution": "large"}),
        ("/text_to_image", "steps 0", {"steps": 0}),
        ("/text_to_image", "negative seed", {"seed": -1, "randomize_seed": False}),
        ("/text_to_image", "shift 11", {"shift": 11.0}),
        ("/edit", "strength 7", {"strength": 7.0}),
        ("/edit", "corrupt PNG", {"image": files.corrupt}),
        ("/edit", "text file as image", {"image": files.text}),
        ("/edit", "32x32 image", {"image": files.tiny}),
        ("/edit", "empty instruction", {"instruction": "  "}),
        ("/edit", "empty mask", {"mask": files.empty_mask}),
        ("/edit", "steps 100", {"steps": 100}),
    ]


def plan(args: argparse.Namespace, files: Files) -> list[list[Request]]:
    """Every client's requests, drawn from random.Random(0) so runs repeat exactly."""
    rng = random.Random(0)
    cases = bad_cases(files)
    plans: list[list[Request]] = []
    for _ in range(args.clients):
        requests: list[Request] = []
        for _ in range(args.requests):
            generate = {
                "prompt": rng.choice(PROMPTS),
                "resolution": args.size,
                "seed": rng.randrange(2**31),
                "randomize_seed": False,
                "steps": args.steps,
                "shift": 3.0,
            }
            edit = {
                "image": files.image,
                "instruction": rng.choice(INSTRUCTIONS),
                "mask": None,
                "strength": 0.6,
                "seed": rng.randrange(2**31),
                "randomize_seed": False,
                "steps": args.steps,
            }
            if rng.random() < args.bad_share:
                endpoint, label, overrides = rng.choice(cases)
                base = generate if endpoint == "/text_to_image" else edit
                requests.append(Request(endpoint, label, True, {**base, **overrides}))
                continue
            kind = rng.choice(["generate", "generate", "edit", "edit with mask"])
            if kind == "generate":
                requests.append(Request("/text_to_image", kind, False, generate))
            else:
                mask = files.mask if kind == "edit with mask" else None
                requests.append(Request("/edit", kind, False, {**edit, "mask": mask}))
        plans.append(requests)
    return plans


def call(client: Client, request: Request, timeout_s: float) -> Outcome:
    """Send one request and classify how it ended."""
    arguments = {
        name: handle_file(str(value)) if isinstance(value, Path) else value
        for name, value in request.arguments.items()
    }
    job = None
    started = time.perf_counter()
    try:
        job = client.submit(**arguments, api_name=request.endpoint)
        job.result(timeout=timeout_s)
    except (AppError, QueueError) as error:
        message = str(getattr(error, "message", "") or error).strip()
        status = REJECTED if message else FAILED
        return Outcome(request, status, time.perf_counter() - started, message)
    except TimeoutError:
        if job is not None:
            job.cancel()
        message = f"no answer within {timeout_s:g} s"
        return Outcome(request, FAILED, time.perf_counter() - started, message)
    except Exception as error:  # anything else is a failure without an answer
        message = f"{type(error).__name__}: {error}"
        return Outcome(request, FAILED, time.perf_counter() - started, message)
    return Outcome(request, SUCCEEDED, time.perf_counter() - started)


def run_client(
    url: str,
    requests: list[Request],
    downloads: Path,
    start: threading.Barrier,
    results: Results,
    timeout_s: float,
) -> None:
    """One client: connect, wait for the others, then send its requests one after another."""
    client: Client | None = None
    failure = ""
    try:
        client = Client(url, verbose=False, analytics_enabled=False, download_files=str(downloads))
    except Exception as error:  # counted below as failures of all its requests
        failure = f"client did not connect: {type(error).__name__}: {error}"
    try:
        start.wait()
        for request in requests:
            if client is None:
                results.add(Outcome(request, FAILED, 0.0, failure))
            else:
                results.add(call(client, request, timeout_s))
    finally:
        if client is not None:
            client.close()


def start_server(args: argparse.Namespace, folder: Path) -> tuple[subprocess.Popen, str, Path]:
    """`python app.py` on the preview engine; (process, URL, log file) once GET / is 200."""
    port = free_port()
    env = {
        **preview_app_env(folder, port),
        "ZIMAGE_QUEUE_MAX": str(min(args.clients * args.requests * 2, QUEUE_MAX_LIMIT)),
    }
    log = folder / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + START_TIMEOUT_S
    while not serving(url):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_app(process)
            tail = log.read_text(errors="replace")[-2000:]
            raise SystemExit(f"the app did not serve {url} within {START_TIMEOUT_S} s:\n{tail}")
        time.sleep(0.25)
    return process, url, log


class RssSampler:
    """The server's resident memory: a sample now and then, and the peak in between."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = self.sample()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self) -> int:
        return self.process.memory_info().rss

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self.peak = max(self.peak, self.sample())
            except psutil.Error:
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def latency_line(values: list[float]) -> str:
    return f"p50 {percentile(values, 0.5):.2f} s, p95 {percentile(values, 0.95):.2f} s (n={len(values)})"


def report(
    args: argparse.Namespace,
    outcomes: list[Outcome],
    wall_s: float,
    rss: tuple[int, int, int] | None,
    server: str,
) -> None:
    """Print the summary and the breakdown of rejection messages."""
    counts = Counter(outcome.status for outcome in outcomes)
    succeeded = [o.latency_s for o in outcomes if o.status == SUCCEEDED]
    answered = [o.latency_s for o in outcomes if o.status != FAILED]
    total = args.clients * args.requests
    print(
        f"load test              {args.clients} clients x {args.requests} requests, "
        f"bad share {args.bad_share:g}, {args.size}, {args.steps} steps"
    )
    print(f"server                 {server}")
    print(f"requests sent          {len(outcomes)} of {total}")
    for status in (SUCCEEDED, REJECTED, FAILED):
        print(f"{status:<22} {counts[status]}")
    print(f"latency succeeded      {latency_line(succeeded)}")
    print(f"latency answered       {latency_line(answered)}")
    print(f"wall time              {wall_s:.1f} s")
    print(
        f"throughput             {len(outcomes) / wall_s:.2f} requests/s, "
        f"{len(succeeded) / wall_s:.2f} succeeded/s"
    )
    if rss is None:
        print("server RSS             n/a (server not started here)")
    else:
        before, after, peak = rss
        print(
            f"server RSS             before {before / MB:.0f} MB, after {after / MB:.0f} MB "
            f"({(after - before) / MB:+.0f} MB), peak {peak / MB:.0f} MB"
        )
    rejected = Counter(o.message[:80] for o in outcomes if o.status == REJECTED)
    if rejected:
        print("rejection messages:")
        for message, count in rejected.most_common():
            print(f"  {count:4d}  {message}")
    unexpected = [
        o for o in outcomes if (o.status == SUCCEEDED) == o.request.bad and o.status != FAILED
    ]
    if unexpected:
        print("unexpected outcomes (bad input accepted or good input rejected):")
        for label, count in Counter(
            f"{o.request.endpoint} {o.request.label}: {o.status} {o.message[:60]}"
            for o in unexpected
        ).most_common():
            print(f"  {count:4d}  {label}")
    failed = Counter(
        f"{o.request.endpoint} {o.request.label}: {o.message}"
        for o in outcomes
        if o.status == FAILED
    )
    if failed:
        print("failed without an answer:")
        for message, count in failed.most_common():
            print(f"  {count:4d}  {message}")


def check_local(url: str) -> None:
    """Refuse anything but a loopback address: this is a load test."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if host not in LOOPBACK:
        raise SystemExit(f"--url must point at 127.0.0.1 (got host {host!r})")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=4, help="per client")
    parser.add_argument("--bad-share", type=float, default=0.25)
    parser.add_argument("--url", help="an app already serving on 127.0.0.1")
    parser.add_argument("--size", default="256x256", help="WIDTHxHEIGHT of /text_to_image")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300, help="seconds per request")
    args = parser.parse_args()
    if args.clients < 1 or args.requests < 1 or not 0 <= args.bad_share <= 1:
        parser.error("--clients and --requests must be >= 1, --bad-share in [0, 1]")
    return args


def run_load(
    args: argparse.Namespace, url: str, files: Files, downloads: Path
) -> tuple[list[Outcome], float]:
    """All clients at once; (outcomes, wall seconds from the common start)."""
    results = Results()
    start = threading.Barrier(args.clients + 1)
    threads = [
        threading.Thread(
            target=run_client,
            args=(url, requests, downloads / f"client-{i}", start, results, args.timeout),
            name=f"client-{i}",
        )
        for i, requests in enumerate(plan(args, files))
    ]
    for thread in threads:
        thread.start()
    start.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return results.outcomes, time.perf_counter() - started


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="zimage-load-") as temp:
        folder = Path(temp)
        files = write_files(folder)
        process: subprocess.Popen | None = None
        sampler: RssSampler | None = None
        try:
            if args.url:
                check_local(args.url)
                url, server = args.url, f"{args.url} (not started here)"
            else:
                process, url, log = start_server(args, folder)
                server = f"python app.py, preview engine, {url}, pid {process.pid}"
                sampler = RssSampler(process.pid)
            before = sampler.sample() if sampler else 0
            outcomes, wall_s = run_load(args, url, files, folder / "downloads")
            rss = None
            if sampler:
                after = sampler.sample()
                sampler.stop()
                rss = (before, after, max(sampler.peak, after))
        finally:
            if process is not None:
                stop_app(process)
        report(args, outcomes, wall_s, rss, server)
        if not args.url:
            errors = log.read_text(errors="replace").count("Traceback")
            print(f"server log             {errors} tracebacks")
    return 1 if any(o.status == FAILED for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
