"""The GPU queue's rules, whatever the door: fair order and the bounds on waiting.

Plain Python. zimage/page/gpu_queue.py applies them to Gradio's queue, which every door joins
(the page, scripts, and MCP calls through `GpuTurns`).

Fair order, round-robin between visitors: a waiting run's round is the number of runs of its
visitor already running or waiting ahead of it; the next free slot goes to the lowest round,
the earliest joined among equals. A visitor with one run waiting therefore goes before a greedy
visitor's second, and with V visitors waiting each gets every V-th slot, however many runs
each has queued.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol, TypeVar

from zimage.service.visitors import Visitor
from zimage.tools.parameters import ToolRequest

Item = TypeVar("Item")


class QueueRefusal(Exception):
    """A run refused a place in the GPU queue; the message says why and what to do."""


def fair_order(
    waiting: Sequence[Item], visitor_of: Callable[[Item], str], running: Counter[str]
) -> list[Item]:
    """`waiting` (in the order they joined or were last put in) in fair order, given how many
    runs each visitor has `running`."""
    rounds = Counter(running)
    ranked = []
    for position, item in enumerate(waiting):
        visitor = visitor_of(item)
        ranked.append((rounds[visitor], position, item))
        rounds[visitor] += 1
    ranked.sort(key=lambda entry: entry[:2])
    return [item for _, _, item in ranked]


def refuse_past_bounds(visitor_runs: int, per_visitor: int, waiting: int, max_waiting: int) -> None:
    """Raise QueueRefusal when the visitor has `per_visitor` runs waiting or running already,
    or when `max_waiting` runs wait (the queue is full)."""
    if visitor_runs >= per_visitor:
        raise QueueRefusal(
            f"You have {visitor_runs} requests waiting or running, the most one visitor may "
            "have at once. Please wait for one of them to finish."
        )
    if waiting >= max_waiting:
        raise QueueRefusal(
            f"Queue is full: {waiting} requests are waiting, the most this Space holds. "
            "Please try again in a minute."
        )


class GpuTurns(Protocol):
    """The GPU queue as a door outside Gradio (MCP) joins it."""

    def turn(
        self, asked: Sequence[ToolRequest], visitor: Visitor
    ) -> AbstractAsyncContextManager[None]:
        """Admit the run (ZImageService.admit and the queue's bounds: QueueRefusal or the
        service's refusal), wait in fair order without holding a thread, and hold one GPU slot
        while the block runs."""
        ...
