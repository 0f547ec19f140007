"""Prompt enhancer speed: tokens/s, and the latency it adds to a request as a ratio to one image.

    python bench/enhancer.py [--full] [--runs 3] [--max-new-tokens 256] [--size WxH] [--steps 8]
                             [--threads N]

Default: the preview engine on the CPU (its tiny text encoder as the chat model). `--full`: the
full Z-Image-Turbo architecture from bench/configs/full (Qwen3-4B text encoder, 6.15B
transformer, FLUX VAE) with random bfloat16 weights made on a CUDA GPU, the engine with the
Space's default speed-ups (best attention backend, nothing compiled). Needs diffusers and
transformers, not gradio.

One process, one set of weights. After a warm-up of each, it times:
  - the enhancer, greedy and seeded, `--runs` times each: time to the first token (the chat
    prompt read once), decode tokens/s after it, total. Random weights write until
    `--max-new-tokens` or the text encoder's token limit, except where a draw happens to hit an
    end-of-turn token (often on the preview, whose vocabulary has 263 entries): the token count
    is printed with each row;
  - one text-to-image request through the engine at `--size` and `--steps` (a new prompt each run);
and prints the ratio enhance / image: what "enhance before generating" adds to a request.
On a GPU it also prints the memory a request leaves allocated (want 0: the cache is freed) and
the peak it needs on top of the weights (key/value cache and activations).

With `--full`, the tokenizer is the preview's byte-level one (as in bench/gpu_latency.py): token
ids past its 263 entries decode to nothing, so the text-side work per token (decode, clean-up,
token count) runs on shorter text than a real rewrite; the preview run measures that work at
full length.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from gpu_latency import CONFIGS, build_pipeline, count, parse_size  # noqa: E402  (bench/ sibling)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from zimage import presets  # noqa: E402
from zimage.engine.engine import Engine  # noqa: E402
from zimage.engine.enhancer import PromptEnhancer  # noqa: E402
from zimage.engine.loading import apply_speedups, create_preview_engine  # noqa: E402
from zimage.tools.text_to_image import TextToImage  # noqa: E402

PROMPT = 'A lighthouse on a basalt cliff at dusk, a sign reading "KEEP OUT"'
MIB = 1024**2


@dataclass
class EnhanceRuns:
    """Timed runs of one decoding mode."""

    name: str
    tokens: list[int] = field(default_factory=list)
    first_s: list[float] = field(default_factory=list)
    total_s: list[float] = field(default_factory=list)
    held_bytes: list[int] = field(default_factory=list)
    peak_bytes: list[int] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return statistics.median(self.total_s)

    def decode_rate(self) -> float:
        """Tokens per second after the first token, median over runs."""
        return statistics.median(
            (tokens - 1) / (total - first)
            for tokens, first, total in zip(self.tokens, self.first_s, self.total_s)
        )


def build_full(folder: Path, device: str, dtype: torch.dtype) -> Engine:
    """The engine on the architecture in `folder`, random weights, the Space's default speed-ups."""
    engine = Engine(build_pipeline(folder, device, dtype), "diffusers", f"bench ({folder.name})")
    apply_speedups(engine, attention="auto", compile_blocks=False)
    return engine


def enhancer_for(engine: Engine, max_new_tokens: int) -> PromptEnhancer:
    pipeline = engine.pipeline
    enhancer = PromptEnhancer.from_text_encoder(
        pipeline.text_encoder, pipeline.tokenizer, engine.prompt_tokens, max_new_tokens
    )
    if enhancer is None:
        raise SystemExit("the text encoder cannot serve as a chat model (see the log line)")
    return enhancer


def extra_parameter_bytes(enhancer: PromptEnhancer, encoder: torch.nn.Module) -> int:
    """Bytes of the chat model's tensors that are not in the encoder's storage (want 0)."""
    shared = {t.untyped_storage().data_ptr() for t in encoder.state_dict().values()}
    return sum(
        t.untyped_storage().nbytes()
        for t in enhancer.model.state_dict().values()
        if t.untyped_storage().data_ptr() not in shared
    )


