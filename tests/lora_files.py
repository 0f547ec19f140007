"""Random LoRA files for the preview transformer, in the layouts people have, and files that are
not LoRAs for it (tests and bench/lora.py).

- diffusers/PEFT: made by PEFT itself (`inject_adapter_in_model`, random B) and saved with
  diffusers' `save_lora_weights` (`transformer.` + `lora_A`/`lora_B`).
- ComfyUI / ai-toolkit: `diffusion_model.` + `lora_A`/`lora_B`.
- Kohya: `lora_unet_` + underscores, `lora_down`/`lora_up` and `alpha`.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from zimage.engine.tiny_pipelines import build_preview_pipeline

# The layers the files change: attention and feed-forward of both main blocks.
TARGETS = (
    "layers.0.attention.to_q",
    "layers.0.attention.to_out.0",
    "layers.1.attention.to_v",
    "layers.1.feed_forward.w1",
)
RANK = 4
FORMATS = ("peft", "comfyui", "kohya")


def _transformer() -> torch.nn.Module:
    return build_preview_pipeline().transformer


def _random_pairs(seed: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    modules = dict(_transformer().named_modules())
    generator = torch.Generator().manual_seed(seed)
    pairs = {}
    for name in TARGETS:
        layer = modules[name]
        down = torch.randn(RANK, layer.in_features, generator=generator) * 0.5
        up = torch.randn(layer.out_features, RANK, generator=generator) * 0.5
        pairs[name] = (down, up)
    return pairs


def peft_lora(path: Path, seed: int) -> Path:
    """A LoRA made by PEFT on the preview transformer, saved as diffusers saves one."""
    from diffusers import ZImagePipeline
    from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model

    torch.manual_seed(seed)
    transformer = copy.deepcopy(_transformer())
    config = LoraConfig(
        r=RANK, lora_alpha=RANK, target_modules=list(TARGETS), init_lora_weights=False
    )
    inject_adapter_in_model(config, transformer)
    layers = get_peft_model_state_dict(transformer)
    ZImagePipeline.save_lora_weights(
        path.parent, transformer_lora_layers=layers, weight_name=path.name
    )
    return path


def comfyui_lora(path: Path, seed: int) -> Path:
    tensors = {}
    for name, (down, up) in _random_pairs(seed).items():
        tensors[f"diffusion_model.{name}.lora_A.weight"] = down
        tensors[f"diffusion_model.{name}.lora_B.weight"] = up
    save_file(tensors, str(path))
    return path


def kohya_lora(path: Path, seed: int) -> Path:
    tensors = {}
    for name, (down, up) in _random_pairs(seed).items():
        key = "lora_unet_" + name.replace(".", "_")
        tensors[f"{key}.lora_down.weight"] = down
        tensors[f"{key}.lora_up.weight"] = up
        tensors[f"{key}.alpha"] = torch.tensor(float(RANK))
    save_file(tensors, str(path))
    return path


MAKERS = {"peft": peft_lora, "comfyui": comfyui_lora, "kohya": kohya_lora}


def lora_file(folder: Path, layout: str, seed: int) -> Path:
    """A random LoRA for the preview transformer in `layout` (one of FORMATS)."""
    folder.mkdir(parents=True, exist_ok=True)
    return MAKERS[layout](folder / f"{layout}-{seed}.safetensors", seed)


def wrong_architecture_lora(path: Path) -> Path:
    """A Kohya LoRA for another model (an SDXL UNet's layer names)."""
    key = "lora_unet_down_blocks_0_attentions_0_proj_in"
    save_file(
        {
            f"{key}.lora_down.weight": torch.randn(RANK, 320),
            f"{key}.lora_up.weight": torch.randn(320, RANK),
        },
        str(path),
    )
    return path


def wrong_size_lora(path: Path) -> Path:
    """Z-Image's layer names with the full-size model's shapes (3840 wide): not this one."""
    save_file(
        {
            "diffusion_model.layers.0.attention.to_q.lora_A.weight": torch.randn(RANK, 3840),
            "diffusion_model.layers.0.attention.to_q.lora_B.weight": torch.randn(3840, RANK),
        },
        str(path),
    )
    return path


def corrupt_lora(path: Path, source: Path) -> Path:
    """A real LoRA file cut short, as a failed download leaves one."""
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def pickle_lora(path: Path) -> Path:
    """A pickle (torch.save) file named .safetensors."""
    torch.save({"layers.0.attention.to_q.lora_A.weight": torch.randn(RANK, 64)}, path)
    return path


def catalog(*entries: tuple[str, Path], **fields: object) -> str:
    """ZIMAGE_LORAS as inline JSON: (name, file) pairs, `fields` added to each."""
    return json.dumps([{"name": name, "source": str(file), **fields} for name, file in entries])
