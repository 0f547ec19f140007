"""bench/lora.py runs (a smoke test: its figures go in BENCHMARKS.md, never into assertions)."""

from __future__ import annotations

import pytest
import torch

from tests.test_benchmarks import run_script

pytest.importorskip("peft", reason="adapters need peft (requirements.txt)")


def test_lora_quick_times_none_one_and_two_adapters_and_both_ways_to_switch() -> None:
    completed = run_script("bench/lora.py", "--quick", "--threads", "1", timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.strip().splitlines()
    assert any(line.startswith("round 1: none ") and "2 adapters" in line for line in lines)
    assert any(line.startswith("1 adapter: median ") and "ratio to none" in line for line in lines)
    assert any(line.startswith("fused (1 adapter merged into the weights)") for line in lines)
    assert any(line.startswith("weights after fuse + unfuse") for line in lines)


@pytest.mark.skipif(torch.cuda.is_available(), reason="only without a GPU")
def test_lora_full_without_a_gpu_says_one_is_needed() -> None:
    completed = run_script("bench/lora.py", "--full", timeout=120)
    assert completed.returncode != 0
    assert "--full needs a CUDA GPU" in completed.stderr
