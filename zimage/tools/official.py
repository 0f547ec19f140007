"""`/generate` as the official Tongyi-MAI/Z-Image-Turbo Space has it: same parameters, order,
defaults and outputs, so its scripts run here unchanged. It runs as our text to image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from zimage import presets
from zimage.tools.common import RANDOMIZE_SEED, RESOLUTION, SEED, SHIFT, STEPS
from zimage.tools.parameters import Kind, Parameter, ToolRequest, parameter
from zimage.tools.text_to_image import TextToImage

# The official Space's default size label; any "WIDTHxHEIGHT" prefix is accepted.
OFFICIAL_RESOLUTION = "1024x1024 ( 1:1 )"

GALLERY_IMAGES = Parameter(
    Kind.FILES,
    "Images shown before; the new image is put in front of them.",
    label="Gallery images",
    default=None,
    for_agents=False,
)


@dataclass(frozen=True, kw_only=True)
class OfficialGenerate(ToolRequest):
    """Make an image from a text prompt, as the official Z-Image-Turbo Space does. Same
    parameters, order and outputs as the official Space, so its scripts run unchanged."""

    tool_name: ClassVar[str] = "generate"
    agent_name: ClassVar[str] = ""  # agents use text_to_image
    returns: ClassVar[str] = (
        "The gallery (new image first), the seed used as text, and the seed used as a number."
    )

    prompt: str = parameter(
        TextToImage.parameters()["prompt"],
        maximum=presets.MAX_OFFICIAL_PROMPT_CHARS,
        description="What to draw, in English or Chinese; the model reads the first "
        f"{presets.MAX_SEQUENCE_LENGTH} tokens (up to {{maximum}} characters are accepted).",
    )
    resolution: str = parameter(
        RESOLUTION,
        default=OFFICIAL_RESOLUTION,
        description='WIDTHxHEIGHT, optionally followed by a label as in "1024x1024 ( 1:1 )"; '
        + RESOLUTION.description.split("; ", 1)[1],
    )
    seed: int = parameter(
        SEED,
        default=presets.DEFAULT_SEED,
        description="Seed for the random noise; -1 draws one. Ignored when random_seed is true.",
    )
    steps: int = parameter(STEPS)
    shift: float = parameter(SHIFT)
    random_seed: bool = parameter(
        RANDOMIZE_SEED,
        default=True,
        aliases=(),
        description="Draw a new seed instead of using `seed`.",
    )
    gallery_images: list[Any] | None = parameter(GALLERY_IMAGES)

    def as_text_to_image(self) -> TextToImage:
        return TextToImage(
            prompt=self.prompt,
            resolution=self.resolution,
            seed=self.seed,
            randomize_seed=bool(self.random_seed),
            steps=self.steps,
            shift=self.shift,
            cut_long_prompt=True,
        )
