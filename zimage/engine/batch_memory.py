"""Whether a text-to-image batch fits in the memory that is free, checked before it runs.

A run holds, on top of the loaded weights, first the transformer's activations while it
denoises (growing with images x tokens, a token being a 16x16 patch of the picture plus the
caption's tokens), then the VAE's while it decodes (growing with images x pixels); the two
stages follow each other, so the run needs the larger of the two. Both are counted in units of
the model's own widths and element size, so one pair of figures serves the full model in
bfloat16 and the preview engine in float32. They were measured by counting the bytes of the
tensors alive during a forward pass (bench/batch_memory.py; BENCHMARKS.md has the runs).

With classifier-free guidance (the Base model) each step runs the transformer on twice the
images (with and without the prompt): its activations double, the decode does not.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil  # comes with accelerate (requirements.txt)
import torch

from zimage import presets
from zimage.engine.errors import OutOfGpuMemory

# Peak bytes of one transformer forward per token, in units of (model width x element size):
# 15.8-16.0 measured for the full-size Z-Image transformer in bfloat16 (122 KB a token at width
# 3840), 17.0-18.1 for the preview engine's in float32; this bound covers both.
TRANSFORMER_ROWS_PER_TOKEN = 18.5
# Peak bytes of the VAE decode per output pixel, in units of (widest channels at full size x
# element size): 3.00 measured for the FLUX VAE (three 256-channel pictures at full size, 1536 B
# a pixel in bfloat16), 3.02 for the preview engine's (193 B a pixel in float32).
VAE_ROWS_PER_PIXEL = 3.05
# Added to both for what counting tensors does not see: CUDA kernel workspaces, the caching
# allocator's fragmentation, the text encoder's own short peak. A guess until measured on a GPU.
MARGIN = 1.25
# The pixels one transformer token covers per side: the VAE's 8x reduction times 2x2 patches.
DEFAULT_PIXELS_PER_TOKEN_SIDE = 16
# A ZeroGPU workload gets half an H200 (70 GB); the serving process cannot ask CUDA what is free.
ZERO_GPU_WORKLOAD_BYTES = 70 * 10**9

MB = 1024**2
GB = 1024**3


class BatchTooLarge(OutOfGpuMemory):
    """Refused before running: the estimate says the batch would not fit in the memory free."""


@dataclass(frozen=True)
class BatchMemory:
    """The memory a text-to-image batch needs beyond the weights, from the model's sizes."""

    bytes_per_token: float
    bytes_per_pixel: float
    pixels_per_token_side: int = DEFAULT_PIXELS_PER_TOKEN_SIDE
    caption_tokens: int = presets.MAX_SEQUENCE_LENGTH

    @classmethod
    def of_pipeline(cls, pipeline: Any) -> BatchMemory:
        """Figures for a loaded Z-Image pipeline (its transformer's width, its VAE's channels)."""
        transformer, vae = pipeline.transformer, pipeline.vae
        channels = list(vae.config.block_out_channels)
        # The decoder's last up-sampling runs at full size with the second-narrowest width.
        full_size_channels = max(channels[:2])
        patch = transformer.config.all_patch_size[0]
        return cls(
            bytes_per_token=TRANSFORMER_ROWS_PER_TOKEN
            * transformer.config.dim
            * transformer.dtype.itemsize,
            bytes_per_pixel=VAE_ROWS_PER_PIXEL * full_size_channels * vae.dtype.itemsize,
            pixels_per_token_side=2 ** (len(channels) - 1) * patch,
        )

    def for_passes(self, passes: int) -> BatchMemory:
        """The figures for `passes` transformer passes a step (2 with guidance)."""
        return dataclasses.replace(self, bytes_per_token=self.bytes_per_token * passes)

    def needed_bytes(self, num_images: int, width: int, height: int) -> int:
        """Bytes the batch needs at its peak, margin included."""
        side = self.pixels_per_token_side
        tokens = (width // side) * (height // side) + self.caption_tokens
        denoise = num_images * tokens * self.bytes_per_token
        decode = num_images * width * height * self.bytes_per_pixel
        return math.ceil(max(denoise, decode) * MARGIN)

    def fits(self, num_images: int, width: int, height: int, available: int) -> bool:
        return self.needed_bytes(num_images, width, height) <= available

    def most_images(self, width: int, height: int, available: int, at_most: int) -> int:
        """The most images (0 to `at_most`) of this size that fit."""
        count = at_most
        while count > 0 and not self.fits(count, width, height, available):
            count -= 1
        return count

    def largest_size(
        self, num_images: int, width: int, height: int, available: int
    ) -> tuple[int, int] | None:
        """The largest size below `width`x`height` with about its aspect ratio (sides multiples
        of 16, at least the smallest side allowed) at which `num_images` images fit."""
        multiple, low = presets.SIZE_MULTIPLE, presets.MIN_SIDE
        landscape = width >= height
        long_side, short_side = (width, height) if landscape else (height, width)
        candidate = long_side - multiple
        while candidate >= low:
            short = round(candidate * short_side / long_side / multiple) * multiple
            if short < low:
                return None
            size = (candidate, short) if landscape else (short, candidate)
            if self.fits(num_images, *size, available):
                return size
            candidate -= multiple
        return None


def refuse_unless_it_fits(
    memory: BatchMemory,
    num_images: int,
    width: int,
    height: int,
    available: int,
    what: str = "GPU memory",
    passes: int = 1,
    one_pass_option: str = "",
) -> None:
    """Raise BatchTooLarge, naming a count or size that fits, unless the batch fits.

    `memory` has the figures of one transformer pass a step, `passes` says how many the batch
    runs (2 with guidance); then `one_pass_option` (e.g. "the turbo model") is named too when
    the asked batch fits with one pass.
    """
    one_pass = memory
    memory = memory.for_passes(passes)
    needed = memory.needed_bytes(num_images, width, height)
    if needed <= available:
        return
    asked = f"{_images(num_images)} at {width}x{height}"
    if passes > 1:
        asked += " with guidance"
    verb = "needs" if num_images == 1 else "need"
    free = _amount(available)
    said = f"{asked} {verb} about {_amount(needed)} of {what}; {free} "
    said += "is available." if free == "1 MB" else "are available."
    tries = []
    fewer = memory.most_images(width, height, available, num_images - 1)
    if fewer:
        tries.append(_images(fewer))
    for count in range(num_images, 0, -1):
        smaller = memory.largest_size(count, width, height, available)
        if smaller is not None:
            size = f"{smaller[0]}x{smaller[1]}"
            if num_images == 1:
                tries.append(size)
            else:
                tries.append(f"{count if count == num_images else _images(count)} at {size}")
            break
        if fewer:
            break  # fewer images at the asked size already fit: no need for fewer and smaller
    if passes > 1 and one_pass_option and one_pass.fits(num_images, width, height, available):
        tries.append(f"{one_pass_option} at {width}x{height}")
    if tries:
        raise BatchTooLarge(f"{said} Try {', or '.join(tries)}.")
    raise BatchTooLarge(f"{said} Not even one image of the smallest size fits now; try later.")


def _images(count: int) -> str:
    return f"{count} image" if count == 1 else f"{count} images"


def _amount(size: int) -> str:
    if size >= 10 * GB:
        return f"{size / GB:.0f} GB"
    if size >= GB:
        return f"{size / GB:.1f} GB"
    return f"{round(size / MB)} MB"


def free_bytes(device: torch.device) -> int:
    """Memory a job could use now: on CUDA what the driver has free plus what PyTorch holds
    cached but unused; elsewhere the system's available memory."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return free + cached
    return int(psutil.virtual_memory().available)


def module_bytes(module: torch.nn.Module) -> int:
    """Bytes of a model's weights (parameters and buffers)."""
    tensors = [*module.parameters(), *module.buffers()]
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


def weight_bytes(pipeline: Any) -> int:
    """Bytes of the pipeline's weights (parameters and buffers of its models)."""
    modules = [getattr(pipeline, name, None) for name in ("transformer", "text_encoder", "vae")]
    return sum(module_bytes(m) for m in modules if isinstance(m, torch.nn.Module))


def holds_another_transformer(memory: BatchMemory, available: int, transformer_bytes: int) -> bool:
    """Whether a second transformer of `transformer_bytes` can stay on the device: with it there,
    the memory left still holds one image at the default size with guidance."""
    width, height = (int(side) for side in presets.DEFAULT_RESOLUTION.split("x"))
    guided = memory.for_passes(2).needed_bytes(1, width, height)
    return available - transformer_bytes >= guided


def available_bytes(
    probe: Callable[[], int], budget_bytes: int = 0, zero_gpu_weights: int | None = None
) -> int:
    """What a batch may use: the probe's figure (on ZeroGPU the workload's share less the
    weights instead), at most `budget_bytes` when that is set (> 0)."""
    free = probe() if zero_gpu_weights is None else ZERO_GPU_WORKLOAD_BYTES - zero_gpu_weights
    return max(0, free if budget_bytes <= 0 else min(budget_bytes, free))
