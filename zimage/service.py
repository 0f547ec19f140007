"""The request path: validate -> engine -> encode. Plain Python, shared by the UI and the API."""

from __future__ import annotations

from dataclasses import dataclass

from zimage import presets
from zimage.engine import Engine, GenerateRequest, ProgressCallback, Timings, UnavailableEngine
from zimage.images import encode_png
from zimage.validation import (
    check_integer,
    check_number,
    check_prompt,
    choose_seed,
    parse_resolution,
)


@dataclass(frozen=True)
class ImageOutcome:
    png: bytes
    seed: int
    width: int
    height: int
    timings: Timings


class ZImageService:
    """What a visitor or script can ask of the Space."""

    def __init__(self, engine: Engine | UnavailableEngine) -> None:
        self.engine = engine

    def generate(
        self,
        prompt: object,
        resolution: str,
        seed: object,
        randomize_seed: bool,
        steps: object,
        shift: object,
        progress: ProgressCallback | None = None,
    ) -> ImageOutcome:
        """Text-to-image; raises InputError for a bad parameter, EngineUnavailable without a model."""
        width, height = parse_resolution(resolution)
        request = GenerateRequest(
            prompt=check_prompt(prompt),
            width=width,
            height=height,
            seed=choose_seed(seed, bool(randomize_seed)),
            steps=check_integer(steps, "Steps", presets.MIN_STEPS, presets.MAX_STEPS),
            shift=check_number(shift, "Time shift", presets.MIN_SHIFT, presets.MAX_SHIFT),
        )
        result = self.engine.text_to_image(request, progress)
        return ImageOutcome(
            png=encode_png(result.image),
            seed=result.seed,
            width=result.image.width,
            height=result.image.height,
            timings=result.timings,
        )
