"""stream_from_thread: reports as they come, the result or the error, on reused threads."""

from __future__ import annotations

import os
import threading

import pytest

from tests.launcher import WAIT_S, wait_until
from zimage.engine.streaming import ReusedThreads, stream_from_thread


def drain(stream):
    reports = []
    while True:
        try:
            reports.append(next(stream))
        except StopIteration as finished:
            return reports, finished.value


def test_reports_come_in_order_then_the_result() -> None:
    def work(emit):
        for step in range(3):
            emit(step)
        return "done"

    assert drain(stream_from_thread(work)) == ([0, 1, 2], "done")


def test_an_error_of_the_work_is_raised_to_the_caller() -> None:
    def work(emit):
        emit(1)
        raise ValueError("broken")

    stream = stream_from_thread(work)
    assert next(stream) == 1
    with pytest.raises(ValueError, match="broken"):
        next(stream)


def test_one_function_after_another_runs_on_the_same_thread() -> None:
    threads = ReusedThreads("test-reused")
    seen: list[int] = []
    for _ in range(5):
        done = threading.Event()
        threads.run(lambda done=done: (seen.append(threading.get_ident()), done.set()))
        assert done.wait(WAIT_S)
        # The thread goes back to the idle list just after the function returns.
        wait_until(lambda: bool(threads._idle), WAIT_S, "the thread never went idle", 0.001)
    assert threads.started == 1 and len(set(seen)) == 1


def test_functions_at_the_same_time_get_threads_of_their_own_and_a_failure_keeps_one() -> None:
    threads = ReusedThreads("test-reused")
    release = threading.Event()
    running = threading.Barrier(3, timeout=WAIT_S)

    def blocking() -> None:
        running.wait()
        release.wait(WAIT_S)

    threads.run(blocking)
    threads.run(blocking)
    running.wait()  # both run at once: two threads
    assert threads.started == 2
    release.set()

    def failing() -> None:
        raise RuntimeError("lost in a thread")

    wait_until(lambda: len(threads._idle) == 2, WAIT_S, "the threads never went idle", 0.001)
    threads.run(failing)
    done = threading.Event()
    threads.run(done.set)
    assert done.wait(WAIT_S)
    assert threads.started == 2  # the failed function's thread still served


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_streams_on_threads_of_its_own() -> None:
    # ZeroGPU runs the GPU half in a forked worker: the parent's idle threads do not exist there.
    drain(stream_from_thread(lambda emit: emit("warm")))  # leaves an idle thread here
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            reports, result = drain(stream_from_thread(lambda emit: (emit(1), 2)[1]))
            os.write(writer, f"{reports}{result}".encode())
        finally:
            os._exit(0)
    os.close(writer)
    alarm = threading.Timer(WAIT_S, lambda: os.kill(child, 9))
    alarm.start()
    try:
        answer = os.read(reader, 100)
    finally:
        alarm.cancel()
        os.waitpid(child, 0)
        os.close(reader)
    assert answer == b"[1]2"
