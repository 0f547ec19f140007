"""The page's Stop: its own event, not Gradio's `cancels=`. It ends the session's running requests
of the stopped functions at their next step, and the ones it queued before pressing Stop as they
start; other sessions, other functions and later runs go on. (The browser tests press the real
button against the launched app: tests/browser/test_running.py.)"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from types import SimpleNamespace

from gradio.context import LocalContext

from zimage.jobs import JobControl, StopReason
from zimage.ui.running import MAX_STOP_MARKS, RunningRequests

GENERATE, ENHANCE, EDIT = 5, 6, 7


class Gradio:
    """What RunningRequests reads of Gradio's queue: the running events and their fields."""

    def __init__(self) -> None:
        self.blocks = SimpleNamespace(_queue=SimpleNamespace(active_jobs=[]))

    def event(self, event_id: str, session: str, function: int, queued_at: float) -> str:
        event = SimpleNamespace(
            _id=event_id,
            session_hash=session,
            fn=SimpleNamespace(_id=function),
            enqueue_time=queued_at,
            alive=True,
        )
        self.blocks._queue.active_jobs.append([event])
        return event_id

    @contextmanager
    def handling(self, running: RunningRequests, event_id: str) -> Iterator[JobControl]:
        """`running.control()` as a handler of that event gets it."""
        context = contextvars.copy_context()

        def enter() -> tuple[JobControl, ExitStack]:
            LocalContext.event_id.set(event_id)
            LocalContext.blocks.set(self.blocks)
            stack = ExitStack()
            return stack.enter_context(running.control()), stack

        control, stack = context.run(enter)
        with stack:
            yield control


def test_stop_ends_that_sessions_runs_of_those_functions_and_nothing_else() -> None:
    gradio, running = Gradio(), RunningRequests(clock=lambda: 100.0)
    with ExitStack() as stack:
        mine = stack.enter_context(gradio.handling(running, gradio.event("a", "s1", GENERATE, 1)))
        enhancing = stack.enter_context(
            gradio.handling(running, gradio.event("b", "s1", ENHANCE, 1))
        )
        my_edit = stack.enter_context(gradio.handling(running, gradio.event("c", "s1", EDIT, 1)))
        theirs = stack.enter_context(gradio.handling(running, gradio.event("d", "s2", GENERATE, 1)))
        assert len(running) == 4

        assert running.stop("s1", {GENERATE, ENHANCE}) == 2

        assert mine.stop_reason() is StopReason.CANCELLED
        assert enhancing.stop_reason() is StopReason.CANCELLED
        assert my_edit.stop_reason() is None  # the other tab's Stop button
        assert theirs.stop_reason() is None  # another visitor
    assert len(running) == 0


def test_a_run_queued_before_stop_starts_stopped_one_queued_after_runs() -> None:
    now = [50.0]
    gradio, running = Gradio(), RunningRequests(clock=lambda: now[0])
    before = gradio.event("before", "s1", GENERATE, queued_at=49.0)
    at_the_same_time = gradio.event("same", "s1", GENERATE, queued_at=50.0)
    after = gradio.event("after", "s1", GENERATE, queued_at=50.001)
    other_function = gradio.event("edit", "s1", EDIT, queued_at=49.0)

    assert running.stop("s1", {GENERATE}) == 0  # nothing running yet
    now[0] = 60.0

    with gradio.handling(running, before) as control:
        assert control.stop_reason() is StopReason.CANCELLED
    with gradio.handling(running, at_the_same_time) as control:
        assert control.stop_reason() is StopReason.CANCELLED
    with gradio.handling(running, after) as control:
        assert control.stop_reason() is None
    with gradio.handling(running, other_function) as control:
        assert control.stop_reason() is None


def test_pressing_stop_again_moves_the_mark_forward() -> None:
    now = [10.0]
    gradio, running = Gradio(), RunningRequests(clock=lambda: now[0])
    running.stop("s1", {GENERATE})
    queued = gradio.event("queued", "s1", GENERATE, queued_at=15.0)
    now[0] = 20.0
    running.stop("s1", {GENERATE})
    with gradio.handling(running, queued) as control:
        assert control.stop_reason() is StopReason.CANCELLED


def test_stop_marks_are_bounded_and_the_oldest_go_first() -> None:
    gradio, running = Gradio(), RunningRequests(clock=lambda: 10.0)
    sessions = [f"s{index}" for index in range(MAX_STOP_MARKS + 5)]
    for session in sessions:
        running.stop(session, {GENERATE})
    assert len(running._stopped_at) == MAX_STOP_MARKS
    with gradio.handling(running, gradio.event("old", sessions[0], GENERATE, 1.0)) as control:
        assert control.stop_reason() is None  # its mark was dropped
    with gradio.handling(running, gradio.event("new", sessions[-1], GENERATE, 1.0)) as control:
        assert control.stop_reason() is StopReason.CANCELLED


def test_a_script_cancel_still_needs_the_session_that_owns_the_event() -> None:
    gradio, running = Gradio(), RunningRequests()
    with gradio.handling(running, gradio.event("job", "s1", GENERATE, 1.0)) as control:
        assert running.cancel("job", "s2") is False and control.stop_reason() is None
        assert running.cancel("job", "s1") is True
        assert control.stop_reason() is StopReason.CANCELLED
