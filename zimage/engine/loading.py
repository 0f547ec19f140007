"""Loading an engine: the real Z-Image pipelines from a Hub id or folder, or the preview.

`create_engine` picks what the settings ask for; on a Space without GPU, or when the model cannot
be loaded, it returns an `UnavailableEngine` so that the page can say why.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from diffusers import (
    AutoencoderTiny,
    FlowMatchEulerDiscreteScheduler,
    ZImageOmniPipeline,
    ZImagePipeline,
    ZImageTransformer2DModel,
)

from zimage import presets
from zimage.engine.batch_memory import MB
from zimage.engine.engine import Engine
from zimage.engine.enhancer import create_enhancer
from zimage.engine.errors import EngineUnavailable
from zimage.engine.jobs import RunHooks, StopReason
from zimage.engine.latent_preview import TinyAutoencoderPreview
from zimage.engine.models import sharing_pipeline
from zimage.engine.prompt_embeddings import PromptEmbeddingCache
from zimage.engine.quantization import quantize_transformer
from zimage.engine.results import EditResult, GenerateResult
from zimage.engine.tiny_pipelines import (
    build_preview_base_pipeline,
    build_preview_decoder,
    build_preview_omni_pipeline,
    build_preview_pipeline,
)
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


def load_base_pipeline(model: str, turbo: ZImagePipeline, dtype: torch.dtype) -> ZImagePipeline:
    """Base's transformer and scheduler from a Hub id or local directory, sharing `turbo`'s text
    encoder, tokenizer and VAE; the transformer is loaded into CPU memory and the engine puts it
    on the device if it fits there (zimage/engine/models.py)."""
    transformer = ZImageTransformer2DModel.from_pretrained(
        model, subfolder="transformer", dtype=dtype
    )
    scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(model, subfolder="scheduler")
    return sharing_pipeline(turbo, transformer.eval(), scheduler)


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
    models = (presets.TURBO,)
    one_model_at_a_time = False
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


def create_preview_engine(
    with_omni: bool = False,
    linear_previews: bool = False,
    with_base: bool = False,
    memory_budget_bytes: int = 0,
) -> Engine:
    """The tiny offline engine (nothing is downloaded); `with_omni` adds the tiny
    image-conditioned edit pipeline, `with_base` the tiny Base twin. Its live previews come from
    a tiny random TAEF1 (same class), or with `linear_previews` from the linear map fitted to
    its VAE."""
    pipeline = build_preview_pipeline()
    decoder = None if linear_previews else TinyAutoencoderPreview(build_preview_decoder())
    return Engine(
        pipeline,
        kind="preview",
        description="Preview engine: a tiny Z-Image with random weights, so images are noise; "
        "the interface and the whole code path are real.",
        omni=build_preview_omni_pipeline(pipeline) if with_omni else None,
        preview_decoder=decoder,
        memory_budget_bytes=memory_budget_bytes,
        base=build_preview_base_pipeline(pipeline) if with_base else None,
    )


def load_preview_decoder(model: str, device: str, dtype: torch.dtype) -> AutoencoderTiny:
    """Load a tiny autoencoder (TAEF1: a Hub id or local directory) onto `device`."""
    decoder = AutoencoderTiny.from_pretrained(model, dtype=dtype)
    return decoder.to(device).eval()


def preview_decoder_for(
    settings: Settings, latent_channels: int, device: str, dtype: torch.dtype
) -> TinyAutoencoderPreview | None:
    """The tiny autoencoder for live previews that ZIMAGE_PREVIEW_DECODER asks for, or None for
    the linear map. `auto` falls back to the linear map (one log line) when the decoder cannot
    be loaded or does not read the VAE's latents; `taef1` raises instead."""
    if settings.preview_decoder == "linear":
        return None
    model = settings.preview_decoder_model
    try:
        decoder = load_preview_decoder(model, device, dtype)
        if decoder.config.latent_channels != latent_channels:
            raise ValueError(
                f"it decodes {decoder.config.latent_channels} latent channels, "
                f"the VAE makes {latent_channels}"
            )
    except Exception as error:
        if settings.preview_decoder == "taef1":
            raise
        logger.info("live previews use the linear map: %s is not usable (%s)", model, error)
        return None
    return TinyAutoencoderPreview(decoder)


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
        engine = create_preview_engine(
            linear_previews=settings.preview_decoder == "linear",
            with_base=bool(settings.base_model),
            memory_budget_bytes=settings.memory_budget_mb * MB,
        )
        engine.time_limit_s = settings.time_limit_s
        engine.zero_gpu_max_s = settings.zero_gpu_max_s
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
    base = load_base_if_it_loads(settings, pipeline, dtype)
    served = settings.model + (f" and {settings.base_model}" if base is not None else "")
    engine = Engine(
        pipeline,
        kind="diffusers",
        description=f"Z-Image ({served}) on {device}",
        omni=omni,
        time_limit_s=settings.time_limit_s,
        zero_gpu_max_s=settings.zero_gpu_max_s,
        memory_budget_bytes=settings.memory_budget_mb * MB,
        preview_decoder=preview_decoder_for(
            settings, pipeline.vae.config.latent_channels, device, dtype
        ),
        base=base,
    )
    if engine.one_model_at_a_time:
        logger.info("the device cannot hold both transformers: Turbo and Base take turns on it")
    compile_blocks = settings.compile and not engine.on_zero_gpu
    if settings.compile and not compile_blocks:
        logger.warning("ZIMAGE_COMPILE is ignored on ZeroGPU, which does not support torch.compile")
    apply_speedups(engine, settings.attention, compile_blocks, settings.quant)
    if settings.warmup and engine.on_zero_gpu:
        logger.warning("ZIMAGE_WARMUP is ignored on ZeroGPU: the GPU exists only inside requests")
    elif settings.warmup:
        engine.warm_up(ALL_PRESETS)
    return engine


def load_base_if_it_loads(
    settings: Settings, turbo: ZImagePipeline, dtype: torch.dtype
) -> ZImagePipeline | None:
    """Base's pipeline where the operator enables it; if it cannot be loaded, None (the Space
    serves Turbo alone), except with ZIMAGE_ENGINE=diffusers off a Space, where it raises."""
    if not settings.base_model:
        return None
    try:
        return load_base_pipeline(settings.base_model, turbo, dtype)
    except Exception:
        if settings.engine == "diffusers" and not settings.on_space:
            raise
        logger.exception(
            "loading the base model %s failed: serving turbo alone", settings.base_model
        )
        return None


def apply_speedups(
    engine: Engine, attention: str, compile_blocks: bool, quant: str = "off"
) -> None:
    """The fastest attention backend that loads here, optional float8, optional compiled blocks.

    Each served model's transformer gets the same. Only the repeated transformer blocks are
    compiled (regional compilation: seconds, not minutes), with dynamic shapes so that a new
    resolution or prompt length does not recompile.
    """
    for model in engine.models:
        pipeline = engine.pipeline_for(model)
        engine.attention_backend = select_attention_backend(pipeline, attention, str(engine.device))
        quantize_transformer(pipeline.transformer, quant)
        if compile_blocks:
            pipeline.transformer.compile_repeated_blocks(fullgraph=True, dynamic=True)
