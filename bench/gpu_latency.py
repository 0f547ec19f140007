"""Latency of Z-Image Turbo at full size: plain diffusers against the engine's optimised path.

    python bench/gpu_latency.py [--size 1024x1024] [--steps 8] [--runs 5] [--attention auto]
                                [--no-compile] [--tiny]

Builds the full Z-Image-Turbo architecture (6.15B transformer, Qwen3-4B text encoder, FLUX VAE)
from the configs in bench/configs/full with random bfloat16 weights created directly on the GPU:
nothing is downloaded, and the speed of a model does not depend on its weights. The tokenizer is
the preview's byte-level one (zimage.preview.build_tokenizer): the text encoder always reads 512
padded tokens, so only the caption length the transformer sees differs slightly from the real
tokenizer's.

In one process it times text-to-image, after warm-up, for
  (a) plain diffusers: `ZImagePipeline(...)(prompt, height, width, num_inference_steps,
      guidance_scale=0.0, generator)` with its defaults (PyTorch SDPA, nothing compiled);
  (b) the engine: `Engine` + `apply_speedups(attention, compile_blocks)` + `warm_up` over the
      1024 category's presets, with prompt-embedding reuse, for a new prompt and for the same
      prompt with a new seed, and at a second preset (which must not recompile);
and the edit path (img2img, strength 0.6) at the same size, plain and through `Engine.edit`.
Both paths share one set of weights; (a) runs before (b) changes the transformer.

The split is measured the same way for every row: forward hooks on the text encoder, the
transformer and the VAE's encoder/decoder record CUDA events (wall clock on CPU), summed per
request; "other" is the rest of the request (tokenizing, scheduler, latents, PIL, Python, idle
GPU). The engine's own stage timings (`Timings`) are printed for its rows as a cross-check.
Peak GPU memory is `torch.cuda.max_memory_allocated` over each row's timed runs (weights
included), reset before each row.

`--tiny` runs the same code on the CPU in float32 with the scaled-down configs in
bench/configs/tiny (the preview engine's sizes), 256x256 and no compilation: a smoke test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Nothing may be fetched: an attention backend that needs a Hub kernel must fail fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from diffusers import (  # noqa: E402
    AutoencoderKL,
    FlowMatchEulerDiscreteScheduler,
    ZImageImg2ImgPipeline,
    ZImagePipeline,
    ZImageTransformer2DModel,
)
from PIL import Image  # noqa: E402
from transformers import Qwen3Config, Qwen3Model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from zimage import presets  # noqa: E402
from zimage.embeddings import PromptEmbeddingCache  # noqa: E402
from zimage.engine import (  # noqa: E402
    EditRequest,
    Engine,
    GenerateRequest,
    Timings,
    apply_speedups,
)
from zimage.preview import build_tokenizer  # noqa: E402

CONFIGS = ROOT / "bench" / "configs"
GIB = 1024**3
PROMPT = "A lighthouse on a basalt cliff at dusk, waves breaking on the rocks below"
INSTRUCTION = "Make it a snowy evening"
EDIT_STRENGTH = 0.6
OWNER = "benchmark"
STAGES = ("text_encoder", "transformer", "vae")


def parse_size(text: str) -> tuple[int, int]:
    """`WIDTHxHEIGHT` or one number for a square."""
    width, _, height = text.lower().partition("x")
    return int(width), int(height or width)


def scaled_presets(width: int, height: int) -> list[str]:
    """The 1024 category's presets scaled to this size (itself at 1024x1024), multiples of 16."""
    scale = (width * height / (1024 * 1024)) ** 0.5

    def side(value: str) -> int:
        return max(16, round(int(value) * scale / 16) * 16)

    sizes: list[str] = []
    for preset in presets.RESOLUTION_PRESETS["1024"]:
        preset_width, preset_height = preset.split("x")
        size = f"{side(preset_width)}x{side(preset_height)}"
        if size not in sizes:
            sizes.append(size)
    return sizes


@contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Create parameters in `dtype` (never a float32 copy first); restores the old default."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def read_config(folder: Path, name: str) -> dict[str, Any]:
    return json.loads((folder / f"{name}.json").read_text())


