"""What a visitor, script or agent asks the engine for, and what they get back."""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

from zimage import presets


@dataclass(frozen=True)
class GenerateRequest:
    """`owner` (a browser or session) may reuse its own prompt embeddings; "" never does.

    `num_images` images are made in one batch with seeds `seed`, `seed + 1`, ...
    """

    prompt: str
    width: int
    height: int
    seed: int
    steps: int = presets.DEFAULT_STEPS
    shift: float = presets.DEFAULT_SHIFT
    owner: str = ""
    num_images: int = 1

    @property
    def seeds(self) -> list[int]:
        return [self.seed + index for index in range(self.num_images)]

    @property
    def steps_to_run(self) -> int:
        return self.steps


@dataclass(frozen=True)
class EditRequest:
    """An edit of a normalised RGB image; `mask` (mode L, white = change) selects inpainting."""

    image: Image.Image
    instruction: str
    seed: int
    mask: Image.Image | None = None
    strength: float = presets.DEFAULT_STRENGTH
    steps: int = presets.DEFAULT_STEPS
    owner: str = ""
    num_images: int = 1

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height

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


@dataclass(frozen=True)
class EnhanceRequest:
    """Rewrite a prompt with the prompt enhancer; greedy when `seed` is None."""

    prompt: str
    seed: int | None = None
    owner: str = ""


ImageRequest = GenerateRequest | EditRequest
Request = GenerateRequest | EditRequest | EnhanceRequest


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
