"""Smoke tests of the benchmark scripts: they run, and the full-size configs are Z-Image Turbo's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench import gpu_latency
from zimage import presets

ROOT = Path(__file__).resolve().parent.parent


def run_script(*arguments: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *arguments], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_gpu_latency_tiny_runs_every_path_and_ends_with_the_ratio() -> None:
    completed = run_script("bench/gpu_latency.py", "--tiny", "--runs", "1")
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.strip().splitlines()
    assert lines[-1].startswith("ratio optimised/plain 256x256 8 steps (new prompt): ")
    for row in (
        "(a) plain diffusers ",
        "(a) plain diffusers img2img",
        "(b) engine, new prompt ",
        "(b) engine, same prompt, new seed",
        "(b) engine, new prompt, 2nd preset",
        "(b) engine edit (img2img)",
    ):
        assert any(line.startswith(row) for line in lines), row
    assert "graphs compiled after warm-up (timed runs, both presets): 0 (want 0)" in lines


@pytest.mark.skipif(torch.cuda.is_available(), reason="only without a GPU")
def test_gpu_latency_without_a_gpu_says_one_is_needed() -> None:
    completed = run_script("bench/gpu_latency.py", "--runs", "1", timeout=120)
    assert completed.returncode != 0
    assert "needs a CUDA GPU" in completed.stderr
    assert "--tiny" in completed.stderr


def test_full_size_configs_build_z_image_turbo_on_the_meta_device() -> None:
    pipeline = gpu_latency.build_pipeline(
        gpu_latency.CONFIGS / "full", "meta", dtype=torch.bfloat16
    )

    def parameters(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    assert parameters(pipeline.transformer) == pytest.approx(6.15e9, rel=0.01)
    assert parameters(pipeline.text_encoder) == pytest.approx(4.02e9, rel=0.01)
    assert parameters(pipeline.vae) == pytest.approx(83.8e6, rel=0.01)
    assert pipeline.transformer.dtype == torch.bfloat16
    assert pipeline.transformer.config.axes_lens == [1536, 512, 512]
    assert pipeline.text_encoder.config.num_key_value_heads == 8
    assert pipeline.vae.config.scaling_factor == 0.3611
    assert pipeline.vae.config.shift_factor == 0.1159
    assert pipeline.scheduler.config.shift == 3.0


def test_warm_up_sizes_are_the_1024_presets_scaled_to_the_benchmark_size() -> None:
    assert gpu_latency.scaled_presets(1024, 1024) == presets.RESOLUTION_PRESETS["1024"]
    small = gpu_latency.scaled_presets(256, 256)
    assert small[0] == "256x256"
    for size in small:
        width, height = (int(side) for side in size.split("x"))
        assert width % 16 == 0 and height % 16 == 0


def test_app_overhead_quick_measures_against_the_launched_app() -> None:
    completed = run_script("bench/app_overhead.py", "--quick")
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.strip().splitlines()
    assert lines[-1].startswith("overhead median ")
    assert "same pixels (a vs b)       yes" in lines
    assert "app exit status            0 after SIGTERM" in lines


def test_abuse_sessions_section_runs_against_the_launched_app() -> None:
    completed = run_script(
        "bench/abuse.py", "--sections", "sessions", "--sessions", "10,30", timeout=600
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    summary = json.loads(completed.stdout[completed.stdout.index('{\n  "summary"') :])["summary"]
    sessions = summary["sessions"]
    assert [row["sessions"] for row in sessions["rows"]] == [0, 10, 30]
    assert sessions["exit_status"] == 0 and sessions["last_over_first"] > 0
