"""Time per image with 0, 1 and 2 LoRA adapters, and the two ways to switch them (issue 26).

    python bench/lora.py [--size 512x512] [--steps 8] [--rank 16] [--runs 5]
                         [--full] [--quick] [--threads N]

The engine's text-to-image (zimage/engine/engine.py) with random LoRA files loaded the way the
Space loads ZIMAGE_LORAS (zimage/engine/adapters.py: one PEFT adapter each, chosen per run with
`set_adapters`), in rounds: each round runs no adapter, one and two, the order rotating between
rounds, so that a drift in the machine's speed falls on all. Per round: each time / the
no-adapter time; the medians are the result (goal on a GPU: one adapter <= 1.10).

The other way, fuse/unfuse (the adapter merged into the weights for a run, taken out after), is
timed too: a run on fused weights, and the fuse + unfuse a switch costs. Whether unfusing gives
back the very weights is printed as well: the Space's promise that a run without adapters is the
bare model, bit for bit, rests on it.

Default: the preview engine on the CPU. `--full`: the full Z-Image-Turbo architecture with random
bfloat16 weights on a CUDA GPU (bench/configs/full); the adapters then change every attention
and feed-forward layer of the 30 main blocks. `--quick`: 256x256, 2 steps, 1 round.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.engine_options import add_engine_options, bench_engine  # noqa: E402
from bench.gpu_latency import parse_size  # noqa: E402
from zimage import presets  # noqa: E402
from zimage.engine.engine import Engine  # noqa: E402
from zimage.tools.adapters import AdapterUse  # noqa: E402
from zimage.tools.text_to_image import TextToImage  # noqa: E402

# The layers trainers adapt: attention and feed-forward of the main blocks.
ADAPTED = re.compile(r"^layers\.\d+\.(attention\.(to_q|to_k|to_v|to_out\.0)|feed_forward\.w[123])$")
CHOICES = {
    "none": (),
    "1 adapter": (AdapterUse("lora_0", 0.8),),
    "2 adapters": (AdapterUse("lora_0", 0.8), AdapterUse("lora_1", 0.6)),
}


def random_lora(engine: Engine, rank: int, seed: int, folder: Path) -> Path:
    """A Kohya-layout LoRA of `rank` for every adapted layer of the engine's transformer."""
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, module in engine.pipeline.transformer.named_modules():
        module = getattr(module, "base_layer", module)  # an adapter loaded before wraps it
        if ADAPTED.match(name) and isinstance(module, torch.nn.Linear):
            key = "lora_unet_" + name.replace(".", "_")
            tensors[f"{key}.lora_down.weight"] = (
                torch.randn(rank, module.in_features, generator=generator) * 0.02
            )
            tensors[f"{key}.lora_up.weight"] = (
                torch.randn(module.out_features, rank, generator=generator) * 0.02
            )
            tensors[f"{key}.alpha"] = torch.tensor(float(rank))
    path = folder / f"lora-{seed}.safetensors"
    save_file(tensors, str(path))
    return path


def timed(engine: Engine, work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    if engine.device.type == "cuda":
        torch.cuda.synchronize(engine.device)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="512x512", help="WIDTHxHEIGHT")
    parser.add_argument("--steps", type=int, default=presets.DEFAULT_STEPS)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--runs", type=int, default=5, help="rounds (each choice once per round)")
    add_engine_options(parser, quick="256x256, 2 steps, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.size, args.steps, args.runs = "256x256", 2, 1
    width, height = parse_size(args.size)
    engine, what = bench_engine(args, "bench/lora.py")
    engine.time_limit_s = 3600
    with tempfile.TemporaryDirectory() as folder:
        for index in range(2):
            engine.adapters.load(
                f"lora_{index}", random_lora(engine, args.rank, index, Path(folder)), "bench"
            )
    print(
        f"lora: {what}, {width}x{height}, {args.steps} steps, rank {args.rank}, "
        f"{args.runs} rounds, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )

    def run(uses: tuple[AdapterUse, ...], index: int) -> float:
        request = TextToImage(
            prompt=f"A lighthouse on a basalt cliff at dusk, take {index}",
            resolution=f"{width}x{height}",
            seed=index,
            steps=args.steps,
            adapters=uses,
        )
        return timed(engine, lambda: engine.text_to_image(request))

    for uses in CHOICES.values():
        run(uses, 0)  # warm-up: first-call work, allocator
    seconds: dict[str, list[float]] = {name: [] for name in CHOICES}
    ratios: dict[str, list[float]] = {name: [] for name in CHOICES if name != "none"}
    names = list(CHOICES)
    for round_index in range(args.runs):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            seconds[name].append(run(CHOICES[name], round_index + 1))
        for name in ratios:
            ratios[name].append(seconds[name][-1] / seconds["none"][-1])
        shown = ", ".join(f"{name} {seconds[name][-1]:.3f} s" for name in names)
        print(f"round {round_index + 1}: {shown}", flush=True)

    probe = engine.pipeline.transformer.get_submodule("layers.0.attention.to_q")
    before = probe.base_layer.weight.detach().clone()
    fused, switches = [], []
    activate = engine.adapters.activate
    for round_index in range(args.runs):
        activate(CHOICES["1 adapter"])
        fuse_s = timed(engine, lambda: engine.pipeline.fuse_lora(adapter_names=["lora_0"]))
        # The weights carry the adapter, and merged layers run only their base layer; the run
        # must not switch adapters (disabling them would unfuse at the first step).
        engine.adapters.activate = lambda uses: None
        fused.append(run((), round_index + 1))
        engine.adapters.activate = activate
        unfuse_s = timed(engine, engine.pipeline.unfuse_lora)
        switches.append(fuse_s + unfuse_s)
    drift = (probe.base_layer.weight.detach() - before).abs().max().item()
    activate_s = statistics.median(
        timed(engine, lambda uses=uses: engine.adapters.activate(uses))
        for uses in CHOICES.values()
        for _ in range(3)
    )

    none_s = statistics.median(seconds["none"])
    for name in names:
        median_s = statistics.median(seconds[name])
        ratio = f"; ratio to none {statistics.median(ratios[name]):.3f}" if name in ratios else ""
        print(f"{name}: median {median_s:.3f} s an image{ratio}")
    fused_s = statistics.median(fused)
    switch_s = statistics.median(switches)
    print(f"set_adapters switch: median {activate_s * 1000:.2f} ms")
    print(
        f"fused (1 adapter merged into the weights): median {fused_s:.3f} s an image, ratio to none "
        f"{fused_s / none_s:.3f}; fuse + unfuse per switch {switch_s * 1000:.1f} ms; per request "
        f"with a switch {(fused_s + switch_s) / none_s:.3f} of none"
    )
    print(
        f"weights after fuse + unfuse x{args.runs}: largest change {drift:.3g} (0 = given back exactly)"
    )
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
