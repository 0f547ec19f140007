"""Time per image of a several-image batch, as a ratio to 1-image runs (issue 15).

    python bench/batch.py [--size 512x512] [--steps 8] [--images 4] [--runs 5]
                          [--full] [--quick] [--threads N]

Runs the engine's text-to-image (zimage/engine/engine.py: one request of `--images` images is one
batch through the transformer and the VAE) against 1-image requests of the same size and steps,
in rounds: each round runs both once, the order alternating between rounds, with a new prompt
and seed each run, so that a drift in the machine's speed falls on both. Per round the ratio is
(batch time / images) / (1-image time); the last line gives the median of those ratios (< 1: a
batch makes each image faster). The engine's own stage times (text encoder, denoising, VAE)
are printed per image as well.

Default: the preview engine (zimage.engine.tiny_pipelines: tiny, float32) on the CPU. `--full`: the full
Z-Image-Turbo architecture with random bfloat16 weights on a CUDA GPU (bench/configs/full;
speed does not depend on weight values). `--quick`: 256x256, 2 steps, 1 round, a smoke test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.engine_options import add_engine_options, bench_engine  # noqa: E402
from bench.gpu_latency import parse_size  # noqa: E402
from zimage import presets  # noqa: E402
from zimage.engine.engine import Engine  # noqa: E402
from zimage.engine.results import Timings  # noqa: E402
from zimage.tools.text_to_image import TextToImage  # noqa: E402

PROMPTS = [
    "A lighthouse on a basalt cliff at dusk, waves breaking on the rocks below",
    "A bowl of ramen on a wooden counter, steam rising, neon sign reflected in the broth",
    "An old map of an imaginary archipelago, ink and watercolour on yellowed paper",
]


def timed_run(engine: Engine, request: TextToImage) -> tuple[float, Timings]:
    started = time.perf_counter()
    result = engine.text_to_image(request)
    if engine.device.type == "cuda":
        torch.cuda.synchronize(engine.device)
    elapsed = time.perf_counter() - started
    assert len(result.images) == request.num_images
    return elapsed, result.timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="512x512", help="WIDTHxHEIGHT")
    parser.add_argument("--steps", type=int, default=presets.DEFAULT_STEPS)
    parser.add_argument("--images", type=int, default=presets.MAX_IMAGES_PER_RUN)
    parser.add_argument("--runs", type=int, default=5, help="rounds (one run of each per round)")
    add_engine_options(parser, quick="256x256, 2 steps, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.size, args.steps, args.runs = "256x256", 2, 1
    if not 2 <= args.images <= presets.MAX_IMAGES_PER_RUN:
        raise SystemExit(f"--images must be from 2 to {presets.MAX_IMAGES_PER_RUN}")

    width, height = parse_size(args.size)
    engine, what = bench_engine(args, "bench/batch.py")
    print(
        f"batch: {what}, {width}x{height}, {args.steps} steps, {args.images}-image "
        f"batch against 1-image runs, {args.runs} rounds, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )

    def request(images: int, index: int) -> TextToImage:
        prompt = f"{PROMPTS[index % len(PROMPTS)]}, take {index}"
        return TextToImage(
            prompt=prompt,
            resolution=f"{width}x{height}",
            seed=index,
            steps=args.steps,
            num_images=images,
        )

    timed_run(engine, request(1, 0))  # warm-up: first-call work, allocator
    timed_run(engine, request(args.images, 0))
    single: list[tuple[float, Timings]] = []
    batch: list[tuple[float, Timings]] = []
    ratios = []
    for round_index in range(args.runs):
        order = (1, args.images) if round_index % 2 == 0 else (args.images, 1)
        for images in order:
            outcome = timed_run(engine, request(images, round_index + 1))
            (single if images == 1 else batch).append(outcome)
        per_image = batch[-1][0] / args.images
        ratios.append(per_image / single[-1][0])
        print(
            f"round {round_index + 1}: 1 image {single[-1][0]:.3f} s, {args.images} images "
            f"{batch[-1][0]:.3f} s = {per_image:.3f} s an image; ratio {ratios[-1]:.3f}",
            flush=True,
        )

    def stages(runs: list[tuple[float, Timings]], images: int) -> str:
        def median(stage: str) -> float:
            return statistics.median(getattr(timings, stage) for _, timings in runs) / images

        return (
            f"text encoder {median('text_encoder_s') * 1000:.1f} ms, denoising "
            f"{median('denoise_s') * 1000:.1f} ms, VAE {median('vae_s') * 1000:.1f} ms"
        )

    single_s = statistics.median(seconds for seconds, _ in single)
    batch_s = statistics.median(seconds for seconds, _ in batch)
    print(f"1 image:  median {single_s:.3f} s; {stages(single, 1)}")
    print(
        f"{args.images} images: median {batch_s:.3f} s = {batch_s / args.images:.3f} s an image; "
        f"per image: {stages(batch, args.images)}"
    )
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    print(
        f"ratio time per image {args.images}-image batch / 1-image run {width}x{height} "
        f"{args.steps} steps: {statistics.median(ratios):.3f} (median of {len(ratios)} rounds; "
        f"ratio of medians {batch_s / args.images / single_s:.3f})"
    )


if __name__ == "__main__":
    main()
