"""Turning a function that reports through a callback into a stream of its reports."""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

Report = TypeVar("Report")
Result = TypeVar("Result")


@dataclass
class _Finished(Generic[Result]):
    value: Result


@dataclass
class _Failed:
    error: BaseException


def stream_from_thread(
    work: Callable[[Callable[[Report], None]], Result],
) -> Generator[Report, None, Result]:
    """Run `work(emit)` in a thread; yield what it emits, as it comes; return what it returns.

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

    threading.Thread(target=run, name="streamed-work", daemon=True).start()
    while True:
        event = events.get()
        if isinstance(event, _Finished):
            return event.value
        if isinstance(event, _Failed):
            raise event.error
        yield event
