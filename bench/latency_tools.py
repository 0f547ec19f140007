"""Instruments of bench/gpu_latency.py: rows, stage clock, latent probe, rounds and the deadline.

Nothing here knows Z-Image: a row is a named call that runs one request.
"""

from __future__ import annotations

import json
import math
import signal
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

GIB = 1024**3
STAGES = ("text_encoder", "transformer", "vae")
# A round starts only if its rows' last times, with this margin, fit in the time left.
ROUND_MARGIN = 1.25


class StageClock:
    """Time spent inside the text encoder, transformer and VAE, summed per request.

    Forward hooks record CUDA events on the GPU (read after the request has synchronised), and
    wall-clock time on the CPU. One clock serves every path: requests run one at a time.
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


class LatentProbe:
    """Keeps the latents a request hands to the VAE decoder: its denoised output."""

    def __init__(
        self, decoder: torch.nn.Module, scaling_factor: float, shift_factor: float
    ) -> None:
        self._latest: torch.Tensor | None = None
        self._scale = scaling_factor
        self._shift = shift_factor
        decoder.register_forward_pre_hook(self._keep)

    def _keep(self, _module: torch.nn.Module, arguments: tuple[Any, ...]) -> None:
        # Pipelines decode `latents / scaling_factor + shift_factor`: undo it.
        self._latest = (arguments[0].detach().float() - self._shift) * self._scale

    def take(self) -> torch.Tensor | None:
        """The latents of the last decode since the last `take`, or None."""
        latents, self._latest = self._latest, None
        return latents


def relative_error(output: torch.Tensor, reference: torch.Tensor) -> float:
    """||output - reference|| / ||reference|| in float64; nan if either is not finite."""
    output, reference = output.double(), reference.double()
    if not (output.isfinite().all() and reference.isfinite().all()):
        return math.nan
    return float((output - reference).norm() / reference.norm())


@dataclass
class Row:
    """One path at one size: its first call, then one timed run per round.

    `run(index)` makes one request (index: the round, or `--runs` for the first call) and may
    return the engine's Timings. `baseline` is the row it is compared with.
    """

    name: str
    size: str
    run: Callable[[int], Any] = field(repr=False)
    baseline: Row | None = field(default=None, repr=False)
    first_s: float | None = None
    graphs_at_first_call: int = 0
    totals: list[float] = field(default_factory=list)
    stages: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    engine_timings: list[Any] = field(default_factory=list)
    transformer_calls: int = 0
    peak_extra_bytes: int | None = None
    error: str | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.totals) if self.totals else math.nan

    def stage_median(self, stage: str) -> float:
        return statistics.median(self.stages[stage]) if self.stages[stage] else math.nan

    @property
    def other_median(self) -> float:
        if not self.totals:
            return math.nan
        return statistics.median(
            total - sum(self.stages[s][i] for s in STAGES) for i, total in enumerate(self.totals)
        )

    @property
    def ratio(self) -> float:
        """Median over the baseline's median (nan without both)."""
        if self.baseline is None or not self.totals or not self.baseline.totals:
            return math.nan
        return self.median / self.baseline.median

    def summary(self) -> dict[str, Any]:
        """The row as plain data for the results file."""
        return {
            "name": self.name,
            "size": self.size,
            "baseline": self.baseline.name if self.baseline else None,
            "first_s": self.first_s,
            "graphs_at_first_call": self.graphs_at_first_call,
            "totals_s": self.totals,
            "median_s": self.median if self.totals else None,
            "ratio_to_baseline": None if math.isnan(self.ratio) else self.ratio,
            "stage_median_s": {s: self.stage_median(s) for s in STAGES} if self.totals else None,
            "engine_timings": [asdict(t) for t in self.engine_timings],
            "transformer_calls": self.transformer_calls,
            "peak_extra_gib": None
            if self.peak_extra_bytes is None
            else self.peak_extra_bytes / GIB,
            "error": self.error,
        }


class OutOfTime(Exception):
    """The --max-seconds limit passed."""


class Deadline:
    """The run's wall-clock limit: checked between calls, and a timer for a call that runs on."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self._end = math.inf if seconds is None else time.monotonic() + seconds

    def left(self) -> float:
        return self._end - time.monotonic()

    @contextmanager
    def enforced(self) -> Iterator[None]:
        """Raise OutOfTime in the main thread if the limit passes inside the block."""
        if self.seconds is None:
            yield
            return

        def stop(*_: Any) -> None:
            raise OutOfTime

        previous = signal.signal(signal.SIGALRM, stop)
        signal.setitimer(signal.ITIMER_REAL, max(self.left(), 0.001))
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def compiled_graphs() -> int:
    """How many graphs torch.compile has made in this process so far."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


