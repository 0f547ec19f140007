"""Peak memory of the output cache under load: N preview generations at the byte cap.

    python bench/cache_memory.py [--generations 500] [--cap-mb 64] [--size 512x512]

Each output goes the page's way: its PNG is written as a file in a private folder (in
/dev/shm where it exists, as the app's temp folder) and the output is served from that file
(`ZImageService.serve_from_file`), so the cache holds it once, in the file. The memory an output
costs is then the process's resident memory plus the files' bytes (/dev/shm is memory too).
Prints that growth against the cap (target: growth <= cap + 15%). The baseline is the peak of
the same request path with a cache that keeps nothing (the model's working memory at this
size), measured first in the same process; the growth is what the cache adds on top of it.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zimage.engine.loading import create_preview_engine
from zimage.privacy.heap_trim import TrimAfterFrees  # noqa: E402
from zimage.privacy.housekeeping import SWEEP_INTERVAL_S  # noqa: E402
from zimage.privacy.output_cache import OutputCache  # noqa: E402
from zimage.service.images import ImageLimits  # noqa: E402
from zimage.service.service import ZImageService  # noqa: E402
from zimage.service.visitors import Visitor  # noqa: E402
from zimage.tools.text_to_image import TextToImage  # noqa: E402

MB = 1024 * 1024


def folder_bytes(folder: Path) -> int:
    total = 0
    for entry in os.scandir(folder):
        try:
            total += entry.stat().st_size
        except FileNotFoundError:  # deleted meanwhile
            pass
    return total


class PeakRss:
    """Samples this process's resident memory plus the bytes of the files in `folder` every
    few milliseconds."""

    def __init__(self, folder: Path) -> None:
        self.process = psutil.Process()
        self.folder = folder
        self.peak = self._now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._now())

    def _now(self) -> int:
        return self.process.memory_info().rss + folder_bytes(self.folder)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=500)
    parser.add_argument("--cap-mb", type=float, default=64)
    parser.add_argument("--size", default="512x512")
    parser.add_argument("--visitors", type=int, default=50)
    args = parser.parse_args()

    cap = int(args.cap_mb * MB)
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as folder:
        measure(args, cap, Path(folder))


def measure(args: argparse.Namespace, cap: int, folder: Path) -> None:
    engine = create_preview_engine()
    visitors = [Visitor(owner=f"visitor-{i}") for i in range(args.visitors)]

    def run(cache: OutputCache, count: int) -> tuple[int, int, float]:
        """(peak RSS + files, PNG bytes made, seconds) for `count` generations into `cache`."""
        service = ZImageService(engine, ImageLimits(), cache)
        made = 0
        started = time.perf_counter()
        with PeakRss(folder) as sampler:
            for index in range(count):
                visitor = visitors[index % len(visitors)]
                asked = TextToImage(
                    prompt="benchmark",
                    resolution=args.size,
                    seed=index,
                    randomize_seed=False,
                    steps=2,
                    shift=3.0,
                )
                outcome = service.text_to_image(asked, visitor)[0]
                made += len(outcome.png)
                # As zimage/page/outputs.py `save_output` (Gradio names files by content).
                path = folder / f"{hashlib.sha256(outcome.png).hexdigest()}.png"
                path.write_bytes(outcome.png)
                service.serve_from_file(outcome, str(path))
                del outcome
        return sampler.peak, made, time.perf_counter() - started

    keeps_nothing = OutputCache(ttl_s=3600, max_bytes=1, max_entries_per_owner=1, files_dir=folder)
    baseline, _, _ = run(keeps_nothing, max(args.generations // 10, 20))
    keeps_nothing.purge_all()
    gc.collect()

    cache = OutputCache(ttl_s=3600, max_bytes=cap, max_entries_per_owner=1000, files_dir=folder)
    # The app's housekeeping timer does the same (zimage/privacy/housekeeping.py).
    cache.add_sweep_task(TrimAfterFrees(lambda: cache.freed_png_bytes))
    cache.start_sweeper(SWEEP_INTERVAL_S)
    peak, made, elapsed = run(cache, args.generations)
    cache.stop_sweeper()
    growth = peak - baseline
    print(f"generations          {args.generations} at {args.size}, 2 steps, {elapsed:.1f} s")
    print(f"PNG bytes produced   {made / MB:.1f} MB ({made / cap:.1f}x the cap)")
    print(f"cache at end         {cache.total_bytes / MB:.1f} MB in {len(cache)} entries")
    print(f"byte cap             {cap / MB:.1f} MB")
    print(f"baseline peak        {baseline / MB:.1f} MB (RSS + files; cache keeping nothing)")
    print(f"peak                 {peak / MB:.1f} MB (RSS + files)")
    print(f"growth over baseline {growth / MB:.1f} MB")
    print(f"growth / cap         {growth / cap:.2f} (target <= 1.15)")


if __name__ == "__main__":
    main()
