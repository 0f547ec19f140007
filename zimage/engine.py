"""Loads the Z-Image pipelines (real or preview) and runs them behind one interface.

All GPU work goes through one lock, so requests from both tabs and the API run one at a time.
On a ZeroGPU Space the same work is wrapped in `spaces.GPU` with a duration sized to the request.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import (
    DiffusionPipeline,
    FlowMatchEulerDiscreteScheduler,
    ZImageImg2ImgPipeline,
    ZImageInpaintPipeline,
    ZImageOmniPipeline,
    ZImagePipeline,
)
from PIL import Image, ImageFilter

from zimage import presets
from zimage.embeddings import PromptEmbeddingCache
from zimage.preview import build_preview_omni_pipeline, build_preview_pipeline
from zimage.quantization import quantize_transformer
from zimage.settings import Settings

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]

# Tried in order when ZIMAGE_ATTENTION=auto; the first one that loads wins.
HOPPER_ATTENTION_ORDER = ("_flash_3", "_flash_3_hub", "flash", "native")
CUDA_ATTENTION_ORDER = ("flash", "native")
ALL_PRESETS = [resolution for sizes in presets.RESOLUTION_PRESETS.values() for resolution in sizes]
# Softens the seam where an inpainted region meets the untouched image.
MASK_FEATHER_PX = 4


class EngineError(RuntimeError):
    """A request the engine could not finish; the message is meant for the visitor."""


class EngineUnavailable(EngineError):
    """The model could not be loaded; every request answers with this reason."""


class OutOfGpuMemory(EngineError):
    """The request did not fit in GPU memory; memory was freed for the next one."""


class TimedOut(EngineError):
    """The request ran past the time limit and was stopped."""


@dataclass(frozen=True)
class GenerateRequest:
    """`owner` (a browser or session) may reuse its own prompt embeddings; "" never does."""

    prompt: str
    width: int
    height: int
    seed: int
    steps: int = presets.DEFAULT_STEPS
    shift: float = presets.DEFAULT_SHIFT
    owner: str = ""


@dataclass(frozen=True)
class EditRequest:
    """An edit of a normalised RGB image; `mask` (mode L, white = change) selects inpainting."""

    image: Image.Image
    instruction: str
    seed: int
    mask: Image.Image | None = None
    strength: float = presets.DEFAULT_STRENGTH
    steps: int = presets.DEFAULT_STEPS
    owner: str = ""

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height


@dataclass(frozen=True)
class Timings:
    text_encoder_s: float
    denoise_s: float
    vae_s: float
    total_s: float


@dataclass(frozen=True)
class GenerateResult:
    image: Image.Image
    seed: int
    timings: Timings


@dataclass(frozen=True)
class EditResult:
    image: Image.Image
    seed: int
    method: str
    timings: Timings


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


def gpu_seconds_needed(width: int, height: int, steps: int) -> int:
    """A generous ZeroGPU time budget: fixed start-up plus time per step and megapixel."""
    megapixels = width * height / 1_000_000
    return int(10 + steps * megapixels * 1.5)


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


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Engine:
    """Runs text-to-image and edits on loaded pipelines, one request at a time.

    The edit pipelines are built from the text-to-image pipeline's components, so the weights
    exist once in memory whichever tab is used.
    """

    def __init__(
        self,
        pipeline: ZImagePipeline,
        kind: str,
        description: str,
        omni: ZImageOmniPipeline | None = None,
        time_limit_s: float = 300.0,
        prompt_embeddings: PromptEmbeddingCache | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.time_limit_s = time_limit_s
        self.prompt_embeddings = prompt_embeddings
        self.kind = kind
        self.description = description
        self.attention_backend = "native"
        self.img2img = ZImageImg2ImgPipeline(**pipeline.components)
        self.inpaint = ZImageInpaintPipeline(**pipeline.components)
        self.omni = omni
        for edit_pipeline in (self.img2img, self.inpaint):
            edit_pipeline.set_progress_bar_config(disable=True)
        self._lock = threading.Lock()
        self._base_scheduler_config = pipeline.scheduler.config
        gpu = zero_gpu_decorator()
        if gpu is None:
            self._run_text_to_image_on_gpu = self._run_text_to_image
            self._run_edit_on_gpu = self._run_edit
        else:
            self._run_text_to_image_on_gpu = gpu(
                self._run_text_to_image, duration=self._gpu_duration
            )
            self._run_edit_on_gpu = gpu(self._run_edit, duration=self._gpu_duration)

    @property
    def is_preview(self) -> bool:
        return self.kind == "preview"

    @property
    def device(self) -> torch.device:
        return self.pipeline.transformer.device

    @property
    def edit_methods(self) -> str:
        """What the edit tab runs, in words for the UI."""
        whole_image = "omni (image-conditioned model)" if self.omni is not None else "img2img"
        return f"{whole_image} without a mask, inpaint with a painted mask"

    def text_to_image(
        self, request: GenerateRequest, progress: ProgressCallback | None = None
    ) -> GenerateResult:
        """Generate one image; the same request always gives the same pixels on one machine."""
        with self._lock, self._recovering(request):
            return self._run_text_to_image_on_gpu(request, progress)

    def edit(self, request: EditRequest, progress: ProgressCallback | None = None) -> EditResult:
        """Change an image with an instruction: inpaint inside a mask, else the whole image."""
        with self._lock, self._recovering(request):
            return self._run_edit_on_gpu(request, progress)

    def prompt_tokens(self, text: str) -> int:
        """How many tokens the text encoder would read for this prompt, chat template included."""
        tokenizer = self.pipeline.tokenizer
        templated = tokenizer.apply_chat_template(
            [{"role": "user", "content": text}],
            tokenize=False,
            add_generation_prompt=True,
            enable_thinking=True,
        )
        return len(tokenizer(templated).input_ids)

    @contextmanager
    def _recovering(self, request: GenerateRequest | EditRequest) -> Iterator[None]:
        """After a CUDA out-of-memory error, free what the failed request held."""
        try:
            yield
        except torch.OutOfMemoryError:
            logger.warning("out of memory at %dx%d", request.width, request.height)
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            raise OutOfGpuMemory(
                f"The GPU ran out of memory for a {request.width}x{request.height} image. "
                "Please try a smaller resolution."
            ) from None

    def warm_up(self, resolutions: list[str]) -> None:
        """Run each resolution once so compiled kernels exist before the first visitor."""
        for resolution in resolutions:
            width, height = (int(side) for side in resolution.split("x"))
            self.text_to_image(GenerateRequest("warm-up", width, height, seed=0, steps=2))

    def _gpu_duration(self, request: GenerateRequest | EditRequest, progress: object) -> int:
        return gpu_seconds_needed(request.width, request.height, request.steps)

    def _run_text_to_image(
        self, request: GenerateRequest, progress: ProgressCallback | None
    ) -> GenerateResult:
        image, timings = self._denoise_and_decode(
            self.pipeline,
            request.prompt,
            request.shift,
            request.seed,
            progress,
            owner=request.owner,
            height=request.height,
            width=request.width,
            num_inference_steps=request.steps,
        )
        return GenerateResult(image=image, seed=request.seed, timings=timings)

    def _run_edit(self, request: EditRequest, progress: ProgressCallback | None) -> EditResult:
        if request.mask is None and self.omni is not None:
            image, timings = self._run_omni(request, progress)
            return EditResult(image=image, seed=request.seed, method="omni", timings=timings)
        method, pipeline, mask_argument = (
            ("img2img", self.img2img, {})
            if request.mask is None
            else ("inpaint", self.inpaint, {"mask_image": request.mask})
        )
        image, timings = self._denoise_and_decode(
            pipeline,
            request.instruction,
            presets.DEFAULT_SHIFT,
            request.seed,
            progress,
            owner=request.owner,
            image=request.image,
            strength=request.strength,
            # Strength scales the steps actually run; always leave at least one.
            num_inference_steps=max(request.steps, math.ceil(1 / request.strength)),
            height=request.height,
            width=request.width,
            **mask_argument,
        )
        if request.mask is not None:
            image = keep_outside_mask(request.image, image, request.mask)
        return EditResult(image=image, seed=request.seed, method=method, timings=timings)

    @torch.inference_mode()
    def _run_omni(
        self, request: EditRequest, progress: ProgressCallback | None
    ) -> tuple[Image.Image, Timings]:
        assert self.omni is not None
        started = time.perf_counter()
        image = self.omni(
            prompt=request.instruction,
            image=[request.image],
            height=request.height,
            width=request.width,
            num_inference_steps=request.steps,
            guidance_scale=presets.GUIDANCE_SCALE,
            generator=torch.Generator("cpu").manual_seed(request.seed),
            callback_on_step_end=_step_callback(progress, self.time_limit_s),
        ).images[0]
        _synchronize(self.device)
        total = time.perf_counter() - started
        return image, Timings(text_encoder_s=0.0, denoise_s=total, vae_s=0.0, total_s=total)

    @torch.inference_mode()
    def _denoise_and_decode(
        self,
        pipeline: DiffusionPipeline,
        prompt: str,
        shift: float,
        seed: int,
        progress: ProgressCallback | None,
        owner: str = "",
        **call_arguments: Any,
    ) -> tuple[Image.Image, Timings]:
        """Encode the prompt (or reuse the owner's encoding), denoise, decode; time each stage."""
        device = self.device
        started = time.perf_counter()
        prompt_embeds = self._encode(pipeline, prompt, owner)
        _synchronize(device)
        encoded = time.perf_counter()

        pipeline.scheduler = FlowMatchEulerDiscreteScheduler.from_config(
            self._base_scheduler_config, shift=shift
        )
        latents = pipeline(
            prompt_embeds=prompt_embeds,
            guidance_scale=presets.GUIDANCE_SCALE,
            generator=torch.Generator("cpu").manual_seed(seed),
            output_type="latent",
            callback_on_step_end=_step_callback(progress, self.time_limit_s),
            **call_arguments,
        ).images
        _synchronize(device)
        denoised = time.perf_counter()

        image = self._decode(latents)
        _synchronize(device)
        finished = time.perf_counter()
        timings = Timings(
            text_encoder_s=encoded - started,
            denoise_s=denoised - encoded,
            vae_s=finished - denoised,
            total_s=finished - started,
        )
        return image, timings

    def _encode(self, pipeline: DiffusionPipeline, prompt: str, owner: str) -> list[torch.Tensor]:
        reuse = self.prompt_embeddings is not None and owner != ""
        if reuse and (known := self.prompt_embeddings.get(owner, prompt)) is not None:
            return known
        prompt_embeds, _ = pipeline.encode_prompt(
            prompt,
            device=self.device,
            do_classifier_free_guidance=False,
            max_sequence_length=presets.MAX_SEQUENCE_LENGTH,
        )
        if reuse:
            self.prompt_embeddings.put(owner, prompt, prompt_embeds)
        return prompt_embeds

    def forget_prompts_of(self, owner: str) -> None:
        """Drop the owner's cached prompt embeddings (their data is being deleted)."""
        if self.prompt_embeddings is not None:
            self.prompt_embeddings.forget_owner(owner)

    def _decode(self, latents: torch.Tensor) -> Image.Image:
        vae = self.pipeline.vae
        latents = latents.to(vae.dtype) / vae.config.scaling_factor + vae.config.shift_factor
        decoded = vae.decode(latents, return_dict=False)[0]
        return self.pipeline.image_processor.postprocess(decoded, output_type="pil")[0]


def _step_callback(progress: ProgressCallback | None, time_limit_s: float) -> Callable[..., dict]:
    """A diffusers step-end callback: reports (step done, steps to run), enforces the limit."""
    deadline = time.monotonic() + time_limit_s

    def on_step_end(pipeline: Any, step: int, _timestep: Any, tensors: dict) -> dict:
        if time.monotonic() > deadline:
            raise TimedOut(
                f"The request took longer than {time_limit_s:g} s and was stopped. "
                "Please try fewer steps or a smaller image."
            )
        if progress is not None:
            progress(step + 1, pipeline.num_timesteps)
        return tensors

    return on_step_end


def keep_outside_mask(original: Image.Image, edited: Image.Image, mask: Image.Image) -> Image.Image:
    """Paste the edit into the original through a softened mask, so unmasked pixels stay exact."""
    softened = mask.filter(ImageFilter.GaussianBlur(radius=MASK_FEATHER_PX))
    return Image.composite(edited.convert("RGB"), original.convert("RGB"), softened)


class UnavailableEngine:
    """Stands in when the real model cannot run (e.g. a Space without GPU): every call says why."""

    kind = "unavailable"
    is_preview = False
    attention_backend = "none"

    def __init__(self, reason: str) -> None:
        self.description = reason

    edit_methods = "none"

    def text_to_image(
        self, request: GenerateRequest, progress: ProgressCallback | None = None
    ) -> GenerateResult:
        raise EngineUnavailable(self.description)

    def edit(self, request: EditRequest, progress: ProgressCallback | None = None) -> EditResult:
        raise EngineUnavailable(self.description)

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
    if settings.reuse_prompts:
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
    )
    apply_speedups(engine, settings.attention, settings.compile, settings.quant)
    if settings.warmup:
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
