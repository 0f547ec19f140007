"""The memory a text-to-image batch needs beyond the weights: the figures of zimage/engine/batch_memory.py.

    python bench/batch_memory.py [--full] [--threads N]

Measures the peak of one transformer forward and of one VAE decode at a few sizes, batch sizes
and caption lengths, and prints each as the units `BatchMemory` counts in: per token, bytes /
(model width x element size); per pixel, bytes / (widest full-size VAE channels x element size).
The last lines give the largest of each against the figure zimage/engine/batch_memory.py uses, and a
whole engine run of 4 images against `BatchMemory.needed_bytes`, with Turbo and with Base's
guidance (two transformer passes a step). First it prints the weights of the full-size models
(counted on PyTorch's meta device: nothing is allocated): each transformer, the shared text
encoder and VAE, Turbo alone and Turbo with Base.

On the CPU the peak is the most bytes of tensors alive at once (`LiveTensorBytes`: a dispatch
mode that notes each new tensor storage and its release), which is what the model's operations
allocate; kernels' own scratch memory is not in it. On a CUDA GPU it is
`torch.cuda.max_memory_allocated` over the allocation before (workspaces included).

Default: the preview engine (zimage.engine.tiny_pipelines, float32). `--full`: the full Z-Image-Turbo
architecture (bench/configs/full) with random bfloat16 weights; on the CPU its transformer is cut
to one layer of each kind (under inference mode each layer's activations are freed before the
next, so the peak of a forward is one layer's) and the text encoder is left out (the prompt
embeddings are random); on a CUDA GPU it is the whole model.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from diffusers import AutoencoderKL, ZImageTransformer2DModel  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils._pytree import tree_leaves  # noqa: E402
from transformers import Qwen3Config, Qwen3Model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from bench.gpu_latency import CONFIGS, build_pipeline, default_dtype, read_config  # noqa: E402
from zimage.engine import batch_memory  # noqa: E402
from zimage.engine.batch_memory import BatchMemory, module_bytes  # noqa: E402
from zimage.engine.loading import create_preview_engine  # noqa: E402
from zimage.tools.text_to_image import TextToImage  # noqa: E402

MB = 1e6
# (images, side, caption tokens) for the transformer; (images, side) for the VAE.
TRANSFORMER_CASES = [(1, 256, 64), (2, 256, 64), (1, 384, 64), (1, 256, 512)]
VAE_CASES = [(1, 256), (2, 256), (1, 384)]
ENGINE_RUN = (4, 320)


class LiveTensorBytes(TorchDispatchMode):
    """The most bytes of tensor storage alive at once among those made inside the block."""

    def __init__(self) -> None:
        super().__init__()
        self._sizes: dict[int, int] = {}
        self.now = 0
        self.peak = 0

    def _released(self, key: int) -> None:
        self.now -= self._sizes.pop(key, 0)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        result = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(result):
            if isinstance(tensor, torch.Tensor) and tensor.device.type != "meta":
                storage = tensor.untyped_storage()
                key = storage._cdata
                if key not in self._sizes:
                    self._sizes[key] = storage.nbytes()
                    self.now += storage.nbytes()
                    weakref.finalize(storage, self._released, key)
        self.peak = max(self.peak, self.now)
        return result


def peak_bytes(device: torch.device, work: Callable[[], Any]) -> int:
    """The peak memory `work` adds: counted tensors on the CPU, the allocator's peak on CUDA."""
    with torch.inference_mode():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            work()
            torch.cuda.synchronize(device)
            return torch.cuda.max_memory_allocated(device) - before
        with LiveTensorBytes() as counter:
            work()
        return counter.peak


