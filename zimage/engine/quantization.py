"""Optional float8 weights and activations for the transformer's linear layers (torchao).

Float8 matrix products need a CUDA GPU of compute capability 8.9 or newer (Ada, Hopper and
later). Anywhere else `ZIMAGE_QUANT=fp8` is refused with one log line and the transformer keeps
its own dtype. torchao is optional: it is imported only once FP8 has been asked for on a GPU
that has it, so a Space that never sets the variable never needs the package.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import sys

import torch

logger = logging.getLogger(__name__)

FP8_MIN_CAPABILITY = (8, 9)
TORCHAO_REQUIREMENT = "torchao==0.18.0"
# The repeated blocks' attention projections and feed-forward layers: nearly all of the
# transformer's arithmetic. The embedders, the timestep MLP, the modulation layers (one row per
# image) and the final layer stay in bfloat16: they cost little and feed every later layer.
_BLOCK_LINEAR = re.compile(
    r"^(layers|noise_refiner|context_refiner)\.\d+\.(attention|feed_forward)\."
)
# Float8 matrix products (torch._scaled_mm) need both sides' dimensions to be multiples of 16.
_FP8_MULTIPLE = 16


def is_fp8_candidate(module: torch.nn.Module, name: str) -> bool:
    """Whether the layer called `name` inside the transformer is turned to float8."""
    return (
        isinstance(module, torch.nn.Linear)
        and _BLOCK_LINEAR.match(name) is not None
        and module.in_features % _FP8_MULTIPLE == 0
        and module.out_features % _FP8_MULTIPLE == 0
    )


def fp8_refusal(device: torch.device, dtype: torch.dtype) -> str | None:
    """Why float8 cannot run for a model on `device` in `dtype`; None when it can."""
    wanted = "{}.{}".format(*FP8_MIN_CAPABILITY)
    if device.type != "cuda":
        return f"float8 needs a CUDA GPU of compute capability {wanted} or newer, not {device.type}"
    try:
        capability = torch.cuda.get_device_capability(device)
    except Exception as error:  # e.g. a ZeroGPU main process, where no GPU is attached yet
        return f"the GPU's compute capability could not be read ({error})"
    if capability < FP8_MIN_CAPABILITY:
        found = "{}.{}".format(*capability)
        return f"float8 needs compute capability {wanted} or newer; this GPU has {found}"
    if dtype != torch.bfloat16:
        return f"float8 with per-row scales needs bfloat16 weights, not {dtype}"
    if importlib.util.find_spec("torchao") is None:
        return f"torchao is not installed (pip install {TORCHAO_REQUIREMENT})"
    return None


def fp8_linear_count(module: torch.nn.Module) -> int:
    """How many of the module's linear layers hold torchao float8 weights."""
    torchao_quantization = sys.modules.get("torchao.quantization")
    if torchao_quantization is None:  # never imported, so nothing can be float8
        return 0
    float8_tensor = torchao_quantization.Float8Tensor
    return sum(
        isinstance(layer.weight, float8_tensor)
        for layer in module.modules()
        if isinstance(layer, torch.nn.Linear)
    )


def quantize_transformer(transformer: torch.nn.Module, mode: str) -> str:
    """Apply `mode` ("off" or "fp8") to the transformer in place; return the mode now in effect.

    Must run before the blocks are compiled, so that the compiled code sees float8 weights.
    """
    if mode == "off":
        return "off"
    reason = fp8_refusal(transformer.device, transformer.dtype)
    if reason is None:
        try:
            from torchao.quantization import (
                Float8DynamicActivationFloat8WeightConfig,
                PerRow,
                quantize_,
            )
        except ImportError as error:
            reason = f"torchao could not be imported ({error})"
    if reason is not None:
        logger.warning(
            "ZIMAGE_QUANT=%s refused: %s; the transformer stays in %s",
            mode,
            reason,
            str(transformer.dtype).removeprefix("torch."),
        )
        return "off"
    quantize_(
        transformer,
        Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()),
        filter_fn=is_fp8_candidate,
    )
    logger.info(
        "ZIMAGE_QUANT=fp8: %d linear layers of the transformer hold float8 weights "
        "(dynamic float8 activations, per-row scales)",
        fp8_linear_count(transformer),
    )
    return "fp8"
