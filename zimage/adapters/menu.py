"""The adapters a running Space offers, and what a request's choice of them becomes.

The service asks the menu to apply a request's adapter parameters (`applied`): the names are
checked (offered, made for the model the request runs on, at most two), a visitor-named Hub id
is fetched when the operator allows it (zimage/adapters/hub.py), the trigger words are put in
front of the text when asked, and the request gets the plain `AdapterUse`s the engine runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from zimage.adapters.catalog import AdapterEntry, looks_like_hub_id
from zimage.tools.adapters import ADAPTER_NAMES, AdapterUse
from zimage.tools.checks import InputError
from zimage.tools.edit import Edit
from zimage.tools.parameters import Offer, ToolRequest
from zimage.tools.text_to_image import TextToImage

# The requests that take adapters (two of them, ADAPTER_FIELDS), each as itself.
Styled = TypeVar("Styled", TextToImage, Edit)

# The request fields that name adapters and their strengths, in pairs.
ADAPTER_FIELDS = (("lora", "lora_scale"), ("lora_2", "lora_2_scale"))
# Every adapter setting a request has, left out of the usage log when no adapter was chosen.
ADAPTER_SETTINGS = frozenset(
    [*(field for pair in ADAPTER_FIELDS for field in pair), "trigger_words"]
)
# What the usage log keeps for a visitor-named adapter instead of its Hub id.
LOGGED_HUB_ADAPTER = "(Hub adapter)"


class Fetcher(Protocol):
    """Where visitor-named adapters come from (zimage/adapters/hub.py)."""

    def close(self) -> None: ...

    def fetch(
        self,
        repo_id: str,
        progress: Callable[[int, int], None] | None,
        should_stop: Callable[[], bool],
    ) -> str: ...


@dataclass(frozen=True)
class OfferedAdapter:
    """An operator's adapter, loaded: `key` is its name in the transformer, `file` the weights
    it was loaded from, `preview` a local image (or "")."""

    entry: AdapterEntry
    key: str
    file: str
    preview: str = ""

    @property
    def name(self) -> str:
        return self.entry.name


class AdapterMenu:
    """The operator's adapters by name, and the Hub when visitors may name adapters there."""

    def __init__(
        self,
        offered: Sequence[OfferedAdapter] = (),
        model: str = "",
        hub: Fetcher | None = None,
    ) -> None:
        self.offered = {adapter.name: adapter for adapter in offered}
        self.model = model
        self.hub = hub

    @property
    def names(self) -> list[str]:
        return list(self.offered)

    @property
    def available(self) -> bool:
        """Whether a request may name any adapter at all."""
        return bool(self.offered) or self.hub is not None

    def offer(self) -> dict[str, Offer]:
        """The choices the adapter parameters take here, for schemas, docs and widgets."""
        if not self.available:
            return {}
        listed = "; ".join(
            f"{adapter.name}"
            + (f" (trigger words: {adapter.entry.triggers})" if adapter.entry.triggers else "")
            for adapter in self.offered.values()
        )
        more = f"Offered: {listed}." if listed else ""
        if self.hub is not None:
            more += " A Hub model id (owner/name) of a Z-Image LoRA is also accepted."
        return {ADAPTER_NAMES: Offer(("", *self.offered), more.strip(), open=self.hub is not None)}

    def applied(
        self,
        request: Styled,
        progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Styled:
        """`request` (checked) with its adapters resolved into `adapters`, each strength set
        (the adapter's default where none was given) and, if asked, the trigger words in front
        of its text; InputError says what cannot be used. A visitor-named Hub adapter is
        fetched here, before the GPU slot, reporting (bytes, total) to `progress`."""
        chosen = [
            (getattr(request, name_field), getattr(request, scale_field), scale_field)
            for name_field, scale_field in ADAPTER_FIELDS
            if getattr(request, name_field)
        ]
        if not chosen:
            return request
        names = [name for name, _, _ in chosen]
        if len(set(names)) < len(names):
            raise InputError(f"The adapter {names[0]!r} is chosen twice: choose it once.")
        uses, scales, triggers = [], {}, []
        for name, scale, scale_field in chosen:
            adapter = self._pick(name)
            if adapter is None:
                assert self.hub is not None
                file = self.hub.fetch(name, progress, should_stop)
                scale = 1.0 if scale is None else scale
                uses.append(AdapterUse(hub_key(file), scale, file))
            else:
                scale = adapter.entry.scale if scale is None else scale
                uses.append(AdapterUse(adapter.key, scale))
                if adapter.entry.triggers:
                    triggers.append(adapter.entry.triggers)
            scales[scale_field] = scale
        changes: dict[str, Any] = {"adapters": tuple(uses), **scales}
        if request.trigger_words and triggers:
            text = getattr(request, request.text_field)
            changes[request.text_field] = ", ".join([*triggers, text])
        return dataclasses.replace(request, **changes)

    def _pick(self, name: str) -> OfferedAdapter | None:
        """The operator's adapter called `name`, or None for a Hub id visitors may name."""
        adapter = self.offered.get(name)
        if adapter is not None:
            if adapter.entry.model != self._model_of():
                raise InputError(
                    f"The adapter {name!r} was made for {adapter.entry.model}; this run uses "
                    f"{self._model_of()}, so it cannot be used here."
                )
            return adapter
        if self.hub is not None and looks_like_hub_id(name):
            return None
        if not self.available:
            raise InputError("This Space offers no adapters: leave the adapter empty.")
        offered = ", ".join(self.offered)
        if self.hub is None and looks_like_hub_id(name):
            raise InputError(
                f"{name!r} looks like a Hub id, but this Space does not fetch adapters from the "
                f"Hub; use one of its own: {offered}."
            )
        if self.hub is None:
            raise InputError(f"No adapter is called {name!r}; use one of: {offered}.")
        also = f"use one of: {offered}, or" if offered else "give"
        raise InputError(f"No adapter is called {name!r}; {also} a Hub model id (owner/name).")

    def close(self) -> None:
        """Delete the visitor-named adapters fetched (at shutdown)."""
        if self.hub is not None:
            self.hub.close()

    def _model_of(self) -> str:
        """The model a request runs on: one per Space until a model switch exists."""
        return self.model

    def usage_settings(self, request: ToolRequest) -> dict[str, Any]:
        """`request.logged_settings()` for the usage log: the adapter settings only when an
        adapter was chosen, and a visitor-named Hub id (free text the visitor typed) as
        LOGGED_HUB_ADAPTER; the operator's names are kept."""
        settings = request.logged_settings()
        names = {name_field for name_field, _ in ADAPTER_FIELDS}
        if not any(settings.get(name) for name in names):
            return {key: value for key, value in settings.items() if key not in ADAPTER_SETTINGS}
        return {
            key: LOGGED_HUB_ADAPTER
            if key in names and value and value not in self.offered
            else value
            for key, value in settings.items()
        }


def hub_key(file: str) -> str:
    """The transformer's name for a visitor-named adapter: the same for the same file in every
    process (a ZeroGPU worker loads it under this name)."""
    return "hub_" + hashlib.sha256(file.encode()).hexdigest()[:16]
