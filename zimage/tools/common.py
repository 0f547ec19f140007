"""Parameters several tools share, described once."""

from __future__ import annotations

from zimage import presets
from zimage.tools.checks import RANDOM_SEED, check_resolution
from zimage.tools.parameters import Kind, Parameter

PROMPT = Parameter(
    Kind.PROMPT,
    "What to draw, in English or Chinese; text in quotes is written into the picture "
    "(up to {maximum} characters).",
    label="Prompt",
    maximum=presets.MAX_PROMPT_CHARS,
    kept=True,
)
RESOLUTION = Parameter(
    Kind.TEXT,
    'WIDTHxHEIGHT such as "1024x1024"; sides multiples of '
    f"{presets.SIZE_MULTIPLE} from {presets.MIN_SIDE} to {presets.MAX_SIDE}, at most "
    f"{presets.MAX_PIXELS / 1e6:g} megapixels.",
    label="Resolution",
    default=presets.DEFAULT_RESOLUTION,
    check=check_resolution,
    logged=True,
)
SEED = Parameter(
    Kind.SEED,
    "Seed for the random noise; the same seed and settings give the same image. -1 (the "
    "default) draws one.",
    label="Seed",
    default=RANDOM_SEED,
    minimum=RANDOM_SEED,
    maximum=presets.MAX_SEED,
)
RANDOMIZE_SEED = Parameter(
    Kind.BOOLEAN,
    "Draw a new seed even when `seed` is given.",
    label="Random seed",
    default=False,
    aliases=("random_seed",),
)
STEPS = Parameter(
    Kind.INTEGER,
    "Denoising steps, {minimum} to {maximum} ({default} is the Turbo default).",
    label="Steps",
    default=presets.DEFAULT_STEPS,
    minimum=presets.MIN_STEPS,
    maximum=presets.MAX_STEPS,
    logged=True,
)
SHIFT = Parameter(
    Kind.NUMBER,
    "Time shift of the sampler, {minimum} to {maximum} (default {default}).",
    label="Time shift",
    default=presets.DEFAULT_SHIFT,
    minimum=presets.MIN_SHIFT,
    maximum=presets.MAX_SHIFT,
    logged=True,
)
