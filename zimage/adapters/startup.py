"""At start, in the serving process: the operator's adapters loaded into the engine (a ZeroGPU
worker forked later inherits them) and the menu the doors offer. A file that cannot be used
stops start-up with one line naming its entry."""

from __future__ import annotations

import logging
from pathlib import Path

from zimage.adapters.catalog import AdapterEntry
from zimage.adapters.hub import MB, HubAdapters, operator_file
from zimage.adapters.menu import AdapterMenu, OfferedAdapter
from zimage.engine.interface import ImageEngine
from zimage.engine.lora_files import AdapterRefused
from zimage.settings import Settings, SettingsError

logger = logging.getLogger(__name__)

HUB_FOLDER = "hub-adapters"


def adapter_menu(settings: Settings, engine: ImageEngine) -> AdapterMenu:
    """Load every ZIMAGE_LORAS entry into `engine` and give the menu of what is offered."""
    if engine.adapters is None:  # no model runs here: nothing to offer
        return AdapterMenu(model=settings.model)
    offered = [
        _loaded(entry, index, settings, engine) for index, entry in enumerate(settings.loras)
    ]
    hub = None
    if settings.lora_from_hub:
        folder = Path(settings.data_dir) / HUB_FOLDER
        hub = HubAdapters(folder, settings.lora_max_mb * MB, settings.lora_hub_keep)
        engine.adapters.visitor_slots = settings.lora_hub_keep
    if (offered or hub) and settings.compile:
        logger.warning(
            "ZIMAGE_COMPILE with adapters: the compiled blocks are compiled again for each new "
            "choice of adapters (measured on a GPU: pending, BENCHMARKS.md)"
        )
    if offered or hub:
        logger.info(
            "adapters: %d offered (%s); visitor-named Hub adapters %s",
            len(offered),
            ", ".join(adapter.name for adapter in offered) or "none",
            "on" if hub else "off",
        )
    return AdapterMenu(offered, model=settings.model, hub=hub)


def _loaded(
    entry: AdapterEntry, index: int, settings: Settings, engine: ImageEngine
) -> OfferedAdapter:
    where = f"ZIMAGE_LORAS entry {index + 1} ({entry.name!r})"
    if entry.model != settings.model:
        raise SettingsError(
            f"{where} is made for {entry.model}, but this Space runs {settings.model} "
            "(ZIMAGE_MODEL)."
        )
    try:
        file = entry.source if entry.is_local else operator_file(entry.source, entry.weight_name)
        preview = _preview(entry)
    except Exception as error:  # noqa: BLE001 - the Hub client's errors are many; one line each
        raise SettingsError(
            f"{where}: could not get its files ({error.__class__.__name__}: {error})."
        ) from None
    key = f"lora_{index}"
    try:
        engine.adapters.load(key, file, f"{where}: {Path(file).name}")
    except AdapterRefused as error:
        raise SettingsError(str(error)) from None
    except Exception as error:  # noqa: BLE001 - e.g. PEFT refusing a quantized layer (ZIMAGE_QUANT)
        logger.exception("loading %s failed", where)
        raise SettingsError(
            f"{where}: {Path(file).name} could not be loaded into the model "
            f"({error.__class__.__name__}: {error})."
        ) from None
    return OfferedAdapter(entry, key, file, preview)


def _preview(entry: AdapterEntry) -> str:
    """The entry's preview image: a local file, or a file of its Hub repo; "" for none."""
    if not entry.preview:
        return ""
    if Path(entry.preview).is_file() or entry.is_local:
        if not Path(entry.preview).is_file():
            raise FileNotFoundError(entry.preview)
        return str(Path(entry.preview).resolve())
    return operator_file(entry.source, entry.preview)
