"""Smoke tests of the benchmark scripts: they run, and the full-size configs are Z-Image Turbo's."""

from __future__ import annotations

import json
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench import gpu_latency
from bench.latency_tools import (
    Bench,
    Deadline,
    LatentProbe,
    Results,
    Row,
    StageClock,
    round_estimate,
)
from zimage import presets

ROOT = Path(__file__).resolve().parents[2]


# A bound that only turns a hang into a failure: a loaded 2-core machine takes minutes.
SCRIPT_TIMEOUT_S = 900


def run_script(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
    )


def test_gpu_latency_tiny_interleaves_every_path_and_ends_with_the_ratio(tmp_path) -> None:
    completed = run_script("bench/gpu_latency.py", "--tiny", "--runs", "1", "--out", str(tmp_path))
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.strip().splitlines()
    assert lines[-1].startswith("ratio optimised/plain 256x256 8 steps (new prompt): ")
    assert "not measured" not in lines[-1]
    names = (
        "(a) plain diffusers",
        "(b) engine, new prompt",
        "(b) engine, same prompt, new seed",
        "(a) plain diffusers img2img",
        "(b) engine edit (img2img)",
        "(b) engine, new prompt, new size",
    )
    for name in names:
        assert any(line.startswith(f"{name} ") for line in lines), name
    assert (
        "recompile check: (b) engine, new prompt, new size at 288x256, after warm-up at "
        "256x256 only: 0 graphs compiled (want 0)" in lines
    )
    assert "graphs compiled during the rounds: 0 (want 0)" in lines
    # On the CPU both paths run the same float32 kernels: the engine makes diffusers' image.
    assert "  (b) engine, new prompt vs (a) plain diffusers: median 0.00e+00, max 0.00e+00" in lines
    assert any(
        line.startswith("(c) engine fp8: skipped: float8 needs a CUDA GPU of compute capability")
        for line in lines
    )
    assert not any(line.startswith("(c) engine fp8, new prompt") for line in lines)

    results = json.loads((tmp_path / "gpu_latency.json").read_text())
    assert results["rounds_done"] == 1 and results["stopped"] is None
    assert [row["name"] for row in results["rows"]] == list(names)
    assert all(len(row["totals_s"]) == 1 and row["first_s"] > 0 for row in results["rows"])


def cpu_bench() -> Bench:
    probe = LatentProbe(torch.nn.Identity(), 1.0, 0.0)
    return Bench(torch.device("cpu"), StageClock(torch.device("cpu")), probe)


def test_gpu_latency_rows_alternate_within_every_round() -> None:
    calls: list[str] = []
    rows = [Row(name, "1x1", lambda _, name=name: calls.append(name)) for name in "abc"]
    results = Results(meta={})
    results.rows.extend(rows)
    bench = cpu_bench()
    for row in rows:
        bench.first_call(row, 99)
    calls.clear()
    bench.rounds(results, 3, Deadline(None), [], after_round=lambda: None)
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert results.rounds_done == 3


def test_gpu_latency_round_estimate_leaves_compilation_out() -> None:
    rows = [Row(name, "1x1", print) for name in "abc"]
    rows[0].first_s, rows[1].first_s, rows[2].first_s = 240.0, 0.5, 0.7  # a compiled first
    assert round_estimate(rows) == pytest.approx(0.7 + 0.5 + 0.7)
    rows[0].totals.append(0.4)
    assert round_estimate(rows) == pytest.approx(0.4 + 0.5 + 0.7)


def test_gpu_latency_a_path_that_fails_is_reported_and_the_others_still_run(capsys) -> None:
    calls: list[str] = []

    def broken(_: int) -> None:
        raise RuntimeError("no kernel for this\nsecond line")

    rows = [
        Row("works", "1x1", lambda _: calls.append("works")),
        Row("broken", "1x1", broken),
        Row("also works", "1x1", lambda _: calls.append("also works")),
    ]
    results = Results(meta={})
    results.rows.extend(rows)
    bench = cpu_bench()
    for row in rows:
        bench.first_call(row, 99)
    bench.rounds(results, 2, Deadline(None), [], after_round=lambda: None)
    assert rows[1].error == "RuntimeError: no kernel for this"
    assert calls.count("works") == calls.count("also works") == 3
    assert [len(row.totals) for row in rows] == [2, 0, 2]
    printed = capsys.readouterr().out.splitlines()
    assert any(
        line.split()[:2] == ["broken", "1x1"]
        and line.endswith("FAILED: RuntimeError: no kernel for this")
        for line in printed
    )


