"""What the engine benchmarks share (bench/batch.py, bench/lora.py): the preview engine on the
CPU, or with `--full` the full Z-Image-Turbo architecture with random bfloat16 weights on a CUDA
GPU (bench/configs/full; speed does not depend on weight values); `--threads` for the CPU."""

from __future__ import annotations

import argparse

import torch

from bench.gpu_latency import CONFIGS, build_pipeline
from zimage.engine.engine import Engine
from zimage.engine.loading import create_preview_engine


def add_engine_options(parser: argparse.ArgumentParser, quick: str) -> None:
    """--full, --quick (its meaning in `quick`) and --threads."""
    parser.add_argument("--full", action="store_true", help="full-size model on a CUDA GPU")
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads (1 avoids stalls on a busy 2-core VM)"
    )


def bench_engine(args: argparse.Namespace, script: str) -> tuple[Engine, str]:
    """The engine the options ask for, and a line saying what and where it is."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.full and not torch.cuda.is_available():
        raise SystemExit(f"{script} --full needs a CUDA GPU")
    if args.full:
        pipeline = build_pipeline(CONFIGS / "full", "cuda", torch.bfloat16)
        engine = Engine(pipeline, kind="diffusers", description="full-size, random weights")
    else:
        engine = create_preview_engine()
    device = engine.device
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    model = "full-size Z-Image, random bf16 weights" if args.full else "preview engine"
    return engine, f"{model} on {where}"
