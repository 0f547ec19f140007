"""The page's Stop: its own event, not Gradio's `cancels=`. It ends the session's running requests
of the stopped functions at their next step, and the ones still waiting in Gradio's queue as
they start; other sessions, other functions and later runs go on. (The browser tests press the real
button against the launched app: tests/browser/test_running.py.)"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from types import SimpleNamespace

from gradio.context import LocalContext

from zimage.engine.jobs import JobControl, StopReason
from zimage.page.running import RunningRequests

GENERATE, ENHANCE, EDIT = 5, 6, 7


class Gradio:
    """What RunningRequests reads of Gradio's queue (the same attributes, checked against the
    launched app by tests/browser/test_running.py): events waiting per concurrency id, and the
    jobs handed to workers."""

    def __init__(self) -> None:
        self.waiting: list[SimpleNamespace] = []
        self.blocks = SimpleNamespace(
            _queue=SimpleNamespace(
                event_queue_per_concurrency_id={"gpu": SimpleNamespace(queue=self.waiting)},
                active_jobs=[],
            )
        )

    def event(self, event_id: str, session: str, function: int) -> str:
        """A new event, waiting in the queue."""
        self.waiting.append(
            SimpleNamespace(
                _id=event_id, session_hash=session, fn=SimpleNamespace(_id=function), alive=True
            )
        )
        return event_id

    @contextmanager
    def handling(self, running: RunningRequests, event_id: str) -> Iterator[JobControl]:
        """The event starts (queue -> worker) and its handler gets `running.control()`."""
        event = next(event for event in self.waiting if event._id == event_id)
        self.waiting.remove(event)
        self.blocks._queue.active_jobs.append([event])
        context = contextvars.copy_context()

        def enter() -> tuple[JobControl, ExitStack]:
            LocalContext.event_id.set(event_id)
            LocalContext.blocks.set(self.blocks)
            stack = ExitStack()
            return stack.enter_context(running.control()), stack

        control, stack = context.run(enter)
        with stack:
            yield control

    def press_stop(self, running: RunningRequests, session: str, functions: set[int]) -> int:
        """The Stop button's own event calls `running.stop`."""

        def press() -> int:
            LocalContext.blocks.set(self.blocks)
            return running.stop(session, functions)

        return contextvars.copy_context().run(press)

    def leave(self, event_id: str) -> None:
        """The event's page closed while it waited: Gradio drops it from the queue."""
        self.waiting[:] = [event for event in self.waiting if event._id != event_id]


def test_stop_ends_that_sessions_runs_of_those_functions_and_nothing_else() -> None:
    gradio, running = Gradio(), RunningRequests()
    with ExitStack() as stack:
        mine = stack.enter_context(gradio.handling(running, gradio.event("a", "s1", GENERATE)))
        enhancing = stack.enter_context(gradio.handling(running, gradio.event("b", "s1", ENHANCE)))
        my_edit = stack.enter_context(gradio.handling(running, gradio.event("c", "s1", EDIT)))
        theirs = stack.enter_context(gradio.handling(running, gradio.event("d", "s2", GENERATE)))
        assert len(running) == 4

        assert gradio.press_stop(running, "s1", {GENERATE, ENHANCE}) == 2

        assert mine.stop_reason() is StopReason.CANCELLED
        assert enhancing.stop_reason() is StopReason.CANCELLED
        assert my_edit.stop_reason() is None  # the other tab's Stop button
        assert theirs.stop_reason() is None  # another visitor
    assert len(running) == 0


def test_a_run_waiting_at_stop_starts_stopped_one_queued_after_runs() -> None:
    gradio, running = Gradio(), RunningRequests()
    before = gradio.event("before", "s1", GENERATE)
    other_function = gradio.event("edit", "s1", EDIT)
    theirs = gradio.event("theirs", "s2", GENERATE)

    assert gradio.press_stop(running, "s1", {GENERATE}) == 0  # nothing running yet
    after = gradio.event("after", "s1", GENERATE)

    with gradio.handling(running, before) as control:
        assert control.stop_reason() is StopReason.CANCELLED
    with gradio.handling(running, after) as control:
        assert control.stop_reason() is None
    with gradio.handling(running, other_function) as control:
        assert control.stop_reason() is None
    with gradio.handling(running, theirs) as control:
        assert control.stop_reason() is None


def test_pressing_stop_again_stops_what_was_queued_in_between() -> None:
    gradio, running = Gradio(), RunningRequests()
    gradio.press_stop(running, "s1", {GENERATE})
    queued = gradio.event("queued", "s1", GENERATE)
    gradio.press_stop(running, "s1", {GENERATE})
    with gradio.handling(running, queued) as control:
        assert control.stop_reason() is StopReason.CANCELLED


def test_only_events_still_waiting_are_remembered() -> None:
    gradio, running = Gradio(), RunningRequests()
    started = gradio.event("started", "s1", GENERATE)
    left = gradio.event("left", "s2", GENERATE)
    gradio.press_stop(running, "s1", {GENERATE})
    gradio.press_stop(running, "s2", {GENERATE})
    assert running._stopped_waiting == {"started", "left"}
    with gradio.handling(running, started) as control:  # forgotten as it starts
        assert control.stop_reason() is StopReason.CANCELLED
    gradio.leave(left)  # its page closed: Gradio dropped it unstarted
    gradio.press_stop(running, "s3", {GENERATE})  # anyone's next Stop forgets it
    assert running._stopped_waiting == set()


def test_a_script_cancel_still_needs_the_session_that_owns_the_event() -> None:
    gradio, running = Gradio(), RunningRequests()
    with gradio.handling(running, gradio.event("job", "s1", GENERATE)) as control:
        assert running.cancel("job", "s2") is False and control.stop_reason() is None
        assert running.cancel("job", "s1") is True
        assert control.stop_reason() is StopReason.CANCELLED
