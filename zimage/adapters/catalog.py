"""The operator's adapters (LoRA): what ZIMAGE_LORAS names, read and checked at start.

ZIMAGE_LORAS is the path of a JSON file or an inline JSON list; each entry is an object:

    {"name": "Watercolor",                       # shown on the page; what callers pass
     "source": "someone/zimage-watercolor-lora", # a Hub model id, or a local .safetensors file
     "weight_name": "watercolor.safetensors",    # the file in the Hub repo (Hub ids only)
     "triggers": "wtrclr style",                 # words added to the prompt when asked
     "scale": 0.8,                               # the default strength, -2 to 2
     "preview": "preview.png",                   # optional: a local image, or a file in the repo
     "model": "Tongyi-MAI/Z-Image-Turbo"}        # the model it was trained for (ZIMAGE_MODEL)

A bad entry stops start-up with one line naming it (SettingsError).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIN_SCALE = -2.0
MAX_SCALE = 2.0
MAX_NAME_CHARS = 60
MAX_TRIGGER_CHARS = 200
# A Hub model id: owner/name (letters, digits, "-", "_", "."), as the Hub allows them.
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
SAFETENSORS_SUFFIX = ".safetensors"
_FIELDS = ("name", "source", "weight_name", "triggers", "scale", "preview", "model")


class CatalogError(ValueError):
    """One readable line naming the entry and what is wrong with it."""


@dataclass(frozen=True)
class AdapterEntry:
    """One adapter the operator offers."""

    name: str
    source: str
    weight_name: str = ""
    triggers: str = ""
    scale: float = 1.0
    preview: str = ""
    model: str = ""

    @property
    def is_local(self) -> bool:
        return self.source.endswith(SAFETENSORS_SUFFIX)


def looks_like_hub_id(text: str) -> bool:
    return HUB_ID.fullmatch(text) is not None and ".." not in text


def read_catalog(
    raw: str, default_model: str, variable: str = "ZIMAGE_LORAS"
) -> tuple[AdapterEntry, ...]:
    """The entries of `raw`: inline JSON (starting with "[") or the path of a JSON file."""
    if not raw:
        return ()
    text = raw
    if not raw.lstrip().startswith("["):
        try:
            text = Path(raw).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise CatalogError(
                f"{variable}={raw!r} is neither a JSON list nor a readable JSON file "
                f"({error.__class__.__name__})."
            ) from None
    try:
        listed = json.loads(text)
    except json.JSONDecodeError as error:
        raise CatalogError(
            f"{variable} is not valid JSON: {error.msg} at line {error.lineno}."
        ) from None
    if not isinstance(listed, list):
        raise CatalogError(f"{variable} must be a JSON list of adapters.")
    entries = tuple(
        _entry(item, index, default_model, variable) for index, item in enumerate(listed)
    )
    seen: set[str] = set()
    for entry in entries:
        if entry.name.casefold() in seen:
            raise CatalogError(f"{variable}: two adapters are named {entry.name!r}.")
        seen.add(entry.name.casefold())
    return entries


def _entry(item: Any, index: int, default_model: str, variable: str) -> AdapterEntry:
    where = f"{variable} entry {index + 1}"
    if not isinstance(item, Mapping):
        raise CatalogError(f"{where} must be an object with at least name and source.")
    name = item.get("name")
    if isinstance(name, str) and name.strip():
        where = f"{variable} entry {index + 1} ({name.strip()!r})"
    unknown = sorted(set(item) - set(_FIELDS))
    if unknown:
        raise CatalogError(f"{where}: unknown field {unknown[0]!r}; use {', '.join(_FIELDS)}.")
    texts = {key: item.get(key, "") for key in _FIELDS if key != "scale"}
    for key, value in texts.items():
        if not isinstance(value, str):
            raise CatalogError(f"{where}: {key} must be text.")
    name = texts["name"].strip()
    if not name or len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise CatalogError(f"{where}: name must be 1 to {MAX_NAME_CHARS} printable characters.")
    if looks_like_hub_id(name):
        # Names and Hub ids share the parameter: a name must never read as a Hub id.
        raise CatalogError(f"{where}: a name must not look like a Hub id (owner/name).")
    source = texts["source"].strip()
    local = source.endswith(SAFETENSORS_SUFFIX) or Path(source).exists()
    if not source or (not local and not looks_like_hub_id(source)):
        raise CatalogError(
            f"{where}: source must be a Hub model id (owner/name) or a local .safetensors file."
        )
    if local and not source.endswith(SAFETENSORS_SUFFIX):
        raise CatalogError(
            f"{where}: {source} is not a .safetensors file (pickle files are never read)."
        )
    weight_name = texts["weight_name"].strip()
    if not local and not weight_name.endswith(SAFETENSORS_SUFFIX):
        raise CatalogError(f"{where}: weight_name must name the repo's .safetensors file.")
    scale = item.get("scale", 1.0)
    if (
        isinstance(scale, bool)
        or not isinstance(scale, int | float)
        or not MIN_SCALE <= scale <= MAX_SCALE
    ):
        raise CatalogError(f"{where}: scale must be a number from {MIN_SCALE:g} to {MAX_SCALE:g}.")
    triggers = " ".join(texts["triggers"].split())
    if len(triggers) > MAX_TRIGGER_CHARS:
        raise CatalogError(f"{where}: triggers are limited to {MAX_TRIGGER_CHARS} characters.")
    return AdapterEntry(
        name=name,
        source=source,
        weight_name=weight_name,
        triggers=triggers,
        scale=float(scale),
        preview=texts["preview"].strip(),
        model=texts["model"].strip() or default_model,
    )
