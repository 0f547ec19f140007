"""Gradio's event calls as the guards read them: the function a body names, the values it
sends, and a refusal of one value that Gradio's own clients show.

The page, gradio_client and @gradio/client post `/gradio_api/queue/join` with
`{"data": [...], "fn_index": N, "session_hash": ...}`; scripts post `/gradio_api/call/<api>`
with `{"data": [...]}`. gradio_client (2.x) shows its user the words of one refusal of
/queue/join only: a 422 whose detail lists the function's inputs in the format of Gradio's own
validators (`gr.validate`). Any other refusal reaches its user as httpx's "Client error '400
Bad Request' for url ...", without the detail. So a value refused there is answered in that
format (the page paints the sentence on the input; gradio_client raises a ValidationError
carrying it), and everywhere else as a plain sentence.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

QUEUE_JOIN = re.compile(r"/gradio_api/queue/join/?$")
# Gradio's page makes 10-12 letters and digits, gradio_client a UUID (36); a session id keys
# several of Gradio's tables and travels in addresses, so nothing longer or stranger is taken.
MAX_SESSION_HASH_CHARS = 128
_SESSION_HASH = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_SESSION_HASH_CHARS}}}")
SESSION_HASH_REFUSED = (
    f"session_hash must be 1 to {MAX_SESSION_HASH_CHARS} letters, digits or ._:- characters."
)


def is_session_hash(value: object) -> bool:
    """Whether `value` is a session id as Gradio's clients make them."""
    return isinstance(value, str) and _SESSION_HASH.fullmatch(value) is not None


@dataclass(frozen=True)
class GradioFunction:
    """One function of the app, as a caller must send its values."""

    # "/generate", or "fn_index 12" for a function without an API name.
    address: str
    # Every input's parameter name, in the order the values go.
    parameters: tuple[str, ...]
    # Positions of the inputs Gradio fills itself on /call/<api> (session state).
    hidden: frozenset[int] = frozenset()
    # A batched function takes lists of values: its count is not checked.
    batched: bool = False

    def too_few_values(self, sent: int, *, hidden_filled: bool) -> str | None:
        """Why `sent` values are too few, or None when Gradio takes them (it ignores extra
        values). `hidden_filled`: on /call/<api>, where Gradio fills the hidden inputs when
        exactly the others are sent."""
        if self.batched or sent >= len(self.parameters):
            return None
        shown = [name for i, name in enumerate(self.parameters) if i not in self.hidden]
        if hidden_filled and sent == len(shown):
            return None
        expected = shown if hidden_filled and sent < len(shown) else self.parameters
        values = "value" if len(expected) == 1 else "values"
        return (
            f"{self.address} takes {len(expected)} {values} ({', '.join(expected)}); "
            f"this request sent {sent}."
        )

    def refused_value(self, index: int, message: str) -> list[dict[str, object]]:
        """The detail Gradio's validators give: one entry per input, `message` at `index`."""
        return [
            {
                "__type__": "validate",
                "is_valid": False,
                "message": message,
                "parameter_name": name,
            }
            if position == index
            else {"is_valid": True, "message": ""}
            for position, name in enumerate(self.parameters)
        ]


class KnownEndpoints(Protocol):
    """What the app serves, as the guards ask it (see zimage/page/gradio_state.py)."""

    def function_at(self, fn_index: int) -> GradioFunction | None: ...

    def function_named(self, api_name: str) -> GradioFunction | None: ...

    def has_stream_for_event(self, event_id: str) -> bool: ...

    def has_stream_for_session(self, session_hash: str) -> bool: ...


def fn_index_in(value: object) -> int | None:
    """A body's fn_index read as leniently as Gradio does (3, 3.0 and "3"); None for anything
    Gradio would refuse itself (422)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        index = int(value)
    except (ValueError, OverflowError):
        return None
    if isinstance(value, float) and index != value:
        return None
    return index


def value_refusal(
    path: str,
    document: object,
    endpoints: KnownEndpoints,
    refused: Callable[[object], bool],
    message: str,
) -> tuple[int, object]:
    """Status and detail refusing a body for the first value `refused` picks: Gradio's
    validator format on /queue/join (see the module docstring), else 400 and `message`."""
    if QUEUE_JOIN.search(path) and isinstance(document, dict):
        index = fn_index_in(document.get("fn_index"))
        function = endpoints.function_at(index) if index is not None else None
        data = document.get("data")
        if function is not None and isinstance(data, list):
            found = next((i for i, value in enumerate(data) if refused(value)), None)
            if found is not None and found < len(function.parameters):
                return 422, function.refused_value(found, message)
    return 400, message
