"""Resolutions, defaults and limits: pure data, one place for each fact."""

from __future__ import annotations

# Turbo sampling defaults (diffusers >= 0.42 counts 8 steps as 8 transformer forwards).
DEFAULT_STEPS = 8
MIN_STEPS = 1
MAX_STEPS = 50
DEFAULT_SHIFT = 3.0
MIN_SHIFT = 1.0
MAX_SHIFT = 10.0
GUIDANCE_SCALE = 0.0
MAX_SEQUENCE_LENGTH = 512

# The models a Space may serve: Turbo always; Base (Tongyi-MAI/Z-Image) where the operator
# enables it (ZIMAGE_BASE_MODEL). Same architecture, text encoder and VAE; only the transformer
# differs.
TURBO = "turbo"
BASE = "base"
MODEL_NAMES = (TURBO, BASE)
# Base as its model card advises: 28-50 steps (its example: 50), classifier-free guidance 3-5
# (its example: 4), CFG normalisation off for general styles (on for photorealism).
BASE_DEFAULT_STEPS = 50
DEFAULT_STEPS_OF = {TURBO: DEFAULT_STEPS, BASE: BASE_DEFAULT_STEPS}
DEFAULT_GUIDANCE = 4.0
MIN_GUIDANCE = 0.0
MAX_GUIDANCE = 10.0

# Images made in one run (seeds s, s+1, ...), as one batch on the GPU.
MAX_IMAGES_PER_RUN = 4

# Seeds are drawn from and validated against this range (fits a 32-bit integer in every client).
MAX_SEED = 2**31 - 1
# The seed the page and the official Space's /generate start with.
DEFAULT_SEED = 42

# Text-to-image sizes: both sides multiples of 16 in [256, 2048], at most 4 megapixels.
SIZE_MULTIPLE = 16
MIN_SIDE = 256
MAX_SIDE = 2048
MAX_PIXELS = 4_000_000

# The official Space's presets: 11 aspect ratios for each of three size categories.
RESOLUTION_PRESETS: dict[str, list[str]] = {
    "1024": [
        "1024x1024",
        "1152x896",
        "896x1152",
        "1152x864",
        "864x1152",
        "1248x832",
        "832x1248",
        "1280x720",
        "720x1280",
        "1344x576",
        "576x1344",
    ],
    "1280": [
        "1280x1280",
        "1440x1120",
        "1120x1440",
        "1472x1104",
        "1104x1472",
        "1536x1024",
        "1024x1536",
        "1536x864",
        "864x1536",
        "1680x720",
        "720x1680",
    ],
    "1536": [
        "1536x1536",
        "1728x1344",
        "1344x1728",
        "1728x1296",
        "1296x1728",
        "1872x1248",
        "1248x1872",
        "2048x1152",
        "1152x2048",
        "2016x864",
        "864x2016",
    ],
}
DEFAULT_CATEGORY = "1024"
DEFAULT_RESOLUTION = "1024x1024"

# The aspect ratio of each position in a category's list, named as the official Space names it.
ASPECT_RATIOS = ["1:1", "9:7", "7:9", "4:3", "3:4", "3:2", "2:3", "16:9", "9:16", "21:9", "9:21"]
_ASPECT_OF = {
    size: ratio
    for sizes in RESOLUTION_PRESETS.values()
    for size, ratio in zip(sizes, ASPECT_RATIOS, strict=True)
}

# Edit inputs.
EDIT_MIN_SIDE = 64
DEFAULT_EDIT_MAX_MEGAPIXELS = 1.0
DEFAULT_MAX_UPLOAD_MB = 20
# Decompression-bomb guard: images declaring more pixels than this are refused before decoding.
MAX_DECODE_PIXELS = 64 * 1024 * 1024
# Memory one input image may take while it is decoded (Pillow's bytes a pixel for its mode,
# plus the decoder's own buffers): this much per megapixel the edit uses, at most the cap.
# At the default 1 MP: an 8-bit RGB PNG of up to 50 megapixels, RGBA 25, a float TIFF 16,
# a WebP 12; a baseline JPEG up to MAX_DECODE_PIXELS (it is decoded at a reduced scale).
DECODE_BYTES_PER_EDIT_MEGAPIXEL = 192 * 1024 * 1024
MAX_DECODE_BYTES = 224 * 1024 * 1024
DEFAULT_STRENGTH = 0.6
MIN_STRENGTH = 0.05
MAX_STRENGTH = 1.0

# Prompts.
MAX_PROMPT_CHARS = 2000
# The official Space's /generate takes longer prompts and cuts them where the text encoder stops
# reading (MAX_SEQUENCE_LENGTH tokens); this only keeps such requests small.
MAX_OFFICIAL_PROMPT_CHARS = 20000

# Prompt enhancer: how many tokens it may write (the text encoder reads at most
# MAX_SEQUENCE_LENGTH, so more could never be used).
DEFAULT_ENHANCER_MAX_TOKENS = 256
MIN_ENHANCER_MAX_TOKENS = 16


def resolution_label(size: str) -> str:
    """A preset as the official Space lists it, "1280x720 ( 16:9 )"; other sizes as they are."""
    ratio = _ASPECT_OF.get(size)
    return f"{size} ( {ratio} )" if ratio else size
