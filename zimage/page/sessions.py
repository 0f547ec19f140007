"""Gradio's per-session state, without a copy of every component's config made up front.

Gradio 6.31 makes a `SessionState` for each new session: each page load, each gradio_client
`Client`, and each plain-HTTP API call (`POST /gradio_api/call/...` is a session of its own).
Its constructor computes the config of every block of the app: 131 blocks here, each with an
`inspect.signature` of its constructor, ~11 ms of CPU on the request path of every such call
(a bare Gradio app with one endpoint: ~1 ms), and a copy of them all kept per session
(server_state.py bounds how many). Gradio reads those configs in one place only, to write a
deep link (`GET /gradio_api/deep_link`); besides, each event puts the values of the
components it reads and writes into their configs, computing any config it lacks (~1 ms for
/text_to_image's ten on a new session).

`LazySessionState` starts with none, keeps an event's values in the configs' places, and
computes the configs when a deep link asks for them all, from the same blocks, in the same
order, with the same values: the deep link's components are those of Gradio's own
`SessionState`, and a session costs nothing that no one reads. `use_lazy_sessions(app)`
switches Gradio's session holder over before the first request (from the app's lifespan).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gradio.state_holder import SessionState, StateHolder


class _NoBlocksYet:
    """What `SessionState.__init__` reads of the Blocks, with no block to compute a config of:
    Gradio's own constructor then sets every other field as it does."""

    def __init__(self, blocks: Any) -> None:
        self.default_config = blocks.default_config
        self.blocks: dict[int, Any] = {}


class _Unmade:
    """A config not computed yet, holding the value an event gave its component."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class LazySessionState(SessionState):
    def __init__(self, blocks: Any) -> None:
        super().__init__(_NoBlocksYet(blocks))
        self._app_blocks = blocks.blocks

    def _update_value_in_config(self, key: int, value: Any) -> None:
        """Gradio's, without computing a config that is not there yet: the value waits in its
        place (the same place in the order) until a deep link asks for the configs."""
        if isinstance(self.config_values.get(key), dict):
            super()._update_value_in_config(key, value)
        else:
            self.config_values[key] = _Unmade(value)

    @property
    def components(self) -> Iterator[dict]:
        """Every block's config, as Gradio's `SessionState` lists them (for a deep link)."""
        known = self.config_values

        def config_of(key: int) -> dict:
            entry = known.get(key)
            if isinstance(entry, dict):
                return entry
            config = self.blocks_config.config_for_block(key, [], self.blocks_config.blocks[key])
            if isinstance(entry, _Unmade) and "props" in config:
                config["props"]["value"] = entry.value
            return config

        every = {
            key: config_of(key) for key in self.blocks_config.blocks if key in self._app_blocks
        }
        for key in known:  # what events added beyond the app's blocks, in their order
            if key not in every:
                every[key] = config_of(key)
        self.config_values = every
        return super().components


class LazyStateHolder(StateHolder):
    def __getitem__(self, session_id: str) -> SessionState:
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
