"""Stopping the GPU work of a Gradio event that was cancelled or abandoned.

Gradio runs a synchronous handler in a worker thread. When a script calls `job.cancel()` (or the
page's Stop button fires), Gradio's `/cancel` route cancels the event's asyncio task, but a
worker thread cannot be interrupted: the handler would go on denoising for minutes while Gradio
already counts its slot as free. When a tab is closed, Gradio only marks the event `alive =
False`. Neither reaches the handler, so:

- `CancelRelay`, an ASGI middleware, reads each `/cancel` request on its way to Gradio and stops
  the matching running request first (same event id and session);
- `RunningRequests.control()` gives each handler a `JobControl` whose probe asks Gradio whether
  the event is still alive.

The page's Stop buttons do not use Gradio's `cancels=`: its page marks a cancelled run
"complete" and then, when the run's stream breaks off, "error", in an order that depends on
timing, so a loaded server showed "Error" on every output after Stop. Stop is an event of its
own instead (`RunningRequests.stop`): the run ends at its next step, quietly, and Gradio answers
it as finished.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Collection, Generator, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from gradio.context import LocalContext

from zimage.engine.jobs import JobControl, StopReason
from zimage.engine.streaming import stream_from_thread

logger = logging.getLogger(__name__)

# A /cancel body is a few ids; anything longer is not ours to read.
MAX_CANCEL_BODY_BYTES = 4096


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


class CancelRelay:
    """ASGI middleware: tells `RunningRequests` about each `/cancel` before Gradio handles it."""

    def __init__(self, app: Any, running: RunningRequests) -> None:
        self.app = app
        self.running = running

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if not (
            scope.get("type") == "http"
            and scope.get("method") == "POST"
            and scope.get("path", "").endswith("/gradio_api/cancel")
        ):
            await self.app(scope, receive, send)
            return
        messages = await _read_body(receive)
        if messages is None:
            await _refuse_too_large(send)
            return
        self._relay(b"".join(message.get("body", b"") for message in messages))
        await self.app(scope, _replay(messages, receive), send)

    def _relay(self, body: bytes) -> None:
        try:
            request = json.loads(body)
        except ValueError:
            return
        if isinstance(request, dict):
            event_id, session = request.get("event_id"), request.get("session_hash")
            if isinstance(event_id, str) and isinstance(session, str):
                if self.running.cancel(event_id, session):
                    logger.info("request cancelled by its caller")


async def _read_body(receive: Any) -> list[dict] | None:
    """The request's messages, or None once the body passes MAX_CANCEL_BODY_BYTES."""
    messages, size = [], 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages
        size += len(message.get("body", b""))
        if size > MAX_CANCEL_BODY_BYTES:
            return None
        if not message.get("more_body", False):
            return messages


async def _refuse_too_large(send: Any) -> None:
    body = b'{"detail": "A cancel request is a few ids, not this much data."}'
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _replay(messages: list[dict], receive: Any) -> Any:
    pending = list(messages)

    async def replayed() -> dict:
        return pending.pop(0) if pending else await receive()

    return replayed
