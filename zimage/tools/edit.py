"""Editing an image with an instruction (page, `/edit`, MCP `edit_image`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from PIL import Image

from zimage import presets
from zimage.tools.adapters import ADAPTER, ADAPTER_SCALE, TRIGGER_WORDS, AdapterUse
from zimage.tools.common import RANDOMIZE_SEED, SEED, STEPS
from zimage.tools.parameters import Kind, Parameter, ToolRequest, parameter

IMAGE = Parameter(
    Kind.FILE,
    "The image to edit: PNG, JPEG, WebP, BMP, GIF (first frame) or TIFF. It is scaled down to "
    "the edit size.",
    label="Image",
)
INSTRUCTION = Parameter(
    Kind.PROMPT,
    'What to change, e.g. "make it a snowy evening" (up to {maximum} characters).',
    label="Instruction",
    maximum=presets.MAX_PROMPT_CHARS,
    kept=True,
)
MASK = Parameter(
    Kind.FILE,
    "Optional. White (or opaque) where the image may change; without it the whole image may "
    "change.",
    label="Mask",
    default=None,
)
STRENGTH = Parameter(
    Kind.NUMBER,
    "How much may change, {minimum} to {maximum} (default {default}).",
    label="Strength",
    default=presets.DEFAULT_STRENGTH,
    minimum=presets.MIN_STRENGTH,
    maximum=presets.MAX_STRENGTH,
    logged=True,
)


@dataclass(frozen=True, kw_only=True)
class Edit(ToolRequest):
    """Edit an image with an instruction; a mask limits the change to its white area.

    `image` and `mask` are what the caller sent (a path, bytes or a file object); in the
    request the engine runs, the normalised RGB image and the mask (mode L, white = change).
    `mask_layers` are the page's painted layers, read as the mask when none is given.
    """

    tool_name: ClassVar[str] = "edit"
    agent_name: ClassVar[str] = "edit_image"
    returns: ClassVar[str] = (
        "The edited PNG, the seed used, and the method that ran: img2img, inpaint or omni."
    )
    text_field: ClassVar[str] = "instruction"

    image: Any = parameter(IMAGE)
    instruction: str = parameter(INSTRUCTION)
    mask: Any = parameter(MASK)
    strength: float = parameter(STRENGTH)
    seed: int = parameter(SEED)
    randomize_seed: bool = parameter(RANDOMIZE_SEED)
    steps: int = parameter(STEPS)
    lora: str = parameter(ADAPTER)
    lora_scale: float | None = parameter(ADAPTER_SCALE)
    lora_2: str = parameter(ADAPTER, description="Optional second style adapter, as `lora`.")
    lora_2_scale: float | None = parameter(ADAPTER_SCALE)
    trigger_words: bool = parameter(TRIGGER_WORDS)
    mask_layers: Sequence[Any] = field(default=())
    adapters: tuple[AdapterUse, ...] = ()

    num_images: ClassVar[int] = 1
    # Edits run on turbo, without guidance (README, "Edit").
    model: ClassVar[str] = presets.TURBO
    guidance_scale: ClassVar[float] = presets.GUIDANCE_SCALE
    forwards_per_step: ClassVar[int] = 1

    @property
    def picture(self) -> Image.Image:
        assert isinstance(self.image, Image.Image), "the image is decoded by the service"
        return self.image

    @property
    def width(self) -> int:
        return self.picture.width

    @property
    def height(self) -> int:
        return self.picture.height

    @property
    def prompt(self) -> str:
        return self.instruction

    @property
    def seeds(self) -> list[int]:
        return [self.seed]

    @property
    def inference_steps(self) -> int:
        # Strength scales the steps actually run; always leave at least one.
        return max(self.steps, math.ceil(1 / self.strength))

    @property
    def steps_to_run(self) -> int:
        return max(1, int(self.inference_steps * self.strength))
