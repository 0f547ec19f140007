"""Stopping a request that is already running: cancel, an abandoned page, shutdown.

`JobControl` is the request's handle in the serving process: the web layer stops it (a script's
cancel, a closed tab, the Stop button, SIGTERM) or gives it a probe to ask. `StopBoard` carries
the decision to the GPU work, which may run in a forked ZeroGPU worker: it lives in shared memory
made before the fork, so both processes see the same cells.
"""

from __future__ import annotations

import enum
import multiprocessing
import threading
from collections.abc import Callable

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
