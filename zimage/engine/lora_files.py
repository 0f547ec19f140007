"""Reading a LoRA file for the loaded transformer, or refusing it with a sentence.

Only safetensors files are read (never pickle, which can run code). The layouts people have are
all accepted, through diffusers' own Z-Image converter: diffusers/PEFT (`transformer.` +
`lora_A`/`lora_B`), ComfyUI / ai-toolkit (`diffusion_model.` prefix) and Kohya (`lora_unet_`,
`lora_down`/`lora_up`/`alpha`). Every layer the file names must exist in this transformer with
the file's shapes: a LoRA made for another model is refused here, not half-applied.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch
from diffusers import ZImagePipeline
from safetensors import SafetensorError
from safetensors.torch import load_file

from zimage.engine.errors import EngineError

TRANSFORMER_PREFIX = "transformer."
_DOWN = ".lora_A.weight"
_UP = ".lora_B.weight"
# A safetensors file starts with its header's length (8 bytes, little-endian) and a JSON header.
_HEADER_LENGTH_BYTES = 8
_MAX_HEADER_BYTES = 100 * 1024 * 1024
# What pickle files start with: a zip archive (torch.save) or a pickle protocol mark.
_PICKLE_STARTS = (b"PK\x03\x04", b"\x80")


class AdapterRefused(EngineError):
    """A file that is not a LoRA this transformer can use; the message says why."""


def lora_weights(
    path: str | Path, label: str, transformer: torch.nn.Module
) -> dict[str, torch.Tensor]:
    """The LoRA in `path` as diffusers loads it (`transformer.<layer>.lora_A/B.weight`), checked
    against `transformer`; AdapterRefused names `label` and says what is wrong."""
    tensors = read_safetensors(path, label)
    try:
        converted = ZImagePipeline.lora_state_dict(dict(tensors))
    except (ValueError, KeyError, RuntimeError, IndexError) as error:
        raise AdapterRefused(
            f"{label} is not a LoRA for Z-Image: its layers match no known layout ({error})."
        ) from None
    if converted and not all(key.startswith(TRANSFORMER_PREFIX) for key in converted):
        converted = {TRANSFORMER_PREFIX + key: value for key, value in converted.items()}
    check_fits(converted, label, transformer)
    return converted


def read_safetensors(path: str | Path, label: str) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; AdapterRefused for anything else (pickle included)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise AdapterRefused(
            f"{label} is not a .safetensors file; only safetensors LoRA files are read."
        )
    try:
        with open(path, "rb") as file:
            start = file.read(_HEADER_LENGTH_BYTES)
            if start.startswith(_PICKLE_STARTS):
                raise AdapterRefused(
                    f"{label} is a pickle file named .safetensors; pickle files are never read "
                    "(they can run code)."
                )
            if len(start) < _HEADER_LENGTH_BYTES:
                raise AdapterRefused(f"{label} is too short to be a safetensors file.")
            (header_bytes,) = struct.unpack("<Q", start)
            if not 2 <= header_bytes <= _MAX_HEADER_BYTES:
                raise AdapterRefused(
                    f"{label} is not a safetensors file (its header is unreadable)."
                )
            json.loads(file.read(header_bytes))
        return load_file(path)
    except AdapterRefused:
        raise
    except (OSError, ValueError, SafetensorError) as error:
        raise AdapterRefused(
            f"{label} could not be read as safetensors: the file is damaged or incomplete "
            f"({error.__class__.__name__})."
        ) from None


def check_fits(weights: dict[str, torch.Tensor], label: str, transformer: torch.nn.Module) -> None:
    """Every tensor a lora_A/lora_B pair of a linear layer of `transformer`, shapes matching."""
    if not weights:
        raise AdapterRefused(f"{label} holds no LoRA layers.")
    modules = dict(transformer.named_modules())
    layers = set()
    for key, tensor in weights.items():
        name = key.removeprefix(TRANSFORMER_PREFIX)
        if not name.endswith((_DOWN, _UP)):
            raise AdapterRefused(
                f"{label} is not a plain LoRA: it holds {name!r}, which is neither lora_A nor "
                "lora_B of a layer."
            )
        if not torch.isfinite(tensor).all():
            raise AdapterRefused(f"{label} holds values that are not finite numbers in {name!r}.")
        layers.add(name.removesuffix(_DOWN).removesuffix(_UP))
    for layer in sorted(layers):
        module = modules.get(layer)
        linear = getattr(module, "base_layer", module)
        if not isinstance(linear, torch.nn.Linear):
            raise AdapterRefused(
                f"{label} is not a LoRA for this model: it changes {layer!r}, which this "
                "transformer does not have."
            )
        down = weights.get(TRANSFORMER_PREFIX + layer + _DOWN)
        up = weights.get(TRANSFORMER_PREFIX + layer + _UP)
        if down is None or up is None:
            raise AdapterRefused(f"{label} is incomplete: {layer!r} lacks its lora_A or lora_B.")
        rank = down.shape[0] if down.ndim == 2 else 0
        fits = (
            down.ndim == 2
            and up.ndim == 2
            and rank >= 1
            and down.shape[1] == linear.in_features
            and up.shape == (linear.out_features, rank)
        )
        if not fits:
            raise AdapterRefused(
                f"{label} is not a LoRA for this model: its {layer!r} is shaped "
                f"{tuple(up.shape)} x {tuple(down.shape)}, the layer {linear.out_features} x "
                f"{linear.in_features}."
            )
