"""Core exceptions as messages for the visitor; never a stack trace."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import gradio as gr

from zimage.engine.errors import INTERNAL_FAILURE, Cancelled
from zimage.guards.uploads import OUT_OF_SPACE_MESSAGE, is_out_of_space
from zimage.service.service import VISITOR_ERRORS

logger = logging.getLogger(__name__)


def readable_errors(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Turn core exceptions into `gr.Error` messages, for plain and generator handlers (the
    page's: a cancelled run of those ends without an error)."""
    if inspect.isgeneratorfunction(handler):

        @functools.wraps(handler)
        def streamed(*args: Any, **kwargs: Any) -> Any:
            with _as_visitor_messages():
                try:
                    yield from handler(*args, **kwargs)
                except Cancelled:
                    return  # Stop was pressed (or the page left): end quietly, no error shown

        return streamed

    @functools.wraps(handler)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with _as_visitor_messages():
            return handler(*args, **kwargs)

    return wrapped


@contextmanager
def _as_visitor_messages() -> Iterator[None]:
    try:
        yield
    except gr.Error:
        raise
    except VISITOR_ERRORS as error:
        raise gr.Error(str(error), print_exception=False) from None
    except Exception as error:
        if is_out_of_space(error):  # e.g. the output could not be written
            raise gr.Error(OUT_OF_SPACE_MESSAGE, print_exception=False) from None
        logger.exception("request failed")
        raise gr.Error(INTERNAL_FAILURE) from None
