"""Why the engine did not make an image: each message is written for the visitor."""

from __future__ import annotations

INTERNAL_FAILURE = "Something went wrong while making the image. Please try again."


class EngineError(RuntimeError):
    """A request the engine could not finish; the message is meant for the visitor."""


class EngineUnavailable(EngineError):
    """The model could not be loaded; every request answers with this reason."""


class OutOfGpuMemory(EngineError):
    """The request did not fit in GPU memory; memory was freed for the next one."""


class TimedOut(EngineError):
    """The request ran past, or would run past, the time limit and was stopped."""


class Cancelled(EngineError):
    """The caller cancelled the request or left; nothing of it is kept."""

    def __init__(self, message: str = "The request was cancelled.") -> None:
        super().__init__(message)


class ShuttingDown(EngineError):
    """The Space is stopping; the request was ended so that it can stop cleanly."""

    def __init__(
        self, message: str = "The Space is restarting. Please try again in a minute."
    ) -> None:
        super().__init__(message)
