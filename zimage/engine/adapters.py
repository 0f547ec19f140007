"""LoRA adapters in the loaded transformer, switched per run without reloading the model.

Every adapter is loaded once as a PEFT adapter of its own (diffusers' LoRA loader); a run picks
which ones take part and at what strength (`set_adapters`), or switches them all off. The
weights themselves are never changed (no fuse/unfuse), so a run without adapters computes
exactly what the bare model computes, whatever ran before it (BENCHMARKS.md compares both ways).

`activate` runs in the GPU half of each job (zimage/engine/engine.py `run_job`), so on ZeroGPU it
sets the state of the worker that runs the job: the operator's adapters were loaded in the
serving process before any fork and are inherited; a visitor-named adapter is loaded from its
file by the process that needs it, and only the last few stay loaded.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from diffusers import DiffusionPipeline

from zimage.engine.lora_files import AdapterRefused, lora_weights
from zimage.tools.adapters import AdapterUse

logger = logging.getLogger(__name__)

PEFT_REQUIREMENT = "peft==0.21.2"
# Visitor-named adapters kept loaded at once; the least recently used one goes first.
DEFAULT_VISITOR_SLOTS = 4


class LoadedAdapters:
    """The adapters loaded into one pipeline's transformer, and the ones the current run uses."""

    def __init__(
        self, pipeline: DiffusionPipeline, visitor_slots: int = DEFAULT_VISITOR_SLOTS
    ) -> None:
        self.pipeline = pipeline
        self.visitor_slots = visitor_slots
        self._kept: set[str] = set()  # the operator's: loaded at start, never unloaded
        self._visited: OrderedDict[str, None] = OrderedDict()  # visitor-named, least recent first
        self.active: tuple[AdapterUse, ...] = ()

    @property
    def loaded(self) -> list[str]:
        return [*self._kept, *self._visited]

    def load(self, key: str, file: str | Path, label: str) -> None:
        """Load an operator's adapter under `key`; AdapterRefused says why a file cannot be."""
        self._load(key, file, label)
        self._kept.add(key)

    def activate(self, uses: Sequence[AdapterUse]) -> None:
        """Make exactly `uses` take part in the next run (none: every adapter off). An adapter
        at strength 0 is left out, so that it gives the bare model's result bit for bit."""
        for use in uses:
            self._ensure_loaded(use)
        running = [use for use in uses if use.scale != 0]
        transformer = self.pipeline.transformer
        if running:
            transformer.set_adapters([use.key for use in running], [use.scale for use in running])
            transformer.enable_lora()
        elif self.loaded:
            transformer.disable_lora()
        self.active = tuple(running)

    def _ensure_loaded(self, use: AdapterUse) -> None:
        if use.key in self._kept:
            return
        if use.key in self._visited:
            self._visited.move_to_end(use.key)
            return
        if not use.file:
            raise AdapterRefused("That adapter is no longer loaded here. Please choose it again.")
        while len(self._visited) >= self.visitor_slots:
            oldest, _ = self._visited.popitem(last=False)
            self.pipeline.transformer.delete_adapters(oldest)
        self._load(use.key, use.file, "The adapter")
        self._visited[use.key] = None

    def _load(self, key: str, file: str | Path, label: str) -> None:
        if importlib.util.find_spec("peft") is None:
            raise AdapterRefused(f"Adapters need the peft package ({PEFT_REQUIREMENT}).")
        transformer = self.pipeline.transformer
        if not Path(file).is_file():
            raise AdapterRefused(f"{label} file is missing ({Path(file).name}). Please try again.")
        weights = lora_weights(file, label, transformer)
        with warnings.catch_warnings():
            # Several adapters in one model is what this module is for.
            warnings.filterwarnings("ignore", "Already found a `peft_config`", UserWarning)
            self.pipeline.load_lora_weights(weights, adapter_name=key)
        # Loading makes the new adapter the active one: every run sets its own.
        transformer.disable_lora()
        logger.info("adapter %s loaded (%d tensors)", key, len(weights))