def test_gpu_latency_max_seconds_ends_cleanly_with_partial_rows(tmp_path) -> None:
    completed = run_script(
        "bench/gpu_latency.py",
        "--tiny",
        "--runs",
        "1000",
        "--max-seconds",
        "2",
        "--out",
        str(tmp_path),
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.strip().splitlines()
    assert any(line.startswith("STOPPED EARLY (--max-seconds") for line in lines)
    assert any(line.startswith("(a) plain diffusers ") for line in lines)
    assert lines[-1].startswith("ratio optimised/plain 256x256 8 steps (new prompt): ")
    results = json.loads((tmp_path / "gpu_latency.json").read_text())
    assert results["stopped"].startswith("--max-seconds")
    assert results["rounds_done"] < 1000


def refusal_of(script: str, *arguments: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """What `python bench/<script>.py arguments` exits with, run in this process: an argument
    refusal comes before any work, and the libraries are imported here already (a process of
    its own would spend ~15 s importing them to print one line)."""
    monkeypatch.setattr(sys, "argv", [f"bench/{script}.py", *arguments])
    monkeypatch.syspath_prepend(str(ROOT / "bench"))  # as `python bench/x.py` puts it first
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(str(ROOT / "bench" / f"{script}.py"), run_name="__main__")
    return str(exited.value.code)


@pytest.mark.skipif(torch.cuda.is_available(), reason="only without a GPU")
def test_gpu_latency_without_a_gpu_says_one_is_needed(monkeypatch) -> None:
    refusal = refusal_of("gpu_latency", "--runs", "1", monkeypatch=monkeypatch)
    assert "needs a CUDA GPU" in refusal and "--tiny" in refusal


@pytest.mark.skipif(torch.cuda.is_available(), reason="only without a GPU")
@pytest.mark.parametrize("script", ["live_preview", "batch", "enhancer", "lora"])
def test_full_size_without_a_gpu_says_one_is_needed(script: str, monkeypatch) -> None:
    assert "--full needs a CUDA GPU" in refusal_of(script, "--full", monkeypatch=monkeypatch)


def test_lora_quick_times_none_one_and_two_adapters_and_both_ways_to_switch() -> None:
    pytest.importorskip("peft", reason="adapters need peft (requirements.txt)")
    completed = run_script("bench/lora.py", "--quick", "--threads", "1")
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.strip().splitlines()
    assert any(line.startswith("round 1: none ") and "2 adapters" in line for line in lines)
    assert any(line.startswith("1 adapter: median ") and "ratio to none" in line for line in lines)
    assert any(line.startswith("fused (1 adapter merged into the weights)") for line in lines)
    assert any(line.startswith("weights after fuse + unfuse") for line in lines)


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


def test_app_overhead_quick_measures_the_app_beside_a_bare_gradio_app() -> None:
    completed = run_script("bench/app_overhead.py", "--quick")
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.strip().splitlines()
    last = lines[-1]
    assert last.startswith("overhead over bare Gradio median "), last
    assert " ms (plain HTTP), " in last and " ms (gradio_client); server CPU " in last
    assert "; cold start ratio app/bare " in last
    assert "same pixels (engine, app, bare) yes" in lines
    assert "app exit status 0 after SIGTERM" in lines
    assert "bare exit status 0 after SIGTERM" in lines
    for side in ("engine", "app http", "bare http", "bare client", "app client"):
        assert any(line.startswith(f"{side} ") and " median " in line for line in lines), side
    for pair in ("app - bare, http", "app - bare, client"):
        assert any(line.startswith(pair) for line in lines), pair


def test_throughput_reports_the_ratio_and_why_it_falls_short() -> None:
    completed = run_script(
        "bench/throughput.py",
        "--compare",
        "2",
        "--clients",
        "2",
        "--requests",
        "2",
        "--gpu-seconds",
        "0.1",
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.strip().splitlines()
    assert lines[-1].startswith("ratio to ideal: slots 2 "), lines[-1]
    (measured,) = [line for line in lines if line.startswith("round 1 slots 2: ")]
    assert "(4 answered); GPU busy " in measured and "CPU per request: server " in measured
    assert any(line.startswith("slots 2: median ") for line in lines)


def test_live_preview_quick_measures_both_paths_and_ends_with_the_ratio() -> None:
    completed = run_script("bench/live_preview.py", "--quick", "--threads", "1")
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.strip().splitlines()
    assert lines[-1].startswith("ratio per step with/without preview 256x256 batch 1: ")
    for row in ("fit at start-up: ", "(a) step without preview: ", "(b) step with preview: "):
        assert any(line.startswith(row) for line in lines), row


def test_upload_flood_quick_measures_what_the_launched_app_keeps() -> None:
    completed = run_script(
        "bench/upload_flood.py", "--uploads", "5", "--mb", "1", "--unused-s", "2", "--wait-s", "6"
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.strip().splitlines()
    assert lines[0] == "flood      5 uploads x 1 MB from one client, one at a time"
    assert lines[-1].startswith("this       answers 5 x 200; flood ")
    assert lines[-1].endswith("held right after 5.0 MB; held 6 s later 0.0 MB")


def test_abuse_sessions_section_runs_against_the_launched_app() -> None:
    completed = run_script("bench/abuse.py", "--sections", "sessions", "--sessions", "10,30")
    assert completed.returncode == 0, completed.stderr[-3000:]
    summary = json.loads(completed.stdout[completed.stdout.index('{\n  "summary"') :])["summary"]
    sessions = summary["sessions"]
    assert [row["sessions"] for row in sessions["rows"]] == [0, 10, 30]
    assert sessions["exit_status"] == 0 and sessions["last_over_first"] > 0


def test_replicas_quick_compares_two_replicas_and_postgres_with_one_and_sqlite() -> None:
    from tests.postgres_server import require_postgres_bin

    require_postgres_bin()
    completed = run_script("bench/replicas.py", "--quick")
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    lines = completed.stdout.strip().splitlines()
    last = lines[-1]
    assert last.startswith("ratio two replicas + PostgreSQL / one replica + SQLite: throughput ")
    assert "latency one at a time " in last and "rate-limit round trip " in last
    assert any(line.startswith("database   PostgreSQL ") for line in lines)
    stored = next(line for line in lines if line.startswith("rows stored "))
    postgres, sqlite = re.findall(r"(\d+) of (\d+)", stored)
    assert postgres[0] == postgres[1] and sqlite[0] == sqlite[1], stored
    # Counting locally when PostgreSQL misses the replicas' 0.25 s deadline is the Space working
    # as designed on a busy machine: the smoke test asks that the count is reported, and the
    # round-trip measure (a roomy deadline, "CHECK FAILED" on any fallback) that it was shared.
    assert any(
        re.fullmatch(r"local fallback +\d+ warnings in P1 and P2 logs \(want 0\)", line)
        for line in lines
    ), lines
    assert not any(line.startswith("CHECK FAILED") for line in lines)
    for row in ("rate limit, shared (as replicas count) ", "rate limit, in memory "):
        assert any(line.startswith(row) for line in lines), row


def test_batch_quick_times_both_runs_and_ends_with_the_ratio() -> None:
    completed = run_script("bench/batch.py", "--quick", "--threads", "1")
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.strip().splitlines()
    assert lines[-1].startswith(
        "ratio time per image 4-image batch / 1-image run 256x256 2 steps: "
    )
    assert any(line.startswith("round 1: 1 image ") for line in lines)


def test_batch_memory_finds_the_preview_engine_within_the_estimates_figures() -> None:
    completed = run_script("bench/batch_memory.py", "--threads", "1")
    assert completed.returncode == 0, completed.stderr[-3000:]
    output = completed.stdout
    for part in ("transformer per token", "vae per pixel"):
        measured, used = re.search(
            part + r": ([\d.]+) x .* at most \(zimage/engine/batch_memory.py uses ([\d.]+)\)",
            output,
        ).groups()
        assert float(measured) <= float(used), part
    for guided in ("", " with guidance"):
        run = re.search(rf"engine run 4 x 320x320{guided}: .* estimate/peak ([\d.]+)", output)
        assert 1.0 <= float(run[1]) <= 1.5, guided


def test_enhancer_runs_on_the_preview_and_ends_with_the_ratio() -> None:
    arguments = "--runs 1 --max-new-tokens 8 --size 256x256 --steps 2 --threads 1"
    completed = run_script("bench/enhancer.py", *arguments.split())
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.strip().splitlines()
    assert "  chat model's own parameter bytes: 0 (want 0)" in lines
    assert any(line.startswith("  seeded  tokens     8  first token ") for line in lines)
    assert lines[-1].startswith("ratio enhance/image (seeded, 8 tokens): ")


def test_enhancer_full_builder_gives_an_enhancer_sharing_the_encoders_weights() -> None:
    """The --full code path on the scaled-down configs (the full size needs a GPU)."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import enhancer as enhancer_bench
    finally:
        sys.path.remove(str(ROOT / "bench"))
    engine = enhancer_bench.build_full(enhancer_bench.CONFIGS / "tiny", "cpu", torch.float32)
    enhancer = enhancer_bench.enhancer_for(engine, max_new_tokens=4)
    assert enhancer_bench.extra_parameter_bytes(enhancer, engine.pipeline.text_encoder) == 0
    assert len(list(enhancer.stream("A lighthouse on a basalt cliff", seed=1))) <= 4
