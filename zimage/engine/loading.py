"""Loading an engine: the real Z-Image pipelines from a Hub id or folder, or the preview.

`create_engine` picks what the settings ask for; on a Space without GPU, or when the model cannot
be loaded, it returns an `UnavailableEngine` so that the page can say why.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from diffusers import ZImageOmniPipeline, ZImagePipeline

from zimage import presets
from zimage.engine.batch_memory import MB
from zimage.engine.engine import Engine
from zimage.engine.enhancer import create_enhancer
from zimage.engine.errors import EngineUnavailable
from zimage.engine.jobs import RunHooks, StopReason
from zimage.engine.prompt_embeddings import PromptEmbeddingCache
from zimage.engine.quantization import quantize_transformer
from zimage.engine.results import EditResult, GenerateResult
from zimage.engine.tiny_pipelines import build_preview_omni_pipeline, build_preview_pipeline
from zimage.engine.zero_gpu import zero_gpu_decorator
from zimage.settings import Settings
from zimage.tools.edit import Edit
from zimage.tools.enhance import EnhancePrompt
from zimage.tools.text_to_image import TextToImage

logger = logging.getLogger(__name__)

# Tried in order when ZIMAGE_ATTENTION=auto; the first one that loads wins.
HOPPER_ATTENTION_ORDER = ("_flash_3", "_flash_3_hub", "flash", "native")
CUDA_ATTENTION_ORDER = ("flash", "native")
ALL_PRESETS = [resolution for sizes in presets.RESOLUTION_PRESETS.values() for resolution in sizes]


def load_pipeline(model: str, device: str, dtype: torch.dtype) -> ZImagePipeline:
    """Load a Z-Image pipeline from a Hub id or a local directory onto `device`."""
    pipeline = ZImagePipeline.from_pretrained(model, dtype=dtype)
    pipeline.to(device)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def resolve_device(requested: str) -> str:
    if requested != "auto":
        return requested
    if zero_gpu_decorator() is not None or torch.cuda.is_available():
        return "cuda"
    return "cpu"


def select_attention_backend(pipeline: ZImagePipeline, requested: str, device: str) -> str:
    """Set the fastest attention backend that loads on this device; return its name."""
    if requested != "auto":
        candidates: tuple[str, ...] = (requested,)
    elif device.startswith("cuda") and torch.cuda.get_device_capability()[0] >= 9:
        candidates = HOPPER_ATTENTION_ORDER
    elif device.startswith("cuda"):
        candidates = CUDA_ATTENTION_ORDER
    else:
        candidates = ("native",)
    for backend in candidates:
        try:
            pipeline.transformer.set_attention_backend(backend)
        except Exception as error:  # a missing kernel package raises ImportError, RuntimeError, ...
            logger.info("attention backend %s unavailable: %s", backend, error)
            continue
        return backend
    pipeline.transformer.set_attention_backend("native")
    return "native"


class UnavailableEngine:
    """Stands in when the real model cannot run (e.g. a Space without GPU): every call says why."""

    kind = "unavailable"
    is_preview = False
    on_zero_gpu = False
    attention_backend = "none"
    edit_methods = "none"
    enhancer = None
    prompt_embeddings = None
    adapters = None

    def __init__(self, reason: str) -> None:
        self.description = reason

    def text_to_image(self, request: TextToImage, hooks: RunHooks | None = None) -> GenerateResult:
        raise EngineUnavailable(self.description)

    def edit(self, request: Edit, hooks: RunHooks | None = None) -> EditResult:
        raise EngineUnavailable(self.description)

    def enhance_prompt(self, request: EnhancePrompt, hooks: RunHooks | None = None) -> str:
        raise EngineUnavailable(self.description)

    def stop_everything(self, reason: StopReason = StopReason.SHUTTING_DOWN) -> None:
        return None

    def prompt_tokens(self, text: str) -> int:
        return 0

    def forget_prompts_of(self, owner: str) -> None:
        return None


def create_preview_engine(with_omni: bool = False) -> Engine:
    """The tiny offline engine; `with_omni` adds the tiny image-conditioned edit pipeline."""
    pipeline = build_preview_pipeline()
    return Engine(
        pipeline,
        kind="preview",
        description="Preview engine: a tiny Z-Image with random weights, so images are noise; "
        "the interface and the whole code path are real.",
        omni=build_preview_omni_pipeline(pipeline) if with_omni else None,
    )


def load_omni_pipeline(model: str, device: str) -> ZImageOmniPipeline:
    """Load an image-conditioned edit checkpoint (Hub id or local directory) onto `device`."""
    # The Omni pipeline encodes reference images in bfloat16, so its VAE must be bfloat16 even
    # where the rest runs in float32 (CPU).
    dtype: Any = (
        torch.bfloat16
        if device.startswith("cuda")
        else {"vae": torch.bfloat16, "default": torch.float32}
    )
    pipeline = ZImageOmniPipeline.from_pretrained(model, dtype=dtype)
    pipeline.to(device)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def create_engine(settings: Settings) -> Engine | UnavailableEngine:
    """Pick and load the engine the settings ask for.

    `auto` loads the real model where CUDA is present and the preview elsewhere, except on a
    Space, where a missing GPU or a failed load becomes an UnavailableEngine so the UI can say so.
    """
    device = resolve_device(settings.device)
    if settings.engine == "preview" or (
        settings.engine == "auto" and device == "cpu" and not settings.on_space
    ):
        engine = create_preview_engine()
        engine.time_limit_s = settings.time_limit_s
        engine.zero_gpu_max_s = settings.zero_gpu_max_s
        engine.memory_budget_bytes = settings.memory_budget_mb * MB
        if settings.edit_model:
            engine.omni = load_omni_pipeline(settings.edit_model, "cpu")
    elif settings.engine == "auto" and device == "cpu":
        return UnavailableEngine("This Space has no GPU, so Z-Image cannot run here.")
    else:
        try:
            engine = create_diffusers_engine(settings, device)
        except Exception as error:
            if settings.engine == "diffusers" and not settings.on_space:
                raise
            logger.exception("loading %s failed", settings.model)
            return UnavailableEngine(f"The model {settings.model} could not be loaded: {error}")
    engine.enhancer = create_enhancer(
        settings, engine.pipeline.text_encoder, engine.pipeline.tokenizer, engine.prompt_tokens
    )
    if settings.reuse_prompts and engine.on_zero_gpu:
        # Each ZeroGPU call may run in a fresh worker: embeddings kept there would be lost, and
        # sending them back and forth costs more than encoding the prompt again.
        logger.info("prompt-embedding reuse is off on ZeroGPU")
    elif settings.reuse_prompts:
        engine.prompt_embeddings = PromptEmbeddingCache(ttl_s=settings.output_ttl_s)
    return engine


def create_diffusers_engine(settings: Settings, device: str) -> Engine:
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    pipeline = load_pipeline(settings.model, device, dtype)
    omni = load_omni_pipeline(settings.edit_model, device) if settings.edit_model else None
    engine = Engine(
        pipeline,
        kind="diffusers",
        description=f"Z-Image ({settings.model}) on {device}",
        omni=omni,
        time_limit_s=settings.time_limit_s,
        zero_gpu_max_s=settings.zero_gpu_max_s,
        memory_budget_bytes=settings.memory_budget_mb * MB,
    )
    compile_blocks = settings.compile and not engine.on_zero_gpu
    if settings.compile and not compile_blocks:
        logger.warning("ZIMAGE_COMPILE is ignored on ZeroGPU, which does not support torch.compile")
    apply_speedups(engine, settings.attention, compile_blocks, settings.quant)
    if settings.warmup and engine.on_zero_gpu:
        logger.warning("ZIMAGE_WARMUP is ignored on ZeroGPU: the GPU exists only inside requests")
    elif settings.warmup:
        engine.warm_up(ALL_PRESETS)
    return engine


def apply_speedups(
    engine: Engine, attention: str, compile_blocks: bool, quant: str = "off"
) -> None:
    """The fastest attention backend that loads here, optional float8, optional compiled blocks.

    Only the repeated transformer blocks are compiled (regional compilation: seconds, not
    minutes), with dynamic shapes so that a new resolution or prompt length does not recompile.
    """
    engine.attention_backend = select_attention_backend(
        engine.pipeline, attention, str(engine.device)
    )
    quantize_transformer(engine.pipeline.transformer, quant)
    if compile_blocks:
        engine.pipeline.transformer.compile_repeated_blocks(fullgraph=True, dynamic=True)