def build_pipeline(folder: Path, device: str, dtype: torch.dtype) -> ZImagePipeline:
    """The Z-Image pipeline from the configs in `folder`, random weights made on `device`."""
    tokenizer = build_tokenizer()
    text_config = Qwen3Config(**read_config(folder, "text_encoder"))
    if text_config.vocab_size < len(tokenizer):
        raise SystemExit(f"{folder}/text_encoder.json: vocab_size < {len(tokenizer)} tokens")
    torch.manual_seed(0)
    with torch.device(device), default_dtype(dtype), torch.no_grad():
        text_encoder = Qwen3Model(text_config).eval()
        transformer = ZImageTransformer2DModel.from_config(read_config(folder, "transformer"))
        transformer.x_pad_token.fill_(1.0)
        transformer.cap_pad_token.fill_(1.0)
        vae = AutoencoderKL.from_config(read_config(folder, "vae"))
    pipeline = ZImagePipeline(
        scheduler=FlowMatchEulerDiscreteScheduler.from_config(read_config(folder, "scheduler")),
        vae=vae.eval(),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer.eval(),
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


class StageClock:
    """Time spent inside the text encoder, transformer and VAE, summed per request.

    Forward hooks record CUDA events on the GPU (read after the request has synchronised), and
    wall-clock time on the CPU.
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self._spans: dict[str, list[list[Any]]] = {stage: [] for stage in STAGES}

    def attach(self, stage: str, module: torch.nn.Module) -> None:
        spans = self._spans[stage]

        def before(*_: Any) -> None:
            spans.append([self._mark()])

        def after(*_: Any) -> None:
            spans[-1].append(self._mark())

        module.register_forward_pre_hook(before)
        module.register_forward_hook(after)

    def _mark(self) -> Any:
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def reset(self) -> None:
        for spans in self._spans.values():
            spans.clear()

    def calls(self, stage: str) -> int:
        return len(self._spans[stage])

    def seconds(self) -> dict[str, float]:
        """Seconds per stage since `reset`; call after the work has synchronised."""
        if self.cuda:
            return {
                stage: sum(start.elapsed_time(end) for start, end in spans) / 1000
                for stage, spans in self._spans.items()
            }
        return {
            stage: sum(end - start for start, end in spans) for stage, spans in self._spans.items()
        }


@dataclass
class Row:
    """The timed runs of one path."""

    name: str
    size: str
    totals: list[float] = field(default_factory=list)
    stages: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    engine_timings: list[Timings] = field(default_factory=list)
    transformer_calls: int = 0
    peak_bytes: int | None = None
    baseline: Row | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.totals)

    def stage_median(self, stage: str) -> float:
        return statistics.median(self.stages[stage])

    @property
    def other_median(self) -> float:
        return statistics.median(
            total - sum(self.stages[s][i] for s in STAGES) for i, total in enumerate(self.totals)
        )


class Bench:
    """Runs and records rows on one device; every request goes through `measure`."""

    def __init__(self, device: torch.device, runs: int) -> None:
        self.device = device
        self.runs = runs
        self.clock = StageClock(device)
        self.rows: list[Row] = []

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def measure(
        self,
        name: str,
        size: str,
        request: Callable[[int], Timings | None],
        baseline: Row | None = None,
    ) -> Row:
        """`request(i)` runs once per timed run and may return the engine's Timings.

        `baseline` is the row this one is compared with in the table.
        """
        row = Row(name, size, baseline=baseline)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        for index in range(self.runs):
            self.synchronize()
            self.clock.reset()
            started = time.perf_counter()
            timings = request(index)
            self.synchronize()
            row.totals.append(time.perf_counter() - started)
            for stage, seconds in self.clock.seconds().items():
                row.stages[stage].append(seconds)
            row.transformer_calls = self.clock.calls("transformer")
            if timings is not None:
                row.engine_timings.append(timings)
        if self.device.type == "cuda":
            row.peak_bytes = torch.cuda.max_memory_allocated(self.device)
        self.rows.append(row)
        print(f"  {name:<34} {size:>9}  median {row.median:.3f} s", flush=True)
        return row


@contextmanager
def phase(name: str, log: list[tuple[str, float]]) -> Iterator[None]:
    """Print and keep the elapsed time of a phase of the run."""
    print(f"[{name}]", flush=True)
    started = time.perf_counter()
    yield
    elapsed = time.perf_counter() - started
    log.append((name, elapsed))
    print(f"[{name}] {elapsed:.1f} s", flush=True)


def count(module: torch.nn.Module) -> str:
    """The module's parameter count, in billions or millions."""
    total = sum(p.numel() for p in module.parameters())
    return f"{total / 1e9:.2f}B" if total >= 1e8 else f"{total / 1e6:.2f}M"


def compiled_graphs() -> int:
    """How many graphs torch.compile has made in this process so far."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def edit_input(width: int, height: int) -> Image.Image:
    """A smooth RGB gradient, standing in for an uploaded photo."""
    horizontal = Image.linear_gradient("L").resize((width, height))
    vertical = horizontal.transpose(Image.Transpose.ROTATE_90)
    return Image.merge("RGB", (horizontal, vertical, Image.new("L", (width, height), 128)))


def print_table(rows: list[Row], cuda: bool) -> None:
    header = (
        f"{'path':<34} {'size':>9} {'runs':>4} {'median s':>9} {'vs (a)':>7} {'text enc':>8} "
        f"{'transf.':>8} {'VAE':>7} {'other':>7} {'DiT calls':>9} {'peak GiB':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        peak = f"{row.peak_bytes / GIB:.1f}" if row.peak_bytes is not None else "-"
        versus = f"{row.median / row.baseline.median:.2f}" if row.baseline else "-"
        print(
            f"{row.name:<34} {row.size:>9} {len(row.totals):>4} {row.median:>9.3f} "
            f"{versus:>7} "
            f"{row.stage_median('text_encoder'):>8.3f} {row.stage_median('transformer'):>8.3f} "
            f"{row.stage_median('vae'):>7.3f} {row.other_median:>7.3f} "
            f"{row.transformer_calls:>9} {peak:>8}"
        )
    unit = "CUDA events" if cuda else "wall clock"
    print("(vs (a): median / median of the plain row; stage columns: median seconds inside")
    print(f" each model per request, {unit}; other: the rest of the request)")


def print_engine_timings(rows: list[Row]) -> None:
    print("engine Timings (median s): text encoder / denoise / VAE+PIL / total")
    for row in rows:
        if not row.engine_timings:
            continue

        def median(attribute: str, row: Row = row) -> float:
            return statistics.median(getattr(t, attribute) for t in row.engine_timings)

        print(
            f"  {row.name:<34} {median('text_encoder_s'):.3f} / {median('denoise_s'):.3f} / "
            f"{median('vae_s'):.3f} / {median('total_s'):.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", help="WIDTHxHEIGHT (default 1024x1024; 256x256 with --tiny)")
    parser.add_argument("--steps", type=int, default=presets.DEFAULT_STEPS)
    parser.add_argument("--runs", type=int, default=5, help="timed runs per row (median)")
    parser.add_argument("--attention", default="auto", help="engine attention backend")
    parser.add_argument("--no-compile", action="store_true", help="engine without compiled blocks")
    parser.add_argument("--tiny", action="store_true", help="scaled-down configs on the CPU")
    parser.add_argument(
        "--compile", action="store_true", help="compile the blocks with --tiny too (slow on CPU)"
    )
    args = parser.parse_args()

    if args.tiny:
        device, dtype, folder = torch.device("cpu"), torch.float32, CONFIGS / "tiny"
        # Inductor on a 2-core CPU costs ~25 s and measures nothing about a GPU.
        compile_blocks = args.compile
    elif not torch.cuda.is_available():
        raise SystemExit(
            "bench/gpu_latency.py needs a CUDA GPU for the full-size model "
            "(run it with --tiny for the scaled-down CPU smoke test)"
        )
    else:
        device, dtype, folder = torch.device("cuda"), torch.bfloat16, CONFIGS / "full"
        compile_blocks = not args.no_compile
    width, height = parse_size(args.size or ("256x256" if args.tiny else "1024x1024"))
    size = f"{width}x{height}"
    warm_up_sizes = scaled_presets(width, height)
    second = next(s for s in warm_up_sizes if s != size)
    second_width, second_height = parse_size(second)
    warnings.filterwarnings("ignore", message=".*invalid value encountered in cast.*")
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    phases: list[tuple[str, float]] = []
    bench = Bench(device, args.runs)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"gpu_latency: {folder.name} configs on {where} ({dtype}), {size}, {args.steps} steps, "
        f"{args.runs} runs, torch {torch.__version__}"
    )

    with phase("build", phases):
        pipeline = build_pipeline(folder, str(device), dtype)
        bench.clock.attach("text_encoder", pipeline.text_encoder)
        bench.clock.attach("transformer", pipeline.transformer)
        bench.clock.attach("vae", pipeline.vae.encoder)
        bench.clock.attach("vae", pipeline.vae.decoder)
        print(
            f"  parameters: transformer {count(pipeline.transformer)}, "
            f"text encoder {count(pipeline.text_encoder)}, VAE {count(pipeline.vae)}"
        )

    image = edit_input(width, height)
    prompts = [f"{PROMPT}, study {index}" for index in range(args.runs + 1)]

    def generator(seed: int) -> torch.Generator:
        return torch.Generator(device).manual_seed(seed)

    with phase("plain diffusers", phases):
        # Default settings; only the progress bar is off, to keep the output readable.
        plain = ZImagePipeline(**pipeline.components)
        plain_edit = ZImageImg2ImgPipeline(**pipeline.components)
        for quiet in (plain, plain_edit):
            quiet.set_progress_bar_config(disable=True)

        def plain_text_to_image(index: int) -> None:
            plain(
                prompts[index],
                height=height,
                width=width,
                num_inference_steps=args.steps,
                guidance_scale=0.0,
                generator=generator(index),
            ).images[0]

        def plain_img2img(index: int) -> None:
            plain_edit(
                INSTRUCTION,
                image=image,
                strength=EDIT_STRENGTH,
                height=height,
                width=width,
                num_inference_steps=args.steps,
                guidance_scale=0.0,
                generator=generator(index),
            ).images[0]

        plain_text_to_image(args.runs)  # warm-up: CUDA context, kernels, allocator
        plain_img2img(args.runs)
        plain_row = bench.measure("(a) plain diffusers", size, plain_text_to_image)
        plain_edit_row = bench.measure("(a) plain diffusers img2img", size, plain_img2img)

    with phase("engine speed-ups + warm-up", phases):
        engine = Engine(pipeline, kind="diffusers", description=f"benchmark ({folder.name})")
        apply_speedups(engine, attention=args.attention, compile_blocks=compile_blocks)
        print(f"  attention backend: {engine.attention_backend}, compiled blocks: {compile_blocks}")
        print(f"  warm-up over {len(warm_up_sizes)} sizes: {', '.join(warm_up_sizes)}")
        engine.warm_up(warm_up_sizes)
        engine.prompt_embeddings = PromptEmbeddingCache(ttl_s=600)
        # Fills the cache for the "same prompt" rows and warms the edit path.
        engine.text_to_image(
            GenerateRequest(PROMPT, width, height, seed=0, steps=args.steps, owner=OWNER)
        )
        engine.edit(
            EditRequest(image, INSTRUCTION, seed=0, strength=EDIT_STRENGTH, steps=args.steps)
        )
        graphs_after_warm_up = compiled_graphs()
        print(f"  graphs compiled so far: {graphs_after_warm_up}")

    def engine_request(prompt: str, w: int, h: int) -> Callable[[int], Timings]:
        def run(index: int) -> Timings:
            text = prompt.format(index=index)
            request = GenerateRequest(text, w, h, seed=index + 1, steps=args.steps, owner=OWNER)
            return engine.text_to_image(request).timings

        return run

    def engine_edit(index: int) -> Timings:
        request = EditRequest(
            image, INSTRUCTION, seed=index + 1, strength=EDIT_STRENGTH, steps=args.steps
        )
        return engine.edit(request).timings

    with phase("engine (optimised)", phases):
        new_prompt = PROMPT + ", take {index}"
        optimised = bench.measure(
            "(b) engine, new prompt", size, engine_request(new_prompt, width, height), plain_row
        )
        same = bench.measure(
            "(b) engine, same prompt, new seed",
            size,
            engine_request(PROMPT, width, height),
            plain_row,
        )
        bench.measure(
            "(b) engine, new prompt, 2nd preset",
            second,
            engine_request(
                PROMPT + ", at another preset, take {index}", second_width, second_height
            ),
        )
        edit_row = bench.measure("(b) engine edit (img2img)", size, engine_edit, plain_edit_row)
        recompiles = compiled_graphs() - graphs_after_warm_up

    print()
    print_table(bench.rows, device.type == "cuda")
    print_engine_timings(bench.rows)
    print(f"graphs compiled after warm-up (timed runs, both presets): {recompiles} (want 0)")
    print(
        f"edit ratio engine/plain img2img: {edit_row.median / plain_edit_row.median:.2f}; "
        f"same prompt vs new prompt: {same.median / optimised.median:.2f}"
    )
    print("phases: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in phases))
    print(
        f"elapsed {time.perf_counter() - started:.1f} s; load average (1 min) {load_before:.2f} at start, {os.getloadavg()[0]:.2f} at end"
    )
    ratio = optimised.median / plain_row.median
    if not args.tiny:
        print(
            f"goals: optimised >= 1.5x as fast as plain: {'met' if ratio <= 1 / 1.5 else 'NOT met'}; "
            f"<= 0.7 s per image: {'met' if optimised.median <= 0.7 else 'NOT met'}"
        )
    print(
        f"ratio optimised/plain {size} {args.steps} steps (new prompt): {ratio:.2f} "
        f"({1 / ratio:.2f}x as fast; {optimised.median:.3f} s vs {plain_row.median:.3f} s)"
    )


if __name__ == "__main__":
    main()