@dataclass
class Results:
    """Everything the run measured, printed at the end and written after every round."""

    meta: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    latent_errors: dict[str, list[float]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    phases: list[tuple[str, float]] = field(default_factory=list)
    rounds_done: int = 0
    stopped: str | None = None

    def write(self, folder: Path | None, elapsed_s: float) -> None:
        if folder is None:
            return
        folder.mkdir(parents=True, exist_ok=True)
        data = {
            **self.meta,
            "rounds_done": self.rounds_done,
            "stopped": self.stopped,
            "notes": self.notes,
            "rows": [row.summary() for row in self.rows],
            "latent_relative_errors": self.latent_errors,
            "phases_s": dict(self.phases),
            "elapsed_s": elapsed_s,
        }
        (folder / "gpu_latency.json").write_text(json.dumps(data, indent=1, default=str))

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Print and keep the elapsed time of a phase of the run (also when it is cut short)."""
        print(f"[{name}]", flush=True)
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            self.phases.append((name, elapsed))
            print(f"[{name}] {elapsed:.1f} s", flush=True)


def round_estimate(rows: list[Row]) -> float:
    """Seconds the next round of `rows` should take: each row's last time.

    Before the first round only first calls are known, and a compiling row's first call is
    mostly compilation: no row is then expected to take longer than the median first call.
    """
    typical_first = statistics.median(row.first_s or 0.0 for row in rows)
    return sum(
        row.totals[-1] if row.totals else min(row.first_s or 0.0, typical_first) for row in rows
    )


class Bench:
    """Runs every request through the same instruments: sync, stage clock, peak memory."""

    def __init__(self, device: torch.device, clock: StageClock, probe: LatentProbe) -> None:
        self.device = device
        self.clock = clock
        self.probe = probe
        self.cuda = device.type == "cuda"

    def _synchronize(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def _call(self, row: Row, index: int) -> tuple[float, Any]:
        self._synchronize()
        self.clock.reset()
        self.probe.take()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
            allocated_before = torch.cuda.memory_allocated(self.device)
        started = time.perf_counter()
        timings = row.run(index)
        self._synchronize()
        seconds = time.perf_counter() - started
        row.transformer_calls = self.clock.calls("transformer")
        if self.cuda:
            extra = torch.cuda.max_memory_allocated(self.device) - allocated_before
            row.peak_extra_bytes = max(row.peak_extra_bytes or 0, extra)
        return seconds, timings

    def first_call(self, row: Row, index: int) -> None:
        """The row's first request, timed apart: compilation and first-use costs land here.

        A row whose first call fails is marked with the error and left out of the rounds: one
        broken path must not cost the others' figures.
        """
        graphs_before = compiled_graphs()
        try:
            row.first_s, _ = self._call(row, index)
        except OutOfTime:
            raise
        except Exception as error:
            row.error = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        finally:
            row.graphs_at_first_call = compiled_graphs() - graphs_before
        outcome = (
            f"FAILED: {row.error}"
            if row.error
            else f"first call {row.first_s:.3f} s, {row.graphs_at_first_call} graphs compiled"
        )
        print(f"  {row.name:<38} {row.size:>9}  {outcome}", flush=True)

    def rounds(
        self,
        results: Results,
        runs: int,
        deadline: Deadline,
        comparisons: list[tuple[Row, Row]],
        after_round: Callable[[], None],
    ) -> None:
        """`runs` rounds of every live row, order rotated each round; latents compared per round.

        `comparisons` pairs (row, reference) that make the same image in a round. A round starts
        only if the rows' last times say it ends before the deadline.
        """
        live = [row for row in results.rows if row.error is None]
        for round_index in range(runs if live else 0):
            estimate = round_estimate(live)
            if estimate * ROUND_MARGIN > deadline.left():
                results.stopped = (
                    f"--max-seconds: {deadline.left():.0f} s left, a round takes ~{estimate:.1f} s"
                )
                return
            latents: dict[str, torch.Tensor | None] = {}
            shift = round_index % len(live)
            for row in live[shift:] + live[:shift]:
                seconds, timings = self._call(row, round_index)
                row.totals.append(seconds)
                for stage, stage_seconds in self.clock.seconds().items():
                    row.stages[stage].append(stage_seconds)
                if timings is not None:
                    row.engine_timings.append(timings)
                latents[row.name] = self.probe.take()
            for row, reference in comparisons:
                output, expected = latents.get(row.name), latents.get(reference.name)
                if output is not None and expected is not None:
                    key = f"{row.name} vs {reference.name}"
                    results.latent_errors.setdefault(key, []).append(
                        relative_error(output, expected)
                    )
            results.rounds_done += 1
            after_round()


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def print_table(rows: list[Row], cuda: bool) -> None:
    header = (
        f"{'path':<38} {'size':>9} {'runs':>4} {'first s':>8} {'median s':>9} {'vs (a)':>7} "
        f"{'text enc':>8} {'transf.':>8} {'VAE':>7} {'other':>7} {'DiT calls':>9} "
        f"{'peak +GiB':>9}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        if row.error:
            print(f"{row.name:<38} {row.size:>9}  FAILED: {row.error}")
            continue
        peak = "-" if row.peak_extra_bytes is None else fmt(row.peak_extra_bytes / GIB, 1)
        print(
            f"{row.name:<38} {row.size:>9} {len(row.totals):>4} {fmt(row.first_s):>8} "
            f"{fmt(row.median):>9} {fmt(row.ratio, 2):>7} "
            f"{fmt(row.stage_median('text_encoder')):>8} "
            f"{fmt(row.stage_median('transformer')):>8} {fmt(row.stage_median('vae')):>7} "
            f"{fmt(row.other_median):>7} {row.transformer_calls:>9} {peak:>9}"
        )
    unit = "CUDA events" if cuda else "wall clock"
    print("(first s: the first call, compilation included; vs (a): median / median of the plain")
    print(f" row; stage columns: median seconds inside each model per request, {unit};")
    print(" other: the rest; peak +GiB: memory above the resident weights; rows interleaved)")


def print_engine_timings(rows: list[Row]) -> None:
    print("engine Timings (median s): text encoder / denoise / VAE+PIL / total")
    for row in rows:
        if not row.engine_timings:
            continue

        def median(attribute: str, row: Row = row) -> float:
            return statistics.median(getattr(t, attribute) for t in row.engine_timings)

        print(
            f"  {row.name:<38} {median('text_encoder_s'):.3f} / {median('denoise_s'):.3f} / "
            f"{median('vae_s'):.3f} / {median('total_s'):.3f}"
        )
