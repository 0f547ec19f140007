"""Text to image: our own tool (page, `/text_to_image`, MCP `text_to_image`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from zimage import presets
from zimage.tools.adapters import ADAPTER, ADAPTER_SCALE, TRIGGER_WORDS, AdapterUse
from zimage.tools.checks import parse_resolution
from zimage.tools.common import PROMPT, RANDOMIZE_SEED, RESOLUTION, SEED, SHIFT, STEPS
from zimage.tools.parameters import Kind, Parameter, ToolRequest, parameter

NUM_IMAGES = Parameter(
    Kind.INTEGER,
    "How many images to make, {minimum} to {maximum}, with seeds seed, seed + 1, ...",
    label="Number of images",
    default=1,
    minimum=1,
    maximum=presets.MAX_IMAGES_PER_RUN,
    logged=True,
)
LIVE_PREVIEW = Parameter(
    Kind.BOOLEAN,
    "Also send the picture forming, one small frame per image and step, before the result "
    "(read them with client.submit(...)).",
    label="Live preview",
    default=False,
    for_agents=False,  # agents get progress notifications instead
)


@dataclass(frozen=True, kw_only=True)
class TextToImage(ToolRequest):
    """Make 1 to 4 images from a text prompt in one run."""

    tool_name: ClassVar[str] = "text_to_image"
    agent_name: ClassVar[str] = "text_to_image"
    returns: ClassVar[str] = "The images (captions \"seed N\") and the seed of the first image."
    text_field: ClassVar[str] = "prompt"

    prompt: str = parameter(PROMPT)
    resolution: str = parameter(RESOLUTION)
    seed: int = parameter(
        SEED,
        description="Seed of the first image; image i uses seed + i. -1 (the default) draws "
        "one.",
    )
    randomize_seed: bool = parameter(RANDOMIZE_SEED)
    steps: int = parameter(STEPS)
    shift: float = parameter(SHIFT)
    num_images: int = parameter(NUM_IMAGES)
    live_preview: bool = parameter(LIVE_PREVIEW)
    lora: str = parameter(ADAPTER)
    lora_scale: float | None = parameter(ADAPTER_SCALE)
    lora_2: str = parameter(ADAPTER, description="Optional second style adapter, as `lora`.")
    lora_2_scale: float | None = parameter(ADAPTER_SCALE)
    trigger_words: bool = parameter(TRIGGER_WORDS)
    # The adapters the engine runs, resolved by the service from the names. Not a parameter.
    adapters: tuple[AdapterUse, ...] = ()
    # The official Space's way, for /generate: a prompt longer than the text encoder reads is
    # cut there (and the server log says so) instead of refused. Not a parameter.
    cut_long_prompt: bool = False

    @property
    def width(self) -> int:
        return parse_resolution(self.resolution)[0]

    @property
    def height(self) -> int:
        return parse_resolution(self.resolution)[1]

    @property
    def seeds(self) -> list[int]:
        return [self.seed + index for index in range(self.num_images)]

    @property
    def steps_to_run(self) -> int:
        return self.steps
