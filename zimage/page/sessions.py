"""Gradio's per-session state, without a copy of every component's config and value.

Gradio 6.31 makes a `SessionState` for each new session: each page load, each gradio_client
`Client`, and each plain-HTTP API call (`POST /gradio_api/call/...` is a session of its own).
Its constructor computes the config of every block of the app: 131 blocks here, each with an
`inspect.signature` of its constructor, ~11 ms of CPU on the request path of every such call
(a bare Gradio app with one endpoint: ~1 ms), and a copy of them all kept per session
(server_state.py bounds how many). Each event then writes the values of the components it
reads and writes into those configs: a session's prompts, images and browser state, kept for
as long as the session.

Gradio reads those configs in one place only, to write a deep link (`GET
/gradio_api/deep_link`), which the app refuses (zimage/guards/protocol_guard.py says why).
`LazySessionState` therefore keeps none: no config computed, no value copied, and a deep link
that still reached it would save nothing. `use_lazy_sessions(app)` switches Gradio's session
holder over before the first request; the holder also refuses a session id no Gradio client
makes (zimage/guards/gradio_calls.py `is_session_hash`), whatever route carries it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gradio.state_holder import SessionState, StateHolder

from zimage.guards.gradio_calls import is_session_hash


class _NoBlocksYet:
    """What `SessionState.__init__` reads of the Blocks, with no block to compute a config of:
    Gradio's own constructor then sets every other field as it does."""

    def __init__(self, blocks: Any) -> None:
        self.default_config = blocks.default_config
        self.blocks: dict[int, Any] = {}


class LazySessionState(SessionState):
    def __init__(self, blocks: Any) -> None:
        super().__init__(_NoBlocksYet(blocks))

    def __setitem__(self, key: int, value: Any) -> None:
        super().__setitem__(key, value)
        self.config_values.pop(key, None)

    def _update_config(self, key: int) -> None:
        """Gradio's keeps a block's config for deep links only: nothing to keep."""

    def _update_value_in_config(self, key: int, value: Any) -> None:
        """Gradio's copies an event's value into a config for deep links only: not kept."""

    @property
    def components(self) -> Iterator[dict]:
        """Nothing for a deep link to save."""
        return iter(())


class LazyStateHolder(StateHolder):
    def __getitem__(self, session_id: str) -> SessionState:
        if not is_session_hash(session_id):
            raise KeyError("not a session id")
        if session_id not in self.session_data:
            self.session_data[session_id] = LazySessionState(self.blocks)
        return super().__getitem__(session_id)


def use_lazy_sessions(app: Any) -> None:
    """Make Gradio's `app` start its sessions as `LazySessionState`.

    The holder object stays the same (the Blocks and the app both refer to it), only its
    class changes; call it before the first request.
    """
    holder = app.state_holder
    if isinstance(holder, LazyStateHolder):
        return
    if type(holder) is not StateHolder:
        raise TypeError(f"unexpected Gradio session holder: {type(holder).__name__}")
    holder.__class__ = LazyStateHolder