def time_enhance(enhancer: PromptEnhancer, seed: int | None, runs: EnhanceRuns) -> None:
    device = enhancer.device
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    first = 0.0
    tokens = 0
    # Each yield follows a token copied to the host, so the GPU has finished it.
    for _ in enhancer.stream(PROMPT, seed):
        tokens += 1
        if tokens == 1:
            first = time.perf_counter() - started
    runs.total_s.append(time.perf_counter() - started)
    runs.first_s.append(first)
    runs.tokens.append(tokens)
    if cuda:
        torch.cuda.synchronize(device)
        runs.held_bytes.append(torch.cuda.memory_allocated(device) - before)
        runs.peak_bytes.append(torch.cuda.max_memory_allocated(device) - before)


def time_image(engine: Engine, width: int, height: int, steps: int, index: int) -> float:
    request = TextToImage(
        prompt=f"{PROMPT}, take {index}", resolution=f"{width}x{height}", seed=index, steps=steps
    )
    started = time.perf_counter()
    engine.text_to_image(request)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full-size model on a CUDA GPU")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per row (median)")
    parser.add_argument("--max-new-tokens", type=int, default=presets.DEFAULT_ENHANCER_MAX_TOKENS)
    parser.add_argument("--size", default=presets.DEFAULT_RESOLUTION, help="image WIDTHxHEIGHT")
    parser.add_argument("--steps", type=int, default=presets.DEFAULT_STEPS)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.full and not torch.cuda.is_available():
        raise SystemExit("bench/enhancer.py --full needs a CUDA GPU (run it without --full)")
    width, height = parse_size(args.size)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()

    if args.full:
        engine = build_full(CONFIGS / "full", "cuda", torch.bfloat16)
        where = f"full-size on {torch.cuda.get_device_name()} (bfloat16)"
    else:
        engine = create_preview_engine()
        where = f"preview engine on the CPU (float32, {torch.get_num_threads()} threads)"
    encoder = engine.pipeline.text_encoder
    enhancer = enhancer_for(engine, args.max_new_tokens)
    print(
        f"enhancer: {where}, text encoder {count(encoder)} parameters, "
        f"max_new_tokens {args.max_new_tokens}, image {width}x{height} {args.steps} steps, "
        f"{args.runs} runs, torch {torch.__version__}"
    )
    print(
        f"  chat model's own parameter bytes: {extra_parameter_bytes(enhancer, encoder)} (want 0)"
    )

    # Warm-up: kernels, allocator, attention backend.
    list(enhancer.stream(PROMPT, seed=0))
    time_image(engine, width, height, args.steps, index=-1)

    modes = [EnhanceRuns("greedy"), EnhanceRuns("seeded")]
    images: list[float] = []
    for run in range(args.runs):
        time_enhance(enhancer, None, modes[0])
        time_enhance(enhancer, run + 1, modes[1])
        images.append(time_image(engine, width, height, args.steps, run))
    image_s = statistics.median(images)

    for mode in modes:
        print(
            f"  {mode.name:<7} tokens {statistics.median(mode.tokens):>5.0f}  "
            f"first token {statistics.median(mode.first_s):.3f} s  "
            f"decode {mode.decode_rate():,.1f} tokens/s  total {mode.median_s:.3f} s  "
            f"= {mode.median_s / image_s:.2f} x image"
        )
        if mode.held_bytes:
            print(
                f"          memory left allocated after a request {max(mode.held_bytes) / MIB:.1f}"
                f" MiB (want 0); peak above the weights {max(mode.peak_bytes) / MIB:.1f} MiB"
            )
    print(f"  image {width}x{height}, {args.steps} steps: median {image_s:.3f} s")
    print(
        f"elapsed {time.perf_counter() - started:.1f} s; load average (1 min) {load_before:.2f} "
        f"at start, {os.getloadavg()[0]:.2f} at end"
    )
    seeded = modes[1]
    print(
        f"ratio enhance/image (seeded, {statistics.median(seeded.tokens):.0f} tokens): "
        f"{seeded.median_s / image_s:.2f} (adds {seeded.median_s:.3f} s to a {image_s:.3f} s image; "
        f"{seeded.decode_rate():,.1f} tokens/s)"
    )


if __name__ == "__main__":
    main()
