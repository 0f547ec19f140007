"""ZeroGPU: the `spaces.GPU` decorator where it applies, and how much GPU time to ask for."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

# ZeroGPU time budget: worker start-up, text encoder and VAE, then each transformer pass of one
# megapixel (about 0.15 s on half an H200 in bfloat16, asked for with a 3x margin); a step is
# one pass, two with guidance (the Base model).
ZERO_GPU_BASE_S = 10.0
ZERO_GPU_STEP_MEGAPIXEL_S = 0.5
# The prompt enhancer writes a token in about 25 ms there (Qwen3-4B, bfloat16), asked for 3x.
ZERO_GPU_TOKEN_S = 0.08


def zero_gpu_decorator() -> Callable[..., Any] | None:
    """`spaces.GPU` when running on a ZeroGPU Space, else None (the package is optional)."""
    if not os.environ.get("SPACES_ZERO_GPU"):
        return None
    try:
        import spaces
    except ImportError:
        logger.warning("SPACES_ZERO_GPU is set but the spaces package is not installed")
        return None
    return spaces.GPU


def gpu_seconds_needed(
    width: int, height: int, steps: int, images: int = 1, cap_s: float = 120.0, passes: int = 1
) -> int:
    """The ZeroGPU time to ask for: start-up plus time per transformer pass (`passes` a step)
    and megapixel, at most `cap_s`.

    Visitors' daily ZeroGPU quotas are minutes, and a shorter ask gets a better queue place.
    """
    megapixels = width * height / 1_000_000
    wanted = ZERO_GPU_BASE_S + steps * passes * megapixels * images * ZERO_GPU_STEP_MEGAPIXEL_S
    return math.ceil(min(cap_s, wanted))


def seconds_for_tokens(tokens: int, cap_s: float = 120.0) -> int:
    """The ZeroGPU time to ask for a prompt enhancement of at most `tokens` tokens."""
    return math.ceil(min(cap_s, ZERO_GPU_BASE_S + tokens * ZERO_GPU_TOKEN_S))
