"""Stopping the GPU work of a Gradio event that was cancelled or abandoned.

Gradio runs a synchronous handler in a worker thread. When a script calls `job.cancel()` (or the
page's Stop button fires), Gradio's `/cancel` route cancels the event's asyncio task, but a
worker thread cannot be interrupted: the handler would go on denoising for minutes while Gradio
already counts its slot as free. When a tab is closed, Gradio only marks the event `alive =
False`. Neither reaches the handler, so:

- `CancelRelay` (zimage/guards/cancel_relay.py), an ASGI middleware, reads each `/cancel`
  request on its way to Gradio and has `RunningRequests.cancel` stop the matching running
  request first (same event id and session);
- `RunningRequests.control()` gives each handler a `JobControl` whose probe asks Gradio whether
  the event is still alive.

The page's Stop buttons do not use Gradio's `cancels=`: its page marks a cancelled run
"complete" and then, when the run's stream breaks off, "error", in an order that depends on
timing, so a loaded server showed "Error" on every output after Stop. Stop is an event of its
own instead (`RunningRequests.stop`): the run ends at its next step, quietly, and Gradio answers
it as finished.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Generator, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from gradio.context import LocalContext

from zimage.engine.jobs import JobControl, StopReason
from zimage.engine.streaming import stream_from_thread


class RunningRequests:
    """The handlers now running, by Gradio event id, with their session, function and
    JobControl; and the events a page stopped while they waited in Gradio's queue."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, tuple[str, int | None, JobControl]] = {}
        # Ids of stopped events not yet running (waiting in Gradio's queue): forgotten as they
        # start, or at the next Stop once they left the queue unstarted (their page closed).
        self._stopped_waiting: set[str] = set()

    @contextmanager
    def control(self) -> Iterator[JobControl]:
        """A JobControl for the Gradio event this thread is handling, registered while it runs
        (already stopped if its page pressed Stop while it waited)."""
        event_id = LocalContext.event_id.get(None)
        blocks = LocalContext.blocks.get(None)
        if event_id is None or blocks is None:  # called outside a queued event
            yield JobControl()
            return
        event = next((e for e in _gradio_events(blocks) if e._id == event_id), None)
        control = JobControl(probe=lambda: _abandoned(event))
        session = getattr(event, "session_hash", "") if event is not None else ""
        with self._lock:
            self._running[event_id] = (session, _function_of(event), control)
            stopped = event_id in self._stopped_waiting
            self._stopped_waiting.discard(event_id)
        if stopped:
            control.stop(StopReason.CANCELLED)
        try:
            yield control
        finally:
            with self._lock:
                self._running.pop(event_id, None)

    def cancel(self, event_id: str, session_hash: str) -> bool:
        """Stop the running request of that event, if that session owns it."""
        with self._lock:
            found = self._running.get(event_id)
        if found is None or found[0] != session_hash:
            return False
        found[2].stop(StopReason.CANCELLED)
        return True

    def stop(self, session_hash: str, functions: Collection[int]) -> int:
        """The page's Stop, from its own Gradio event: end that session's running requests of
        these Gradio functions at their next step, and those still waiting as they start.
        Returns how many were running."""
        events = _gradio_events(LocalContext.blocks.get(None))
        theirs = {
            event._id
            for event in events
            if event.session_hash == session_hash and _function_of(event) in functions
        }
        with self._lock:
            self._stopped_waiting &= {event._id for event in events}
            self._stopped_waiting |= theirs
            found = [
                control
                for session, function, control in self._running.values()
                if session == session_hash and function in functions
            ]
        for control in found:
            control.stop(StopReason.CANCELLED)
        return len(found)

    def __len__(self) -> int:
        with self._lock:
            return len(self._running)


Report = TypeVar("Report")
Result = TypeVar("Result")
Outputs = TypeVar("Outputs")


def stream_while_running(
    control: JobControl,
    work: Callable[[Callable[[Report], None]], Result],
    as_outputs: Callable[[Report], Outputs],
) -> Generator[Outputs, None, Result]:
    """Run `work(report)` aside and yield what it reports (preview frames, the text so far) as
    a handler's outputs, then return its result. A stream closed early (Stop, cancel) stops the
    work at its next step."""
    try:
        frames = stream_from_thread(work)
        while True:
            yield as_outputs(next(frames))
    except StopIteration as finished:
        return finished.value
    except GeneratorExit:
        control.stop(StopReason.CANCELLED)
        raise


def _gradio_events(blocks: Any) -> list[Any]:
    """Gradio's events waiting in its queue or handed to its workers (read from a worker
    thread: copies of the lists, which the event loop changes)."""
    queue = getattr(blocks, "_queue", None)
    event_queues = list(getattr(queue, "event_queue_per_concurrency_id", {}).values())
    waiting = [event for event_queue in event_queues for event in list(event_queue.queue)]
    jobs = list(getattr(queue, "active_jobs", None) or ())
    return waiting + [event for job in jobs for event in job or ()]


def _function_of(event: Any) -> int | None:
    return getattr(getattr(event, "fn", None), "_id", None)


def _abandoned(event: Any) -> StopReason | None:
    # Gradio sets `alive = False` when the page or script that asked has disconnected.
    if event is not None and not getattr(event, "alive", True):
        return StopReason.CANCELLED
    return None
