"""Cost of the live denoising preview per step, and of fitting its map at start-up.

    python bench/live_preview.py [--size 1024x1024] [--steps 8] [--runs 5] [--batch 1]
                                 [--full] [--quick] [--threads N]

Default: the preview engine's tiny pipeline (zimage.engine.tiny_pipelines) on the CPU, float32. `--full`: the
full Z-Image-Turbo architecture (bench/configs/full: 6.15B transformer, FLUX VAE) with random
bfloat16 weights made on a CUDA GPU (bench/gpu_latency.build_pipeline; speed does not depend on
weight values). `--quick`: 256x256, 3 steps, 1 run, 3 repeats of the previews alone, a smoke test.

In one process, after a warm-up run of each:
  fit      `LatentPreview.fit(vae)`, the start-up cost (median of 3);
  (a)      the denoising loop (`output_type="latent"`) with a step-end callback that does
           nothing, as the engine's own callback costs next to nothing;
  (b)      the same with the preview: `RunPreview.after_step` on every step (the denoised
           estimate, the projection, the copy of the frames to the CPU);
in alternating order, a new seed per run. The goal is the ratio of the medians b/a <= 1.05.
Because that ratio moves by a few percent between runs on shared machines, the preview's own
time per step is also measured alone on the last step's latents (synchronised on a GPU) and
printed as a share of a step; so is a preview decoded by a tiny autoencoder of TAEF1's shape
(random weights: its cost, not its pictures), the Space's preview where TAEF1 is available.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from diffusers import AutoencoderTiny, ZImagePipeline  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gpu_latency import CONFIGS, build_pipeline, parse_size  # noqa: E402
from zimage import presets  # noqa: E402
from zimage.engine.latent_preview import LatentPreview, TinyAutoencoderPreview  # noqa: E402
from zimage.engine.tiny_pipelines import build_preview_pipeline  # noqa: E402

PROMPT = "A lighthouse on a basalt cliff at dusk, waves breaking on the rocks below"
GOAL = 1.05
FIT_REPEATS = 3
ALONE_REPEATS = 50


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, work: Callable[[], Any]) -> float:
    synchronize(device)
    started = time.perf_counter()
    work()
    synchronize(device)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1024x1024", help="WIDTHxHEIGHT")
    parser.add_argument("--steps", type=int, default=presets.DEFAULT_STEPS)
    parser.add_argument("--runs", type=int, default=5, help="timed runs per path (median)")
    parser.add_argument("--batch", type=int, default=1, help="images per run")
    parser.add_argument("--full", action="store_true", help="full-size model on a CUDA GPU")
    parser.add_argument(
        "--repeats", type=int, default=ALONE_REPEATS, help="timings of each preview alone (median)"
    )
    parser.add_argument("--quick", action="store_true", help="256x256, 3 steps, 1 run, 3 repeats")
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads (1 avoids stalls on a busy 2-core VM)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.size, args.steps, args.runs, args.repeats = "256x256", 3, 1, 3
    if args.full and not torch.cuda.is_available():
        raise SystemExit("bench/live_preview.py --full needs a CUDA GPU")

    width, height = parse_size(args.size)
    if args.full:
        device = torch.device("cuda")
        pipeline: ZImagePipeline = build_pipeline(CONFIGS / "full", "cuda", torch.bfloat16)
    else:
        device = torch.device("cpu")
        pipeline = build_preview_pipeline()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    model = "full-size Z-Image, random bf16 weights" if args.full else "preview engine"
    print(
        f"live_preview: {model} on {where}, {width}x{height}, {args.steps} steps, "
        f"batch {args.batch}, {args.runs} runs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )

    fits = [timed(device, lambda: LatentPreview.fit(pipeline.vae)) for _ in range(FIT_REPEATS)]
    preview = LatentPreview.fit(pipeline.vae)
    print(
        f"fit at start-up: median {statistics.median(fits):.3f} s of {FIT_REPEATS} "
        f"({', '.join(f'{s:.3f}' for s in fits)}); explains "
        f"{preview.explained_variance:.0%} of the fit pictures' pooled colour variance",
        flush=True,
    )

    with torch.inference_mode():
        prompt_embeds, _ = pipeline.encode_prompt(
            PROMPT, device=device, do_classifier_free_guidance=False
        )
    last_latents: list[torch.Tensor] = []

    def plain(pipeline: Any, step: int, timestep: Any, tensors: dict) -> dict:
        return tensors

    def denoise(seed: int, with_preview: bool) -> float:
        run = preview.start_run()
        frames = 0

        def previewing(pipeline: Any, step: int, timestep: Any, tensors: dict) -> dict:
            nonlocal frames
            frames += len(run.after_step(tensors["latents"], pipeline.scheduler))
            return tensors

        def work() -> None:
            with torch.inference_mode():
                latents = pipeline(
                    prompt_embeds=prompt_embeds * args.batch,
                    height=height,
                    width=width,
                    num_inference_steps=args.steps,
                    guidance_scale=0.0,
                    generator=torch.Generator(device).manual_seed(seed),
                    output_type="latent",
                    callback_on_step_end=previewing if with_preview else plain,
                ).images
            last_latents[:] = [latents]

        seconds = timed(device, work)
        if with_preview:
            assert frames == (args.steps - 1) * args.batch, frames
        return seconds / args.steps

    denoise(0, with_preview=False)  # warm-up: kernels, allocator, first-call work
    denoise(0, with_preview=True)
    without: list[float] = []
    with_it: list[float] = []
    for run_index in range(args.runs):
        order = (False, True) if run_index % 2 == 0 else (True, False)
        for with_preview in order:
            per_step = denoise(run_index + 1, with_preview)
            (with_it if with_preview else without).append(per_step)
    step_without = statistics.median(without)
    step_with = statistics.median(with_it)

    # The preview's own work per step, alone: estimate, projection and transfer; then the same
    # with a tiny autoencoder decoding the frames (TAEF1's shape, random weights: its cost).
    latents = last_latents[0]

    def alone_per_step(source: LatentPreview | TinyAutoencoderPreview) -> float:
        times = []
        for _ in range(args.repeats):
            run = source.start_run()
            run.after_step(latents * 0.99, pipeline.scheduler)
            times.append(timed(device, lambda run=run: run.after_step(latents, pipeline.scheduler)))
        return statistics.median(times)

    preview_alone = alone_per_step(preview)
    taef1 = AutoencoderTiny(latent_channels=16, scaling_factor=1.0, shift_factor=0.0)
    taef1 = taef1.to(device, pipeline.vae.dtype).eval()
    decoder_alone = alone_per_step(TinyAutoencoderPreview(taef1))

    print(f"(a) step without preview: median {step_without * 1000:.1f} ms")
    print(f"(b) step with preview:    median {step_with * 1000:.1f} ms")
    print(
        f"preview alone per step: median {preview_alone * 1000:.3f} ms = "
        f"{preview_alone / step_without:.2%} of a step (latents {tuple(latents.shape)})"
    )
    print(
        f"TAEF1-shaped tiny autoencoder preview alone per step: median "
        f"{decoder_alone * 1000:.3f} ms = {decoder_alone / step_without:.2%} of a step"
    )
    ratio = step_with / step_without
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    print(
        f"ratio per step with/without preview {width}x{height} batch {args.batch}: "
        f"{ratio:.3f} (goal <= {GOAL}: {'met' if ratio <= GOAL else 'NOT met'}); "
        f"alone: {1 + preview_alone / step_without:.3f}"
    )


if __name__ == "__main__":
    main()
