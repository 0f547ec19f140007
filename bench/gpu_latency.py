"""Latency of Z-Image Turbo at full size: plain diffusers against the engine's optimised paths.

    python bench/gpu_latency.py [--size 1024x1024] [--steps 8] [--runs 10] [--attention auto]
                                [--no-compile] [--no-fp8] [--max-seconds S] [--out DIR]
    python bench/gpu_latency.py --tiny [--compile]       (the same code on the CPU, small)

Builds the full Z-Image-Turbo architecture (6.15B transformer, Qwen3-4B text encoder, FLUX VAE)
from the configs in bench/configs/full with random bfloat16 weights created directly on the GPU:
nothing is downloaded, and the speed of a model does not depend on its weights. The tokenizer is
the preview's byte-level one (zimage.engine.tiny_pipelines.build_tokenizer).

Paths, each with its own copy of the same transformer weights (text encoder and VAE shared):
  (a) plain diffusers: `ZImagePipeline(...)(prompt, height, width, num_inference_steps,
      guidance_scale=0.0, generator)` with its defaults (PyTorch SDPA, nothing compiled);
  (b) the engine, through its public API only: `Engine` + `apply_speedups(attention,
      compile_blocks)`, prompt-embedding reuse, `text_to_image(TextToImage)` and
      `edit(Edit)`;
  (c) the same engine with `apply_speedups(..., quant="fp8")` (torchao float8 linear layers),
      only on a GPU of compute capability >= 8.9; elsewhere the row is skipped with the reason.

Order of the run:
  1. first call of every row, timed apart: for a compiled engine it includes compilation, so
     "compile" = first call - steady median. The "new size" rows run last, at a size no call has
     used before: the recompile check (graphs compiled then: want 0);
  2. rounds: every row once per round, the order rotated each round, so plain and optimised
     rows alternate and drift in the machine's speed falls on all of them alike;
  3. in each round, the plain, engine and fp8 rows make the same image (same prompt, seed and
     weights): the relative error of their output latents, ||x - ref|| / ||ref||, shows that
     the engine computes what diffusers computes, and how far float8 moves the output. With
     random weights that says nothing of visual quality.

`--max-seconds` bounds the whole run: no round starts that its rows' last times say would end
past the limit, and a timer stops a call still running at the limit; either way the run ends
cleanly and prints (and writes) the rows it has. `--out DIR` writes gpu_latency.json there after
every round.

Stage split, the same instrument for every row: forward hooks on the text encoder, the
transformer and the VAE's encoder/decoder record CUDA events (wall clock on CPU), summed per
request; "other" is the rest of the request. The engine's own `Timings` are printed beside.
"peak +GiB" is `torch.cuda.max_memory_allocated` during the request above what was allocated
before it (the weights of all paths stay resident).

`--tiny` runs the same code on the CPU in float32 with the scaled-down configs in
bench/configs/tiny (the preview engine's sizes), 256x256, one CPU thread, no compilation unless
`--compile`: a smoke test of the code path, not a speed figure.
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import json
import math
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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

from bench.latency_tools import (  # noqa: E402
    GIB,
    Bench,
    Deadline,
    LatentProbe,
    OutOfTime,
    Results,
    Row,
    StageClock,
    compiled_graphs,
    fmt,
    print_engine_timings,
    print_table,
)
from zimage import presets  # noqa: E402
from zimage.engine.engine import Engine  # noqa: E402
from zimage.engine.loading import apply_speedups  # noqa: E402
from zimage.engine.prompt_embeddings import PromptEmbeddingCache  # noqa: E402
from zimage.engine.quantization import fp8_linear_count, fp8_refusal  # noqa: E402
from zimage.engine.results import Timings  # noqa: E402
from zimage.engine.tiny_pipelines import build_tokenizer  # noqa: E402
from zimage.tools.edit import Edit  # noqa: E402
from zimage.tools.text_to_image import TextToImage  # noqa: E402

CONFIGS = ROOT / "bench" / "configs"
PROMPT = "A lighthouse on a basalt cliff at dusk, waves breaking on the rocks below"
INSTRUCTION = "Make it a snowy evening"
EDIT_STRENGTH = 0.6
OWNER = "benchmark"
# Goals on one H200 at 1024x1024, 8 steps (BENCHMARKS.md).
GOAL_BF16_S = 0.75
GOAL_FP8_S = 0.55
OPTIMISED = "(b) engine, new prompt"
# The engine stops a request after its time limit (300 s by default); a first call that
# compiles may take longer on a slow machine, and --max-seconds bounds the run instead.
ENGINE_TIME_LIMIT_S = 3600
FP8 = "(c) engine fp8, new prompt"


def parse_size(text: str) -> tuple[int, int]:
    """`WIDTHxHEIGHT` or one number for a square."""
    width, _, height = text.lower().partition("x")
    return int(width), int(height or width)


def scaled_presets(width: int, height: int) -> list[str]:
    """The 1024 category's presets scaled to this size (itself at 1024x1024): multiples of 16,
    no side under the smallest the Space takes."""
    scale = (width * height / (1024 * 1024)) ** 0.5

    def side(value: str) -> int:
        return max(presets.MIN_SIDE, round(int(value) * scale / 16) * 16)

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


def with_own_transformer(pipeline: ZImagePipeline) -> ZImagePipeline:
    """The same pipeline with a copy of its transformer (same weights) and its own scheduler."""
    copied = ZImagePipeline(
        **{
            **pipeline.components,
            "transformer": copy.deepcopy(pipeline.transformer),
            "scheduler": FlowMatchEulerDiscreteScheduler.from_config(pipeline.scheduler.config),
        }
    )
    copied.set_progress_bar_config(disable=True)
    return copied


def edit_input(width: int, height: int) -> Image.Image:
    """A smooth RGB gradient, standing in for an uploaded photo."""
    horizontal = Image.linear_gradient("L").resize((width, height))
    vertical = horizontal.transpose(Image.Transpose.ROTATE_90)
    return Image.merge("RGB", (horizontal, vertical, Image.new("L", (width, height), 128)))


def count(module: torch.nn.Module) -> str:
    """The module's parameter count, in billions or millions."""
    total = sum(p.numel() for p in module.parameters())
    return f"{total / 1e9:.2f}B" if total >= 1e8 else f"{total / 1e6:.2f}M"


