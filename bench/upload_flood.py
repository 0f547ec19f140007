"""Bytes an upload flood from one client leaves in the temp folder (issue 12 item 3).

    python bench/upload_flood.py [--baseline /path/to/other/checkout] [--uploads 40] [--mb 15]

Starts `python app.py` (preview engine, default settings unless given) from this checkout, and
first from the baseline checkout when one is given, sends `--uploads` distinct files of `--mb`
MB to POST /gradio_api/upload from one client, one after the other, and measures the bytes of
the files in the app's temp folder right after the flood and again `--wait-s` seconds later
(the unused-upload time plus a sweep). Ends with the ratios this checkout / baseline.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.local_app import free_port, preview_app_env, serving, stop_app  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024


@dataclass
class FloodResult:
    statuses: Counter[int]
    held_after_flood: int
    held_after_wait: int
    flood_s: float


def bytes_under(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def flood(
    root: Path, uploads: int, size: int, wait_s: float, env_extra: dict[str, str]
) -> FloodResult:
    with tempfile.TemporaryDirectory(prefix="upload-flood-") as scratch:
        folder = Path(scratch)
        port = free_port()
        env = {**preview_app_env(folder, port), **env_extra}
        process = subprocess.Popen(
            [sys.executable, "app.py"],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 180
            while not serving(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{root}: app did not start")
                time.sleep(0.5)
            payload = bytearray(size)
            statuses: Counter[int] = Counter()
            started = time.perf_counter()
            with httpx.Client(timeout=120) as client:
                for n in range(uploads):
                    payload[:8] = n.to_bytes(8, "big")  # distinct content: distinct files
                    answer = client.post(
                        f"{url}/gradio_api/upload",
                        files={"files": (f"flood{n}.bin", bytes(payload))},
                    )
                    statuses[answer.status_code] += 1
            flood_s = time.perf_counter() - started
            temp_dir = folder / "gradio"
            held_after_flood = bytes_under(temp_dir)
            time.sleep(wait_s)
            held_after_wait = bytes_under(temp_dir)
        finally:
            stop_app(process)
    return FloodResult(statuses, held_after_flood, held_after_wait, flood_s)


def describe(name: str, result: FloodResult, wait_s: float) -> str:
    statuses = ", ".join(f"{count} x {status}" for status, count in sorted(result.statuses.items()))
    return (
        f"{name:<10} answers {statuses}; flood {result.flood_s:.1f} s; held right after "
        f"{result.held_after_flood / MB:.1f} MB; held {wait_s:.0f} s later "
        f"{result.held_after_wait / MB:.1f} MB"
    )


def ratio(ours: int, theirs: int) -> str:
    return f"{ours / theirs:.3f}" if theirs else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another checkout to measure first")
    parser.add_argument("--uploads", type=int, default=40)
    parser.add_argument("--mb", type=float, default=15)
    parser.add_argument("--unused-s", type=int, help="ZIMAGE_UPLOAD_UNUSED_S for the apps")
    parser.add_argument("--wait-s", type=float, help="default: the unused time + 10 s")
    args = parser.parse_args()

    env_extra = {"ZIMAGE_UPLOAD_UNUSED_S": str(args.unused_s)} if args.unused_s else {}
    wait_s = args.wait_s if args.wait_s is not None else (args.unused_s or 120) + 10
    size = int(args.mb * MB)
    print(f"flood      {args.uploads} uploads x {args.mb:g} MB from one client, one at a time")
    baseline = None
    if args.baseline is not None:
        baseline = flood(args.baseline.resolve(), args.uploads, size, wait_s, env_extra)
        print(describe("baseline", baseline, wait_s))
    ours = flood(ROOT, args.uploads, size, wait_s, env_extra)
    print(describe("this", ours, wait_s))
    if baseline is not None:
        print(
            f"ratio this/baseline held right after {ratio(ours.held_after_flood, baseline.held_after_flood)}, "
            f"{wait_s:.0f} s later {ratio(ours.held_after_wait, baseline.held_after_wait)}"
        )


if __name__ == "__main__":
    main()
