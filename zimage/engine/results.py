"""What the engine is asked for (the tools' checked requests) and what it gives back."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from zimage.tools.edit import Edit
from zimage.tools.enhance import EnhancePrompt
from zimage.tools.text_to_image import TextToImage

ImageRequest = TextToImage | Edit
Request = TextToImage | Edit | EnhancePrompt


@dataclass(frozen=True)
class Timings:
    text_encoder_s: float
    denoise_s: float
    vae_s: float
    total_s: float


@dataclass(frozen=True)
class GenerateResult:
    images: list[Image.Image]
    seeds: list[int]
    timings: Timings

    @property
    def image(self) -> Image.Image:
        return self.images[0]

    @property
    def seed(self) -> int:
        return self.seeds[0]


@dataclass(frozen=True)
class EditResult:
    image: Image.Image
    seed: int
    method: str
    timings: Timings
