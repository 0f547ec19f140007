"""Holding the GPU shut while a test sets up the queue, and the helpers around it.

Inside `gpu_held(app)` the run on the GPU waits at its first denoising step, so what the queue
decides (which run gets the next slot, which joins are refused or cancelled before any slot
frees) is seen in order, whatever the machine's speed.
"""

from __future__ import annotations

import itertools
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from gradio_client import Client

from tests.conftest import TEST_FOLDER
from zimage.page.api import GPU_QUEUE
from zimage.tools.text_to_image import TextToImage

# A test never holds the GPU longer than this, whatever happens.
GATE_S = 300.0
WAIT_S = 120.0
_addresses = (f"198.51.100.{n}" for n in itertools.count(1))


def next_address() -> str:
    """A visitor address of its own (send it as X-Forwarded-For behind one trusted proxy)."""
    return next(_addresses)


def small(seed: int, **changes: Any) -> dict[str, Any]:
    return {
        "prompt": "a kite",
        "resolution": "256x256",
        "seed": seed,
        "randomize_seed": False,
        "steps": 1,
        **changes,
    }


def join_values(seed: int, **changes: Any) -> list[Any]:
    """`small(seed, **changes)` as the values a raw /queue/join of /text_to_image sends: one per
    parameter, in order, the ones not given at their defaults."""
    return TextToImage.endpoint_values(**small(seed, **changes))


def visitor(app, address: str | None = None) -> Client:
    """A gradio_client Client of its own visitor (a fresh address unless given)."""
    return Client(
        app.url,
        verbose=False,
        analytics_enabled=False,
        download_files=tempfile.mkdtemp(prefix="queue-", dir=TEST_FOLDER),
        headers={"X-Forwarded-For": address or next_address()},
    )


def waiting(app) -> int:
    return len(app.space.demo._queue.event_queue_per_concurrency_id[GPU_QUEUE].queue)


def eventually(condition: Callable[[], Any], message: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.02)


class HeldGpu:
    """The GPU held shut: `entered` are the seeds of the runs in the order they got a GPU slot
    (entered the engine); `open()` lets the run on the GPU go on."""

    def __init__(self) -> None:
        self.entered: list[int] = []
        self.gate = threading.Event()

    def open(self) -> None:
        self.gate.set()


@contextmanager
def gpu_held(app) -> Iterator[HeldGpu]:
    """Until `open()` (or the block's end), the run on the GPU waits at its first denoising
    step; runs are recorded as they enter the engine until the block ends."""
    engine = app.space.service.engine
    transformer = engine.pipeline.transformer
    forward, text_to_image = transformer.forward, engine.text_to_image
    held = HeldGpu()

    def held_forward(*args: Any, **kwargs: Any) -> Any:
        held.gate.wait(GATE_S)
        return forward(*args, **kwargs)

    def recorded(request: Any, hooks: Any = None) -> Any:
        held.entered.append(request.seed)
        return text_to_image(request, hooks)

    transformer.forward, engine.text_to_image = held_forward, recorded
    try:
        yield held
    finally:
        held.open()
        transformer.forward = forward
        del engine.text_to_image  # the class's method again


def refused(job: Any) -> str:
    """The message of a job refused at join (it never got a turn: the GPU is held)."""
    try:
        job.result(timeout=WAIT_S)
    except Exception as error:  # noqa: BLE001 - AppError with the refusal
        return str(error)
    raise AssertionError("the job ran")
