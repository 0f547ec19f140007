"""The models an engine serves: pipelines that share all but the transformer, and which
transformer is on the device when the device cannot hold them all.

Turbo and Base share everything but the transformer (about 12 GB each in bfloat16) and the
scheduler's settings. Where the device holds both beside the text encoder and VAE, both stay
there and a request only picks one. Otherwise one is on the device at a time: asking for the
other moves the one there out to CPU memory and the asked one in, in the GPU slot, so no running
job ever loses its transformer.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel

logger = logging.getLogger(__name__)


class ModelSwitch:
    """Keeps the transformer a request names on the device.

    `one_at_a_time`: the device holds one transformer; `current` is the one there (the first
    given at start) and the others wait in CPU memory.
    """

    def __init__(
        self, transformers: Mapping[str, torch.nn.Module], device: torch.device, one_at_a_time: bool
    ) -> None:
        self.transformers = dict(transformers)
        self.device = device
        self.one_at_a_time = one_at_a_time
        self.current = next(iter(self.transformers))
        self.moves = 0
        if one_at_a_time:
            for name, transformer in self.transformers.items():
                if name != self.current:
                    transformer.to("cpu")
        else:
            for transformer in self.transformers.values():
                transformer.to(device)

    def bring(self, name: str) -> None:
        """Have `name`'s transformer on the device (and, one at a time, only it)."""
        if not self.one_at_a_time or name == self.current:
            return
        logger.info(
            "moving the %s transformer to %s in place of %s", name, self.device, self.current
        )
        self.transformers[self.current].to("cpu")
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        self.transformers[name].to(self.device)
        self.current = name
        self.moves += 1


def sharing_pipeline(
    pipeline: ZImagePipeline,
    transformer: ZImageTransformer2DModel,
    scheduler: FlowMatchEulerDiscreteScheduler,
) -> ZImagePipeline:
    """A pipeline with its own transformer and scheduler and `pipeline`'s text encoder,
    tokenizer and VAE (the same objects)."""
    shared = ZImagePipeline(
        **{**pipeline.components, "transformer": transformer, "scheduler": scheduler}
    )
    shared.set_progress_bar_config(disable=True)
    return shared
