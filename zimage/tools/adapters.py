"""The adapter (LoRA) parameters text to image and edits share, described once.

Which adapters a Space offers is known only once its settings are read: the names' parameters
are `offered` choices, which each door fills in from the service's adapter menu
(`ToolRequest.parameters(offered=...)`) for its schema, docs and widgets. What the engine runs
is `AdapterUse`: plain data the service resolves the names to (it crosses to a ZeroGPU worker).
"""

from __future__ import annotations

from dataclasses import dataclass

from zimage.adapters.catalog import MAX_SCALE, MIN_SCALE
from zimage.tools.checks import InputError, check_number
from zimage.tools.parameters import Kind, Parameter

# The key of the offered choices that the adapter names' parameters take.
ADAPTER_NAMES = "adapters"


def check_adapter_name(value: object) -> str:
    """A name as given ("" or None for none); whether it is offered is the service's check."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError("An adapter must be given by its name.")
    return value.strip()


def check_scale(value: object) -> float | None:
    """None (the adapter's own default) or a number from -2 to 2."""
    if value is None:
        return None
    return check_number(value, "Adapter strength", MIN_SCALE, MAX_SCALE)


ADAPTER = Parameter(
    Kind.CHOICE,
    "Optional style adapter (LoRA), by name: one of the adapters this Space offers; empty for "
    "none.",
    label="Adapter",
    default="",
    check=check_adapter_name,
    offered=ADAPTER_NAMES,
    logged=True,
)
ADAPTER_SCALE = Parameter(
    Kind.NUMBER,
    "Strength of the adapter, {minimum} to {maximum}; 0 leaves it out. Empty: the adapter's "
    "own default.",
    label="Adapter strength",
    default=None,
    minimum=MIN_SCALE,
    maximum=MAX_SCALE,
    check=check_scale,
    logged=True,
)
TRIGGER_WORDS = Parameter(
    Kind.BOOLEAN,
    "Put the chosen adapters' trigger words in front of the text the model reads.",
    label="Trigger words",
    default=False,
    logged=True,
)


@dataclass(frozen=True)
class AdapterUse:
    """One adapter a run uses: its key in the transformer and its strength; `file` is where a
    visitor-named adapter is loaded from by the GPU work that does not hold it yet."""

    key: str
    scale: float
    file: str = ""
