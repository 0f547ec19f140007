"""A GPU job: what crosses to the GPU work and back, and how a running one is stopped.

On a ZeroGPU Space the GPU work runs in a worker forked from the serving process, which gets its
arguments and gives its results by pickling: `GpuJob` goes in, events (`StepDone`, `TextSoFar`)
and the outcome (`JobDone`, `JobFailed`) come back, all plain data.

Stopping (a script's cancel, a closed tab, the Stop button, SIGTERM): `JobControl` is the
request's handle in the serving process, which the web layer stops or gives a probe to ask.
`StopBoard` carries the decision to the GPU work: it lives in shared memory made before the
fork, so both processes see the same cells.
"""

from __future__ import annotations

import enum
import multiprocessing
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from zimage.engine.errors import EngineError
from zimage.engine.latent_preview import LatentPreview
from zimage.engine.results import Request, Timings

ProgressCallback = Callable[[int, int], None]
# Receives each step's preview frames: one small uint8 RGB array per image being made.
PreviewCallback = Callable[[list[np.ndarray]], None]
# Receives the enhanced prompt so far, after each token.
TextCallback = Callable[[str], None]

# Job ids start at 1; this one means "every job, now and later" (shutdown).
EVERY_JOB = -1


class StopReason(enum.IntEnum):
    CANCELLED = 1
    SHUTTING_DOWN = 2


class JobControl:
    """Whether one request should stop, and who to tell at once when it must."""

    def __init__(self, probe: Callable[[], StopReason | None] | None = None) -> None:
        self._probe = probe
        self._lock = threading.Lock()
        self._reason: StopReason | None = None
        self._listener: Callable[[StopReason], None] | None = None

    def stop(self, reason: StopReason) -> None:
        """Ask the request to stop; the GPU work ends at its next step."""
        with self._lock:
            if self._reason is None:
                self._reason = reason
            listener, reason = self._listener, self._reason
        if listener is not None:
            listener(reason)

    def stop_reason(self) -> StopReason | None:
        """Why the request must stop (asking the probe too), or None to carry on."""
        if self._reason is None and self._probe is not None:
            probed = self._probe()
            if probed is not None:
                self.stop(probed)
        return self._reason

    def on_stop(self, listener: Callable[[StopReason], None] | None) -> None:
        """Call `listener` as soon as a stop is asked for (at once if it already was)."""
        with self._lock:
            self._listener = listener
            reason = self._reason
        if listener is not None and reason is not None:
            listener(reason)


@dataclass(frozen=True)
class RunHooks:
    """How a door follows one request while it runs: its stop control, and optional callbacks
    for progress (step, total), each step's preview frames, the enhanced text so far and the
    bytes of an adapter being fetched (done, total)."""

    control: JobControl = field(default_factory=JobControl)
    progress: ProgressCallback | None = None
    on_preview: PreviewCallback | None = None
    on_text: TextCallback | None = None
    fetching: ProgressCallback | None = None


class StopBoard:
    """Two cells of shared memory: the job to stop and why; readable in a forked worker."""

    def __init__(self) -> None:
        # Made before any fork, so a ZeroGPU worker forked later shares these very cells.
        self._cells = multiprocessing.RawArray("q", 2)

    def request_stop(self, job_id: int, reason: StopReason) -> None:
        if self._cells[0] == EVERY_JOB:
            return  # shutting down already stops every job
        self._cells[1] = int(reason)  # the reason first: a reader that sees the id sees it too
        self._cells[0] = job_id

    def stop_everything(self, reason: StopReason) -> None:
        self.request_stop(EVERY_JOB, reason)

    def reason_for(self, job_id: int) -> StopReason | None:
        """Why job `job_id` must stop, or None."""
        if self._cells[0] in (job_id, EVERY_JOB):
            return StopReason(self._cells[1])
        return None

    def reason_for_every_job(self) -> StopReason | None:
        """Why no job may run any more (shutdown), or None."""
        return self.reason_for(EVERY_JOB)


@dataclass(frozen=True)
class GpuJob:
    """One request's GPU work. `deadline` is a `time.monotonic()` value (one clock per machine,
    so it holds in a forked worker); `prompt_embeds` are the owner's reused embeddings."""

    job_id: int
    request: Request
    deadline: float
    time_limit_s: float
    prompt_embeds: list[torch.Tensor] | None = None
    keep_prompt_embeds: bool = False
    want_previews: bool = False
    preview_map: LatentPreview | None = None


@dataclass(frozen=True)
class StepDone:
    """A finished denoising step, with its preview frames when they were asked for."""

    step: int
    total: int
    previews: tuple[np.ndarray, ...] = ()


@dataclass(frozen=True)
class TextSoFar:
    """The prompt enhancer's rewrite so far, after one more token."""

    text: str


@dataclass(frozen=True)
class JobDone:
    """What a GPU job made: images, or the enhanced prompt's `text`."""

    images: list[Image.Image]
    method: str
    timings: Timings
    steps_run: int
    prompt_embeds: list[torch.Tensor] | None = None
    # A preview map fitted in this job (the first that asked for previews), for the next ones.
    preview_map: LatentPreview | None = None
    text: str = ""


@dataclass(frozen=True)
class JobFailed:
    """An EngineError raised in the GPU work, carried back as data: a ZeroGPU worker would
    otherwise replace its message with the exception's class name."""

    error: EngineError


JobEvent = StepDone | TextSoFar | JobDone | JobFailed
