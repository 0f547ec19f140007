"""Text to image: our own tool (page, `/text_to_image`, MCP `text_to_image`)."""

from __future__ import annotations

import dataclasses
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
# The key of the offered choices of `model`: the models this Space serves (base only where the
# operator enables it), which each door fills in from the service (`ZImageService.offered`).
SERVED_MODELS = "models"
MODEL = Parameter(
    Kind.CHOICE,
    "Which Z-Image model makes the images: turbo (8 steps, no guidance: fast) or base (50 "
    "steps with guidance and a negative prompt: more variety between seeds, about 12 times as "
    "long), where this Space serves it.",
    label="Model",
    default=presets.TURBO,
    choices=presets.MODEL_NAMES,
    offered=SERVED_MODELS,
    logged=True,
)
NEGATIVE_PROMPT = Parameter(
    Kind.OPTIONAL_PROMPT,
    "What to keep out of the picture (up to {maximum} characters); base model with guidance "
    "only: turbo ignores it.",
    label="Negative prompt",
    default="",
    maximum=presets.MAX_PROMPT_CHARS,
    kept=True,
)
GUIDANCE = Parameter(
    Kind.NUMBER,
    "Classifier-free guidance of the base model, {minimum} to {maximum}; empty (the default) "
    f"for {presets.DEFAULT_GUIDANCE:g} (its model card advises 3 to 5); 0 turns it off. Turbo "
    "always runs without guidance.",
    label="Guidance",
    default=None,
    minimum=presets.MIN_GUIDANCE,
    maximum=presets.MAX_GUIDANCE,
    logged=True,
)
CFG_NORMALIZATION = Parameter(
    Kind.BOOLEAN,
    "Base model with guidance: keep each guided prediction no larger than the unguided one "
    "(diffusers' cfg_normalization); its model card advises it for photorealism, off for "
    "other styles.",
    label="CFG normalization",
    default=False,
    logged=True,
)


@dataclass(frozen=True, kw_only=True)
class TextToImage(ToolRequest):
    """Make 1 to 4 images from a text prompt in one run."""

    tool_name: ClassVar[str] = "text_to_image"
    agent_name: ClassVar[str] = "text_to_image"
    returns: ClassVar[str] = 'The images (captions "seed N") and the seed of the first image.'
    text_field: ClassVar[str] = "prompt"

    prompt: str = parameter(PROMPT)
    resolution: str = parameter(RESOLUTION)
    seed: int = parameter(
        SEED,
        description="Seed of the first image; image i uses seed + i. -1 (the default) draws one.",
    )
    randomize_seed: bool = parameter(RANDOMIZE_SEED)
    steps: int | None = parameter(
        STEPS,
        default=None,
        description="Denoising steps, {minimum} to {maximum}; empty (the default) for the "
        f"model's own: {presets.DEFAULT_STEPS} for turbo, {presets.BASE_DEFAULT_STEPS} for base.",
    )
    shift: float = parameter(SHIFT)
    num_images: int = parameter(NUM_IMAGES)
    live_preview: bool = parameter(LIVE_PREVIEW)
    model: str = parameter(MODEL)
    negative_prompt: str = parameter(NEGATIVE_PROMPT)
    guidance: float | None = parameter(GUIDANCE)
    cfg_normalization: bool = parameter(CFG_NORMALIZATION)
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
        return self.steps if self.steps is not None else presets.DEFAULT_STEPS_OF[self.model]

    @property
    def guidance_scale(self) -> float:
        """What the pipeline gets as `guidance_scale`: exactly 0.0 for turbo, whatever was asked
        (diffusers >= 0.37 turns classifier-free guidance on for any value above 0)."""
        if self.model != presets.BASE:
            return presets.GUIDANCE_SCALE
        return presets.DEFAULT_GUIDANCE if self.guidance is None else float(self.guidance)

    @property
    def forwards_per_step(self) -> int:
        """Transformer passes per step for each image: two with guidance (with and without the
        prompt), one without."""
        return 2 if self.guidance_scale > 0 else 1

    def checked(self) -> TextToImage:
        """Checked, with the model's own defaults filled in and what the model does not use
        cleared (turbo: no guidance, no negative prompt). Whether this Space serves the model
        is the service's check."""
        checked = super().checked()
        base = checked.model == presets.BASE
        return dataclasses.replace(
            checked,
            steps=checked.steps_to_run,
            guidance=checked.guidance_scale,
            negative_prompt=checked.negative_prompt if base else "",
            cfg_normalization=checked.cfg_normalization and base,
        )
