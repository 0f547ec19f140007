"""A stand-in for Hugging Face's `spaces` package that keeps ZeroGPU's process boundary.

On a ZeroGPU Space, `spaces.GPU` runs the decorated function in a worker forked from the
serving process: the arguments go in pickled, results (each yielded value, for a generator)
come back pickled, and nothing the function changes in the worker survives the call. This
stand-in does exactly that, with a fresh fork per call (the strictest case: no state survives),
and no GPU. Exceptions come back the way spaces reports them: a gradio Error keeps its message,
any other exception is reduced to its class name.

Set ZEROGPU_STANDIN_LOG to a file path to have each call append one line:
`<duration asked> <worker pid>`.
"""

from __future__ import annotations

import functools
import inspect
import multiprocessing
import os
import pickle
import traceback
from collections.abc import Callable, Iterator
from typing import Any

_fork = multiprocessing.get_context("fork")
_END = "__zerogpu_standin_end__"


class WorkerError(RuntimeError):
    """What the caller sees when the GPU function raised something other than a gradio Error."""


def GPU(task: Callable[..., Any] | None = None, *, duration: Any = None, size: Any = None) -> Any:  # noqa: N802 - the real decorator's name
    if task is None:
        return functools.partial(GPU, duration=duration, size=size)
    if inspect.isgeneratorfunction(task):

        @functools.wraps(task)
        def stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
            yield from _call(task, duration, args, kwargs)

        return stream

    @functools.wraps(task)
    def call(*args: Any, **kwargs: Any) -> Any:
        (result,) = list(_call(task, duration, args, kwargs))
        return result

    return call


def _call(task: Callable[..., Any], duration: Any, args: tuple, kwargs: dict) -> Iterator[Any]:
    asked = duration(*args, **kwargs) if callable(duration) else duration
    parent_end, child_end = _fork.Pipe()
    payload = pickle.dumps((args, kwargs))  # fails here, in the caller, like spaces does
    worker = _fork.Process(target=_work, args=(task, child_end), daemon=True)
    worker.start()
    child_end.close()
    _log(asked, worker.pid)
    parent_end.send_bytes(payload)
    try:
        while True:
            kind, value = pickle.loads(parent_end.recv_bytes())
            if kind == "value":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        parent_end.close()
        worker.join(timeout=30)


def _work(task: Callable[..., Any], connection: Any) -> None:
    args, kwargs = pickle.loads(connection.recv_bytes())
    try:
        if inspect.isgeneratorfunction(task):
            for value in task(*args, **kwargs):
                connection.send_bytes(pickle.dumps(("value", value)))
        else:
            connection.send_bytes(pickle.dumps(("value", task(*args, **kwargs))))
        connection.send_bytes(pickle.dumps((_END, None)))
    except Exception as error:  # noqa: BLE001 - reported to the caller like spaces does
        traceback.print_exc()
        connection.send_bytes(pickle.dumps(("error", _as_spaces_reports(error))))
    finally:
        connection.close()
        os._exit(0)


def _as_spaces_reports(error: Exception) -> Exception:
    try:
        import gradio as gr
    except ImportError:  # pragma: no cover - gradio is installed wherever this runs
        gr = None
    if gr is not None and isinstance(error, gr.Error):
        return error
    return WorkerError(f"ZeroGPU worker error: {type(error).__name__}")


def _log(asked: Any, pid: int | None) -> None:
    path = os.environ.get("ZEROGPU_STANDIN_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"{asked} {pid}\n")
