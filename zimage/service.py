"""The request path: validate -> engine -> encode. Plain Python, shared by the UI and the API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from zimage import presets
from zimage.engine import (
    EditRequest,
    Engine,
    GenerateRequest,
    ProgressCallback,
    Timings,
    UnavailableEngine,
)
from zimage.images import ImageLimits, Source, encode_png, load_input_image, load_mask, painted_mask
from zimage.validation import (
    InputError,
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
    method: str
    width: int
    height: int
    timings: Timings


def _outcome(image: Image.Image, seed: int, method: str, timings: Timings) -> ImageOutcome:
    return ImageOutcome(encode_png(image), seed, method, image.width, image.height, timings)


class ZImageService:
    """What a visitor or script can ask of the Space."""

    def __init__(self, engine: Engine | UnavailableEngine, image_limits: ImageLimits) -> None:
        self.engine = engine
        self.image_limits = image_limits

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
        """Text-to-image. Raises InputError for a bad parameter, EngineUnavailable without model."""
        width, height = parse_resolution(resolution)
        request = GenerateRequest(
            prompt=check_prompt(prompt),
            width=width,
            height=height,
            seed=choose_seed(seed, bool(randomize_seed)),
            steps=check_steps(steps),
            shift=check_number(shift, "Time shift", presets.MIN_SHIFT, presets.MAX_SHIFT),
        )
        result = self.engine.text_to_image(request, progress)
        return _outcome(result.image, result.seed, "text-to-image", result.timings)

    def edit(
        self,
        image: Source | None,
        instruction: object,
        mask: Source | None,
        strength: object,
        seed: object,
        randomize_seed: bool,
        steps: object,
        progress: ProgressCallback | None = None,
        mask_layers: Sequence[Source] = (),
    ) -> ImageOutcome:
        """Edit an image. `mask` (white = change) or painted `mask_layers` select inpainting.

        Raises InputError / ImageInputError for bad input, EngineUnavailable without a model.
        """
        instruction = check_prompt(instruction, what="instruction")
        strength_value = check_number(
            strength, "Strength", presets.MIN_STRENGTH, presets.MAX_STRENGTH
        )
        steps_value = check_steps(steps)
        seed_value = choose_seed(seed, bool(randomize_seed))
        if image is None:
            raise InputError("Please add an image to edit.")
        picture = load_input_image(image, self.image_limits)
        if mask is not None:
            mask_image = load_mask(mask, picture.size, self.image_limits)
        else:
            mask_image = painted_mask(mask_layers, picture.size, self.image_limits)
        request = EditRequest(
            image=picture,
            instruction=instruction,
            seed=seed_value,
            mask=mask_image,
            strength=strength_value,
            steps=steps_value,
        )
        result = self.engine.edit(request, progress)
        return _outcome(result.image, result.seed, result.method, result.timings)


def check_steps(steps: object) -> int:
    return check_integer(steps, "Steps", presets.MIN_STEPS, presets.MAX_STEPS)