def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for name in ("torch", "diffusers", "transformers", "huggingface_hub", "torchao"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@dataclass(frozen=True)
class Setup:
    """What the command line asks for, resolved for this machine."""

    device: torch.device
    dtype: torch.dtype
    folder: Path
    compile_blocks: bool
    width: int
    height: int
    steps: int
    runs: int
    attention: str
    fp8_skip: str | None  # why there is no float8 row; None: there is one

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def new_size(self) -> tuple[int, int]:
        """A size no call uses before the recompile check: another preset, scaled."""
        return parse_size(
            next(s for s in scaled_presets(self.width, self.height) if s != self.size)
        )


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", help="WIDTHxHEIGHT (default 1024x1024; 256x256 with --tiny)")
    parser.add_argument("--steps", type=int, default=presets.DEFAULT_STEPS)
    parser.add_argument("--runs", type=int, default=10, help="rounds; each row runs once a round")
    parser.add_argument("--attention", default="auto", help="engine attention backend")
    parser.add_argument("--no-compile", action="store_true", help="engine without compiled blocks")
    parser.add_argument("--no-fp8", action="store_true", help="leave out the float8 rows")
    parser.add_argument("--tiny", action="store_true", help="scaled-down configs on the CPU")
    parser.add_argument(
        "--compile", action="store_true", help="compile the blocks with --tiny too (slow on CPU)"
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        help="end cleanly, with the rows so far, this long after start-up (imports not counted)",
    )
    parser.add_argument("--out", type=Path, help="folder to write gpu_latency.json in")
    return parser.parse_args()


def resolve_setup(args: argparse.Namespace) -> Setup:
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
    return Setup(
        device=device,
        dtype=dtype,
        folder=folder,
        compile_blocks=compile_blocks,
        width=width,
        height=height,
        steps=args.steps,
        runs=args.runs,
        attention=args.attention,
        fp8_skip="--no-fp8" if args.no_fp8 else fp8_refusal(device, dtype),
    )


def describe_device(device: torch.device) -> str:
    if device.type != "cuda":
        return "CPU"
    capability = "{}.{}".format(*torch.cuda.get_device_capability(device))
    return f"{torch.cuda.get_device_name(device)} (compute capability {capability})"


class Paths:
    """The three paths over one set of weights, each with its own transformer copy.

    (a) plain diffusers keeps its defaults; its attention is pinned to them ("native", PyTorch
    SDPA) because `set_attention_backend` on any model also changes diffusers' process-wide
    active backend, which the plain model's processors would otherwise follow.
    """

    def __init__(self, setup: Setup, results: Results) -> None:
        self.setup = setup
        device = setup.device
        plain_pipeline = build_pipeline(setup.folder, str(device), setup.dtype)
        engine_pipeline = with_own_transformer(plain_pipeline)
        fp8_pipeline = with_own_transformer(plain_pipeline) if setup.fp8_skip is None else None
        plain_pipeline.transformer.set_attention_backend("native")
        self.clock = StageClock(device)
        self.clock.attach("text_encoder", plain_pipeline.text_encoder)
        self.clock.attach("vae", plain_pipeline.vae.encoder)
        self.clock.attach("vae", plain_pipeline.vae.decoder)
        for pipeline in (plain_pipeline, engine_pipeline, fp8_pipeline):
            if pipeline is not None:
                self.clock.attach("transformer", pipeline.transformer)
        vae_config = plain_pipeline.vae.config
        self.probe = LatentProbe(
            plain_pipeline.vae.decoder, vae_config.scaling_factor, vae_config.shift_factor
        )
        print(
            f"  parameters: transformer {count(plain_pipeline.transformer)} (one copy per path), "
            f"text encoder {count(plain_pipeline.text_encoder)}, VAE {count(plain_pipeline.vae)}"
        )
        self.plain = ZImagePipeline(**plain_pipeline.components)
        self.plain_edit = ZImageImg2ImgPipeline(**plain_pipeline.components)
        for quiet in (self.plain, self.plain_edit):
            quiet.set_progress_bar_config(disable=True)  # the only change to the defaults
        self.image = edit_input(setup.width, setup.height)

        self.engine = self._engine(engine_pipeline, "off")
        print(
            f"  engine: attention backend {self.engine.attention_backend}, "
            f"compiled blocks {setup.compile_blocks}"
        )
        self.fp8_engine = None if fp8_pipeline is None else self._fp8_engine(fp8_pipeline, results)
        if device.type == "cuda":
            resident = torch.cuda.memory_allocated(device) / GIB
            results.notes["resident_gib"] = resident
            print(f"  GPU memory with every path loaded: {resident:.1f} GiB")

    def _engine(self, pipeline: ZImagePipeline, quant: str) -> Engine:
        engine = Engine(
            pipeline,
            kind="diffusers",
            description=f"benchmark, quant {quant}",
            time_limit_s=ENGINE_TIME_LIMIT_S,
        )
        apply_speedups(engine, self.setup.attention, self.setup.compile_blocks, quant)
        engine.prompt_embeddings = PromptEmbeddingCache(ttl_s=600)
        return engine

    def _fp8_engine(self, pipeline: ZImagePipeline, results: Results) -> Engine | None:
        """The float8 engine, or None with the reason noted: the other rows run regardless."""
        try:
            engine = self._engine(pipeline, "fp8")
        except Exception as error:
            reason = f"set-up failed: {type(error).__name__}: {error}".splitlines()[0][:300]
            results.notes["fp8_skipped"] = reason
            return None
        layers = fp8_linear_count(pipeline.transformer)
        results.notes["fp8_linear_layers"] = layers
        print(f"  fp8 engine: {layers} linear layers of the transformer in float8")
        if layers == 0:
            results.notes["fp8_skipped"] = "apply_speedups(quant='fp8') changed no layer"
            return None
        return engine

    @staticmethod
    def prompt(index: int) -> str:
        """Round `index`'s new prompt, the same for every path so their images can be compared."""
        return f"{PROMPT}, study {index}"

    def plain_text_to_image(self, index: int) -> None:
        self.plain(
            self.prompt(index),
            height=self.setup.height,
            width=self.setup.width,
            num_inference_steps=self.setup.steps,
            guidance_scale=0.0,
            generator=torch.Generator("cpu").manual_seed(index + 1),  # seeded as the engine does
        ).images[0]

    def plain_img2img(self, index: int) -> None:
        self.plain_edit(
            INSTRUCTION,
            image=self.image,
            strength=EDIT_STRENGTH,
            height=self.setup.height,
            width=self.setup.width,
            num_inference_steps=self.setup.steps,
            guidance_scale=0.0,
            generator=torch.Generator("cpu").manual_seed(index + 1),
        ).images[0]

    def generate(
        self, engine: Engine, prompt: Callable[[int], str], width: int, height: int
    ) -> Callable[[int], Timings]:
        def run(index: int) -> Timings:
            request = TextToImage(
                prompt=prompt(index),
                resolution=f"{width}x{height}",
                seed=index + 1,
                steps=self.setup.steps,
                owner=OWNER,
            )
            return engine.text_to_image(request).timings

        return run

    def edit(self, engine: Engine) -> Callable[[int], Timings]:
        def run(index: int) -> Timings:
            request = Edit(
                image=self.image,
                instruction=INSTRUCTION,
                seed=index + 1,
                strength=EDIT_STRENGTH,
                steps=self.setup.steps,
            )  # no owner: the instruction is encoded every time, as plain diffusers does
            return engine.edit(request).timings

        return run

    def rows(self) -> tuple[list[Row], list[tuple[Row, Row]]]:
        """The rows in first-call order (new-size rows last) and the latent comparisons."""
        setup, size = self.setup, self.setup.size
        width, height = setup.width, setup.height
        new_width, new_height = setup.new_size
        new_size = f"{new_width}x{new_height}"

        def wide(index: int) -> str:
            return f"{self.prompt(index)}, wide"

        plain = Row("(a) plain diffusers", size, self.plain_text_to_image)
        optimised = Row(
            OPTIMISED,
            size,
            self.generate(self.engine, self.prompt, width, height),
            plain,
        )
        same_prompt = Row(
            "(b) engine, same prompt, new seed",
            size,
            self.generate(self.engine, lambda _: PROMPT, width, height),
            plain,
        )
        plain_edit = Row("(a) plain diffusers img2img", size, self.plain_img2img)
        rows = [plain, optimised, same_prompt, plain_edit]
        rows.append(Row("(b) engine edit (img2img)", size, self.edit(self.engine), plain_edit))
        comparisons = [(optimised, plain)]
        new_size_rows = [
            Row(
                "(b) engine, new prompt, new size",
                new_size,
                self.generate(self.engine, wide, new_width, new_height),
            )
        ]
        if self.fp8_engine is not None:
            fp8 = Row(
                FP8,
                size,
                self.generate(self.fp8_engine, self.prompt, width, height),
                plain,
            )
            rows.insert(3, fp8)
            comparisons.append((fp8, optimised))
            new_size_rows.append(
                Row(
                    "(c) engine fp8, new prompt, new size",
                    new_size,
                    self.generate(self.fp8_engine, wide, new_width, new_height),
                )
            )
        return rows + new_size_rows, comparisons


def run(
    setup: Setup, results: Results, deadline: Deadline, after_round: Callable[[], None]
) -> None:
    """Build, first calls, interleaved rounds; fills `results` as it goes."""
    with results.phase("build"):
        paths = Paths(setup, results)
        rows, comparisons = paths.rows()
        results.rows.extend(rows)
        bench = Bench(setup.device, paths.clock, paths.probe)

    with results.phase("first calls (compilation included; new size last)"):
        before = compiled_graphs()
        for row in rows:
            if deadline.left() <= 0:
                raise OutOfTime
            bench.first_call(row, setup.runs)
        results.notes["graphs_compiled_by_first_calls"] = compiled_graphs() - before

    with results.phase("interleaved rounds"):
        before = compiled_graphs()
        bench.rounds(results, setup.runs, deadline, comparisons, after_round)
        results.notes["graphs_compiled_in_rounds"] = compiled_graphs() - before


def report(results: Results, setup: Setup) -> None:
    """Everything after the table: compilation, recompile check, latent errors, goals."""
    live = [row for row in results.rows if row.error is None and row.first_s is not None]
    print("first call - median (compilation and first use), graphs compiled at the first call:")
    for row in live:
        extra = row.first_s - row.median if row.totals else None
        print(f"  {row.name:<38} {fmt(extra, 2):>8} s  {row.graphs_at_first_call} graphs")
    width, height = setup.new_size
    for row in results.rows:
        if row.size == f"{width}x{height}" and row.first_s is not None:
            print(
                f"recompile check: {row.name} at {row.size}, after warm-up at {setup.size} only: "
                f"{row.graphs_at_first_call} graphs compiled (want 0)"
            )
    during = results.notes.get("graphs_compiled_in_rounds")
    if during is not None:
        print(f"graphs compiled during the rounds: {during} (want 0)")
    if results.latent_errors:
        print(
            "latent relative error ||x - ref|| / ||ref||, same prompt, seed and weights "
            "(random weights: says nothing of image quality):"
        )
    for pair, errors in results.latent_errors.items():
        print(f"  {pair}: median {statistics.median(errors):.2e}, max {max(errors):.2e}")
    if results.notes["fp8_skipped"] is not None:
        print(f"(c) engine fp8: skipped: {results.notes['fp8_skipped']}")
    if setup.device.type == "cuda":
        print_goals(results.rows)


def measured(rows: list[Row], name: str) -> Row | None:
    """The row called `name` if it has timed runs."""
    return next((row for row in rows if row.name == name and row.totals), None)


def print_goals(rows: list[Row]) -> None:
    optimised = measured(rows, OPTIMISED)
    fp8 = measured(rows, FP8)

    def verdict(met: bool | None) -> str:
        return "not measured" if met is None else ("met" if met else "NOT met")

    bf16_fast = None if optimised is None else optimised.median <= GOAL_BF16_S
    beats_plain = None if optimised is None or optimised.baseline is None else optimised.ratio < 1
    fp8_fast = None if fp8 is None else fp8.median <= GOAL_FP8_S
    print(
        f"goals (H200, 1024x1024, 8 steps): bf16 optimised <= {GOAL_BF16_S} s: "
        f"{verdict(bf16_fast)}; faster than plain in this run: {verdict(beats_plain)}; "
        f"fp8 <= {GOAL_FP8_S} s: {verdict(fp8_fast)}"
    )


def main() -> None:
    args = parse_arguments()
    setup = resolve_setup(args)
    if args.tiny:
        # Two OpenMP threads on two busy shared cores stall for seconds at a time (BENCHMARKS.md,
        # app overhead); the smoke test measures no speed, so it runs on one.
        torch.set_num_threads(1)
    deadline = Deadline(args.max_seconds)
    warnings.filterwarnings("ignore", message=".*invalid value encountered in cast.*")
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    where = describe_device(setup.device)
    versions = package_versions()
    results = Results(
        meta={
            "command": " ".join(sys.argv),
            "device": where,
            "versions": versions,
            "size": setup.size,
            "steps": setup.steps,
            "compile_blocks": setup.compile_blocks,
        },
        notes={"fp8_skipped": setup.fp8_skip},
    )
    print(
        f"gpu_latency: {setup.folder.name} configs on {where} ({setup.dtype}), {setup.size}, "
        f"{setup.steps} steps, {setup.runs} rounds, {torch.get_num_threads()} CPU threads, "
        f"max {args.max_seconds or 'unlimited'} s; "
        + ", ".join(f"{name} {version}" for name, version in versions.items()),
        flush=True,
    )

    def write() -> None:
        results.write(args.out, time.perf_counter() - started)

    try:
        with deadline.enforced():
            run(setup, results, deadline, write)
    except OutOfTime:
        results.stopped = f"--max-seconds {args.max_seconds:g} reached during a call"

    print()
    if results.stopped:
        print(f"STOPPED EARLY ({results.stopped}): partial results, {results.rounds_done} rounds")
    print_table(results.rows, setup.device.type == "cuda")
    print_engine_timings(results.rows)
    report(results, setup)
    write()
    print("phases: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in results.phases))
    print(
        f"elapsed {time.perf_counter() - started:.1f} s; load average (1 min) {load_before:.2f} "
        f"at start, {os.getloadavg()[0]:.2f} at end"
    )
    label = f"ratio optimised/plain {setup.size} {setup.steps} steps (new prompt):"
    optimised = measured(results.rows, OPTIMISED)
    if optimised is None or math.isnan(optimised.ratio):
        print(f"{label} not measured")
    else:
        print(
            f"{label} {optimised.ratio:.2f} ({1 / optimised.ratio:.2f}x as fast; "
            f"{optimised.median:.3f} s vs {optimised.baseline.median:.3f} s)"
        )


if __name__ == "__main__":
    main()