def transformer_rows(transformer: Any, device: torch.device) -> list[float]:
    """Peak bytes per token of one forward, in units of width x element size, per case."""
    dim, itemsize = transformer.config.dim, transformer.dtype.itemsize
    caption_width = transformer.config.cap_feat_dim
    rows = []
    for images, side, caption in TRANSFORMER_CASES:
        generator = torch.Generator(device).manual_seed(0)
        draw = functools.partial(
            torch.randn, generator=generator, device=device, dtype=transformer.dtype
        )
        latents = [draw(16, 1, side // 8, side // 8) for _ in range(images)]
        captions = [draw(caption, caption_width) for _ in range(images)]
        timestep = torch.full((images,), 0.5, device=device, dtype=transformer.dtype)
        forward = functools.partial(transformer, latents, timestep, captions, return_dict=False)
        started = time.perf_counter()
        peak = peak_bytes(device, forward)
        tokens = images * ((side // 16) ** 2 + caption)
        rows.append(peak / tokens / (dim * itemsize))
        print(
            f"transformer {images} x {side}x{side}, caption {caption}: peak {peak / MB:.1f} MB, "
            f"{peak / tokens / 1e3:.1f} KB a token = {rows[-1]:.2f} x width x element size "
            f"({time.perf_counter() - started:.1f} s)",
            flush=True,
        )
    return rows


def vae_rows(vae: Any, device: torch.device) -> list[float]:
    """Peak bytes per pixel of one decode, in units of full-size channels x element size."""
    channels = max(vae.config.block_out_channels[:2])
    itemsize = vae.dtype.itemsize
    rows = []
    for images, side in VAE_CASES:
        generator = torch.Generator(device).manual_seed(0)
        latents = torch.randn(
            images, 16, side // 8, side // 8, generator=generator, device=device, dtype=vae.dtype
        )
        started = time.perf_counter()
        peak = peak_bytes(device, functools.partial(vae.decode, latents, return_dict=False))
        pixels = images * side * side
        rows.append(peak / pixels / (channels * itemsize))
        print(
            f"vae {images} x {side}x{side}: peak {peak / MB:.1f} MB, {peak / pixels:.0f} B a "
            f"pixel = {rows[-1]:.2f} x channels x element size "
            f"({time.perf_counter() - started:.1f} s)",
            flush=True,
        )
    return rows


def full_size_parts(device: torch.device) -> tuple[Any, Any]:
    """The full-size transformer (one layer of each kind on the CPU) and VAE, random bf16."""
    transformer_config = read_config(CONFIGS / "full", "transformer")
    if device.type != "cuda":
        transformer_config.update(n_layers=1, n_refiner_layers=1)
    torch.manual_seed(0)
    with torch.device(device), default_dtype(torch.bfloat16), torch.no_grad():
        transformer = ZImageTransformer2DModel.from_config(transformer_config).eval()
        vae = AutoencoderKL.from_config(read_config(CONFIGS / "full", "vae")).eval()
    return transformer, vae


def full_size_weights() -> dict[str, int]:
    """Bytes of the full-size models' weights in bfloat16, counted on the meta device."""
    folder = CONFIGS / "full"
    with torch.device("meta"), default_dtype(torch.bfloat16):
        transformer = ZImageTransformer2DModel.from_config(read_config(folder, "transformer"))
        text_encoder = Qwen3Model(Qwen3Config(**read_config(folder, "text_encoder")))
        vae = AutoencoderKL.from_config(read_config(folder, "vae"))
    sizes = {
        "transformer (each model)": module_bytes(transformer),
        "text encoder (shared)": module_bytes(text_encoder),
        "vae (shared)": module_bytes(vae),
    }
    turbo = sum(sizes.values())
    return {
        **sizes,
        "turbo alone": turbo,
        "turbo and base": turbo + sizes["transformer (each model)"],
    }


def engine_run(device: torch.device, model: str) -> tuple[int, int]:
    """(measured peak, estimate) of a whole preview-engine run of 4 images, 1 step, with
    `model` (base: guidance 4, two transformer passes a step)."""
    engine = create_preview_engine(with_base=model == "base")
    images, side = ENGINE_RUN
    request = TextToImage(
        prompt="a lighthouse",
        resolution=f"{side}x{side}",
        seed=0,
        steps=1,
        num_images=images,
        model=model,
    )
    engine.text_to_image(request)  # warm-up: first-call work stays out of the count
    peak = peak_bytes(device, lambda: engine.text_to_image(request))
    estimate = engine.batch_memory.for_passes(request.forwards_per_step)
    return peak, estimate.needed_bytes(images, side, side)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full-size architecture, bfloat16")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.full and device.type == "cuda":
        pipeline = build_pipeline(CONFIGS / "full", "cuda", torch.bfloat16)
        transformer, vae = pipeline.transformer, pipeline.vae
    elif args.full:
        transformer, vae = full_size_parts(device)
    else:
        pipeline = create_preview_engine().pipeline.to(device)
        transformer, vae = pipeline.transformer, pipeline.vae
    for name, size in full_size_weights().items():
        print(f"full-size weights, bfloat16: {name} {size / 1e9:.2f} GB")
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    layers = f"{transformer.config.n_layers}+{transformer.config.n_refiner_layers} layers"
    print(
        f"batch_memory: {'full-size Z-Image' if args.full else 'preview engine'} on {where}, "
        f"{transformer.dtype} transformer (width {transformer.config.dim}, {layers}), "
        f"{vae.dtype} VAE (channels {list(vae.config.block_out_channels)}), torch "
        f"{torch.__version__} ({torch.get_num_threads()} threads), load average "
        f"{os.getloadavg()[0]:.2f}",
        flush=True,
    )
    token_rows = max(transformer_rows(transformer, device))
    pixel_rows = max(vae_rows(vae, device))
    print(
        f"transformer per token: {token_rows:.2f} x width x element size at most "
        f"(zimage/engine/batch_memory.py uses {batch_memory.TRANSFORMER_ROWS_PER_TOKEN})"
    )
    print(
        f"vae per pixel: {pixel_rows:.2f} x channels x element size at most "
        f"(zimage/engine/batch_memory.py uses {batch_memory.VAE_ROWS_PER_PIXEL})"
    )
    if not args.full:
        for model in ("turbo", "base"):
            peak, estimate = engine_run(device, model)
            images, side = ENGINE_RUN
            guided = " with guidance" if model == "base" else ""
            print(
                f"engine run {images} x {side}x{side}{guided}: peak {peak / MB:.1f} MB, "
                f"estimate {estimate / MB:.1f} MB (margin {batch_memory.MARGIN} included): "
                f"estimate/peak {estimate / peak:.2f}"
            )
    else:
        figures = BatchMemory(
            bytes_per_token=token_rows * transformer.config.dim * transformer.dtype.itemsize,
            bytes_per_pixel=pixel_rows
            * max(vae.config.block_out_channels[:2])
            * vae.dtype.itemsize,
        )
        one = figures.needed_bytes(1, 1024, 1024) / batch_memory.MARGIN
        print(f"measured figures: 1 image at 1024x1024 needs {one / MB:.0f} MB before the margin")


if __name__ == "__main__":
    main()
