"""Turning a function that reports through a callback into a stream of its reports."""

from __future__ import annotations

import contextvars
import logging
import os
import queue
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)

Report = TypeVar("Report")
Result = TypeVar("Result")


@dataclass
class _Finished(Generic[Result]):
    value: Result


@dataclass
class _Failed:
    error: BaseException


class ReusedThreads:
    """Daemon threads that run one function at a time and then wait for the next.

    Work on a new thread pays for that thread's first operations (per-thread state of torch
    and of the memory allocator: 3-6 ms of CPU for a 256x256 preview generation on the 2-core
    test machine; on a GPU, per-thread handles of the CUDA libraries too), so the work of every
    request runs on a thread that has done such work before. There are as
    many threads as functions ever ran at once; an idle one waits without using the CPU. A
    forked child (ZeroGPU's worker) starts with none: threads do not survive a fork.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = 0
        self.forget_threads()

    def forget_threads(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[queue.SimpleQueue[Callable[[], None]]] = []

    def run(self, function: Callable[[], None]) -> None:
        """Start `function` on an idle thread, or on a new one when none is idle."""
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
            if inbox is None:
                self.started += 1
                inbox = queue.SimpleQueue()
                threading.Thread(
                    target=self._serve, args=(inbox,), name=self.name, daemon=True
                ).start()
        inbox.put(function)

    def _serve(self, inbox: queue.SimpleQueue[Callable[[], None]]) -> None:
        while True:
            function = inbox.get()
            try:
                function()
            except BaseException:  # the thread stays, to serve the next one
                logger.exception("%s: a function failed", self.name)
            del function  # drop what it holds (a request's images) while idle
            with self._lock:
                self._idle.append(inbox)


_THREADS = ReusedThreads("streamed-work")
os.register_at_fork(after_in_child=_THREADS.forget_threads)


def stream_from_thread(
    work: Callable[[Callable[[Report], None]], Result],
) -> Generator[Report, None, Result]:
    """Run `work(emit)` in another thread; yield what it emits, as it comes; return what it
    returns.

    The thread runs in a copy of the caller's context (so context variables, such as a web
    framework's request context, still hold there); an exception from `work` is raised here.
    """
    events: queue.SimpleQueue[Any] = queue.SimpleQueue()
    context = contextvars.copy_context()

    def run() -> None:
        try:
            events.put(_Finished(context.run(work, events.put)))
        except BaseException as error:  # handed to the caller, never lost in the thread
            events.put(_Failed(error))

    _THREADS.run(run)
    while True:
        event = events.get()
        if isinstance(event, _Finished):
            return event.value
        if isinstance(event, _Failed):
            raise event.error
        yield event
