"""Runs the Z-Image pipelines behind one interface: text-to-image, edits, prompt enhancement.

A request is served in two halves. The serving process holds the one GPU slot (a lock, so the
tabs, the API and MCP never run two GPU jobs at once), keeps per-visitor prompt embeddings and
learns how fast steps run. The GPU half (`Engine.run_job`) gets a `GpuJob` of plain data and
gives back plain data; on a ZeroGPU Space it runs inside `spaces.GPU`, i.e. in a forked worker
that receives its arguments and returns its results by pickling, so nothing crosses but data:
progress comes back as yielded `StepDone` events and a stop request travels through a
`StopBoard` in shared memory (zimage/engine/jobs.py).

An engine serves Turbo, and Base where the operator enables it: the two pipelines share the text
encoder, tokenizer and VAE, and each request names its model (`request.model`), which picks the
transformer (zimage/engine/models.py keeps it on the device).
"""

from __future__ import annotations

import gc
import itertools
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
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
from zimage.engine.adapters import LoadedAdapters
from zimage.engine.batch_memory import (
    BatchMemory,
    available_bytes,
    free_bytes,
    holds_another_transformer,
    module_bytes,
    refuse_unless_it_fits,
    weight_bytes,
)
from zimage.engine.enhancer import PromptEnhancer
from zimage.engine.errors import (
    INTERNAL_FAILURE,
    Cancelled,
    EngineError,
    EngineUnavailable,
    OutOfGpuMemory,
    ShuttingDown,
    TimedOut,
)
from zimage.engine.jobs import (
    GpuJob,
    JobControl,
    JobDone,
    JobEvent,
    JobFailed,
    RunHooks,
    StepDone,
    StopBoard,
    StopReason,
    TextSoFar,
)
from zimage.engine.latent_preview import LatentPreview, RunPreview, TinyAutoencoderPreview
from zimage.engine.models import ModelSwitch
from zimage.engine.prompt_embeddings import PromptEmbeddingCache
from zimage.engine.results import (
    EditResult,
    GenerateResult,
    ImageRequest,
    Request,
    Timings,
)
from zimage.engine.speeds import DecodeSpeed, DenoiseSpeed
from zimage.engine.streaming import stream_from_thread
from zimage.engine.zero_gpu import gpu_seconds_needed, seconds_for_tokens, zero_gpu_decorator
from zimage.tools.edit import Edit
from zimage.tools.enhance import EnhancePrompt
from zimage.tools.text_to_image import TextToImage

logger = logging.getLogger(__name__)

# Softens the seam where an inpainted region meets the untouched image.
MASK_FEATHER_PX = 4
# While waiting for the GPU slot, a stopped request leaves within this many seconds.
SLOT_POLL_S = 0.2


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Engine:
    """Runs text-to-image and edits on loaded pipelines, one GPU job at a time.

    `pipeline` is Turbo's; `base`, if given, is Base's, sharing all of Turbo's components but the
    transformer and scheduler. The edit pipelines are built from Turbo's components (edits run on
    Turbo), so the weights exist once in memory whichever tab is used. Where the device cannot
    hold both transformers, one is on it at a time (`one_model_at_a_time`).
    """

    def __init__(
        self,
        pipeline: ZImagePipeline,
        kind: str,
        description: str,
        omni: ZImageOmniPipeline | None = None,
        time_limit_s: float = 300.0,
        prompt_embeddings: PromptEmbeddingCache | None = None,
        zero_gpu_max_s: float = 120.0,
        latent_preview: LatentPreview | None = None,
        enhancer: PromptEnhancer | None = None,
        memory_budget_bytes: int = 0,
        free_memory: Callable[[], int] | None = None,
        preview_decoder: TinyAutoencoderPreview | None = None,
        base: ZImagePipeline | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.pipelines = {presets.TURBO: pipeline}
        if base is not None:
            self.pipelines[presets.BASE] = base
        # Live previews: the tiny autoencoder where there is one (it lives here, so a ZeroGPU
        # worker inherits it), else the linear map, fitted by the first job that asks and
        # carried by the next ones (zimage/engine/latent_preview.py).
        self.preview_decoder = preview_decoder
        self.latent_preview = latent_preview
        self.enhancer = enhancer
        self.time_limit_s = time_limit_s
        self.prompt_embeddings = prompt_embeddings
        self.kind = kind
        self.description = description
        self.attention_backend = "native"
        self.zero_gpu_max_s = zero_gpu_max_s
        self.img2img = ZImageImg2ImgPipeline(**pipeline.components)
        self.inpaint = ZImageInpaintPipeline(**pipeline.components)
        self.omni = omni
        for edit_pipeline in (self.img2img, self.inpaint):
            edit_pipeline.set_progress_bar_config(disable=True)
        self.speeds: defaultdict[str, DenoiseSpeed] = defaultdict(DenoiseSpeed)
        self.decode_speed = DecodeSpeed()
        # LoRA adapters in Turbo's transformer: every pipeline above but Base's uses them.
        self.adapters = LoadedAdapters(pipeline)
        # What a text-to-image batch needs beyond the weights, and what it may use: the free
        # memory of the device (`free_memory`, a probe), at most `memory_budget_bytes` if > 0.
        self.batch_memory = BatchMemory.of_pipeline(pipeline)
        self.memory_budget_bytes = memory_budget_bytes
        self.free_memory = free_memory or self._free_device_memory
        self._slot = threading.Lock()
        self._job_ids = itertools.count(1)
        self._stop_board = StopBoard()
        self._scheduler_configs = {
            name: served.scheduler.config for name, served in self.pipelines.items()
        }
        gpu = zero_gpu_decorator()
        self.on_zero_gpu = gpu is not None
        # On ZeroGPU the serving process cannot ask CUDA what is free: the workload's share
        # less the weights is what a batch may use.
        self._zero_gpu_weights = (
            weight_bytes(pipeline) + (module_bytes(base.transformer) if base is not None else 0)
            if self.on_zero_gpu
            else None
        )
        self.switch = ModelSwitch(
            {name: served.transformer for name, served in self.pipelines.items()},
            self.device,
            one_at_a_time=base is not None and not self._holds_both(base),
        )
        # On ZeroGPU the GPU half runs in a forked worker: a generator, so that its progress
        # events come back one by one (spaces streams each yielded value back, pickled).
        self._stream_on_gpu = (
            gpu(self.stream_job, duration=self.zero_gpu_seconds) if gpu is not None else None
        )

    @property
    def is_preview(self) -> bool:
        return self.kind == "preview"

    @property
    def device(self) -> torch.device:
        # The VAE's: shared by every model and never moved, unlike a transformer.
        return self.pipeline.vae.device

    @property
    def models(self) -> tuple[str, ...]:
        """The models this engine serves, by name (turbo first)."""
        return tuple(self.pipelines)

    @property
    def one_model_at_a_time(self) -> bool:
        """Whether the device holds one model's transformer at a time (switching moves them)."""
        return self.switch.one_at_a_time

    def pipeline_for(self, model: str) -> ZImagePipeline:
        """The text-to-image pipeline of a served model (its transformer, the shared rest)."""
        return self.pipelines[model]

    def _holds_both(self, base: ZImagePipeline) -> bool:
        """Whether Base's transformer can stay on the device beside Turbo's (always on ZeroGPU,
        whose workload holds both)."""
        if self.on_zero_gpu:
            return True
        base_bytes = module_bytes(base.transformer)
        # The memory free were Base's transformer not on the device yet.
        already_there = base.transformer.device == self.device
        room = self.available_memory() + (base_bytes if already_there else 0)
        return holds_another_transformer(self.batch_memory, room, base_bytes)

    @property
    def edit_methods(self) -> str:
        """What the edit tab runs, in words for the UI."""
        whole_image = "omni (image-conditioned model)" if self.omni is not None else "img2img"
        return f"{whole_image} without a mask, inpaint with a painted mask"

    # -- the serving process's half -----------------------------------------------------------

    def text_to_image(self, request: TextToImage, hooks: RunHooks | None = None) -> GenerateResult:
        """Generate `request.num_images` images of a checked request; a request always gives the
        same pixels on one machine, and image i of a batch is the image of seed `seed + i` alone.
        `request.owner` may reuse its own prompt embeddings ("" never does). `hooks.on_preview`
        gets each step's preview frames (from the second step on)."""
        done = self._submit(request, hooks or RunHooks())
        return GenerateResult(images=done.images, seeds=request.seeds, timings=done.timings)

    def edit(self, request: Edit, hooks: RunHooks | None = None) -> EditResult:
        """Change a decoded image with an instruction: inpaint inside a mask, else the whole
        image."""
        done = self._submit(request, hooks or RunHooks())
        return EditResult(
            image=done.images[0], seed=request.seed, method=done.method, timings=done.timings
        )

    def stop_everything(self, reason: StopReason = StopReason.SHUTTING_DOWN) -> None:
        """End the running job at its next step and refuse every later one (shutdown)."""
        self._stop_board.stop_everything(reason)

    def zero_gpu_seconds(self, job: GpuJob) -> int:
        request = job.request
        if isinstance(request, EnhancePrompt):
            tokens = self.enhancer.max_new_tokens if self.enhancer is not None else 0
            return seconds_for_tokens(tokens, self.zero_gpu_max_s)
        return gpu_seconds_needed(
            request.width,
            request.height,
            request.steps_to_run,
            request.num_images,
            self.zero_gpu_max_s,
            passes=request.forwards_per_step,
        )

    def enhance_prompt(self, request: EnhancePrompt, hooks: RunHooks | None = None) -> str:
        """Rewrite a prompt with the prompt enhancer, in the GPU slot like an image;
        `hooks.on_text` gets the rewrite so far after each token."""
        if self.enhancer is None:
            raise EngineUnavailable("Prompt enhancement is not available on this Space.")
        _, done = self._run_in_slot(request, hooks or RunHooks())
        return done.text

    def _submit(self, request: ImageRequest, hooks: RunHooks) -> JobDone:
        self._refuse_what_cannot_fit(request)
        job, done = self._run_in_slot(request, hooks)
        if job.keep_prompt_embeds and done.prompt_embeds is not None:
            assert self.prompt_embeddings is not None
            self.prompt_embeddings.put(request.owner, request.prompt, done.prompt_embeds)
        self.speeds[request.model].learn(request, done.timings.denoise_s, done.steps_run)
        self.decode_speed.learn(request, done.timings.vae_s)
        return done

    def _run_in_slot(self, request: Request, hooks: RunHooks) -> tuple[GpuJob, JobDone]:
        """Wait for the GPU slot, then run the request's job there; a stop asked for on
        `hooks.control` reaches the job at once."""
        started = time.monotonic()
        control = hooks.control
        with self._gpu_slot(control):
            # Checked in the slot, so that the memory the previous job held counts as free.
            self._refuse_what_memory_cannot_hold(request)
            job = self._job_for(
                request,
                deadline=started + self.time_limit_s,
                want_previews=hooks.on_preview is not None,
            )
            control.on_stop(lambda reason: self._stop_board.request_stop(job.job_id, reason))
            try:
                done = self._execute(job, hooks)
            finally:
                control.on_stop(None)
            if done.preview_map is not None:
                self.latent_preview = done.preview_map
        return job, done

    def _refuse_what_cannot_fit(self, request: ImageRequest) -> None:
        """Refuse at once what the measured speeds say would overrun the time limit: denoising
        (at the request's model's speed) and decoding together."""
        stages = [
            self.speeds[request.model].predict_s(request),
            self.decode_speed.predict_s(request),
        ]
        predicted = sum(seconds for seconds in stages if seconds is not None)
        if predicted > self.time_limit_s:
            raise TimedOut(
                f"This request would take about {predicted:.0f} s, over the "
                f"{self.time_limit_s:g} s limit. Please try fewer steps or a smaller image."
            )

    def available_memory(self) -> int:
        """Bytes a batch may use now, beyond the loaded weights."""
        return available_bytes(self.free_memory, self.memory_budget_bytes, self._zero_gpu_weights)

    def _free_device_memory(self) -> int:
        return free_bytes(self.device)

    def _refuse_what_memory_cannot_hold(self, request: Request) -> None:
        """Refuse, before any GPU work, a text-to-image batch the free memory cannot hold."""
        if not isinstance(request, TextToImage):
            return
        on_gpu = self.on_zero_gpu or self.device.type == "cuda"
        refuse_unless_it_fits(
            self.batch_memory,
            request.num_images,
            request.width,
            request.height,
            self.available_memory(),
            "GPU memory" if on_gpu else "memory",
            passes=request.forwards_per_step,
            one_pass_option=f"the {presets.TURBO} model (no guidance)",
        )

    @contextmanager
    def _gpu_slot(self, control: JobControl) -> Iterator[None]:
        """Hold the one GPU slot; a request stopped while it waits leaves without running."""
        while not self._slot.acquire(timeout=SLOT_POLL_S):
            _raise_for(control.stop_reason())
        try:
            _raise_for(control.stop_reason() or self._stop_board.reason_for_every_job())
            yield
        finally:
            self._slot.release()

    def _job_for(self, request: Request, deadline: float, want_previews: bool) -> GpuJob:
        reuse = (
            self.prompt_embeddings is not None
            and request.owner != ""
            and not isinstance(request, EnhancePrompt)
            and not (isinstance(request, Edit) and self._uses_omni(request))
        )
        known = self.prompt_embeddings.get(request.owner, request.prompt) if reuse else None
        images = not isinstance(request, EnhancePrompt)
        return GpuJob(
            job_id=next(self._job_ids),
            request=request,
            deadline=deadline,
            time_limit_s=self.time_limit_s,
            prompt_embeds=known,
            keep_prompt_embeds=reuse and known is None,
            want_previews=want_previews,
            # The tiny autoencoder, where there is one, is the engine's own: not sent along.
            preview_map=self.latent_preview if self.preview_decoder is None else None,
            denoise_s=(self.speeds[request.model].predict_s(request) or 0.0) if images else 0.0,
            decode_s=(self.decode_speed.predict_s(request) or 0.0) if images else 0.0,
        )

    def _execute(self, job: GpuJob, hooks: RunHooks) -> JobDone:
        def on_event(event: StepDone | TextSoFar) -> None:
            if isinstance(event, TextSoFar):
                if hooks.on_text is not None:
                    hooks.on_text(event.text)
            else:
                if hooks.progress is not None:
                    hooks.progress(event.step, event.total)
                if hooks.on_preview is not None and event.previews:
                    hooks.on_preview(list(event.previews))
            reason = hooks.control.stop_reason()
            if reason is not None:
                self._stop_board.request_stop(job.job_id, reason)

        if self._stream_on_gpu is None:
            return self.run_job(job, on_event)
        outcome: JobDone | None = None
        for event in self._stream_on_gpu(job):
            if isinstance(event, StepDone | TextSoFar):
                on_event(event)
            elif isinstance(event, JobFailed):
                raise event.error
            else:
                outcome = event
        if outcome is None:
            raise EngineError("The GPU worker ended without a result. Please try again.")
        return outcome

    # -- the GPU half: plain data in, plain data out --------------------------------------------

    def stream_job(self, job: GpuJob) -> Iterator[JobEvent]:
        """`run_job` as a stream of events, for a GPU function in another process (ZeroGPU).

        The pipeline reports steps through a callback, so it runs in a thread of the worker and
        its events are passed on as they come; an EngineError comes back as data (JobFailed).
        """
        try:
            done = yield from stream_from_thread(lambda emit: self.run_job(job, emit))
        except EngineError as error:
            yield JobFailed(error)
        except Exception:
            logger.exception("GPU job %d failed", job.job_id)
            yield JobFailed(EngineError(INTERNAL_FAILURE))
        else:
            yield done

    def run_job(self, job: GpuJob, report: Callable[[StepDone | TextSoFar], None]) -> JobDone:
        """Run one request's GPU work, reporting each denoising step (or each token written);
        check before each stage (text encoding, every step or token, decoding) that it may go
        on and can still finish in time."""
        request = job.request
        if isinstance(request, EnhancePrompt):
            return self._run_enhance(job, report)
        fitted = None
        if job.want_previews and job.preview_map is None and self.preview_decoder is None:
            # The first request that asks for previews fits the map to the loaded VAE (about a
            # second); the serving process keeps it for the next ones.
            fitted = LatentPreview.fit(self.pipeline.vae)
            job = replace(job, preview_map=fitted)
        # In the process that runs the job (a ZeroGPU worker is one): this run's adapters only.
        self.adapters.activate(request.adapters)
        with self._freeing_memory_on_oom(request):
            self.switch.bring(request.model)
            if isinstance(request, TextToImage):
                done = self._run_text_to_image(job, report)
            elif self._uses_omni(request):
                done = self._run_omni(job, report)
            else:
                done = self._run_edit(job, report)
        return done if fitted is None else replace(done, preview_map=fitted)

    def _run_enhance(self, job: GpuJob, report: Callable[[TextSoFar], None]) -> JobDone:
        request = job.request
        assert isinstance(request, EnhancePrompt) and self.enhancer is not None
        started = time.perf_counter()
        text, tokens = request.prompt, 0
        with self._freeing_memory_on_oom(request):
            for text in self.enhancer.stream(
                request.prompt, request.sampling_seed, lambda: self._check(job)
            ):
                tokens += 1
                report(TextSoFar(text))
        _synchronize(self.device)
        total = time.perf_counter() - started
        timings = Timings(text_encoder_s=total, denoise_s=0.0, vae_s=0.0, total_s=total)
        return JobDone([], "enhance", timings, tokens, text=text or request.prompt)

    def _uses_omni(self, request: Edit) -> bool:
        return request.mask is None and self.omni is not None

    @contextmanager
    def _freeing_memory_on_oom(self, request: Request) -> Iterator[None]:
        """After a CUDA out-of-memory error, free what the failed request held."""
        try:
            yield
        except torch.OutOfMemoryError:
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if isinstance(request, EnhancePrompt):
                logger.warning("out of memory while enhancing a prompt")
                raise OutOfGpuMemory(
                    "The GPU ran out of memory while enhancing the prompt. Please try again."
                ) from None
            logger.warning("out of memory at %dx%d", request.width, request.height)
            raise OutOfGpuMemory(
                f"The GPU ran out of memory for a {request.width}x{request.height} image. "
                "Please try a smaller resolution."
            ) from None

    def _check(self, job: GpuJob, next_stage_s: float = 0.0) -> None:
        """Stop here if asked to, or if the next stage cannot finish before the deadline."""
        _raise_for(self._stop_board.reason_for(job.job_id))
        if time.monotonic() + next_stage_s > job.deadline:
            raise TimedOut(
                f"The request would take longer than the {job.time_limit_s:g} s limit and was "
                "stopped. Please try fewer steps or a smaller image."
            )

    def _run_text_to_image(self, job: GpuJob, report: Callable[[StepDone], None]) -> JobDone:
        request = job.request
        assert isinstance(request, TextToImage)
        guided = {"cfg_normalization": request.cfg_normalization} if request.guidance_scale else {}
        return self._denoise_and_decode(
            job,
            report,
            self.pipeline_for(request.model),
            "text-to-image",
            request.shift,
            height=request.height,
            width=request.width,
            num_inference_steps=request.steps_to_run,
            num_images_per_prompt=request.num_images,
            **guided,
        )

    def _run_edit(self, job: GpuJob, report: Callable[[StepDone], None]) -> JobDone:
        request = job.request
        assert isinstance(request, Edit)
        method, pipeline, mask_argument = (
            ("img2img", self.img2img, {})
            if request.mask is None
            else ("inpaint", self.inpaint, {"mask_image": request.mask})
        )
        done = self._denoise_and_decode(
            job,
            report,
            pipeline,
            method,
            presets.DEFAULT_SHIFT,
            image=request.image,
            strength=request.strength,
            num_inference_steps=request.inference_steps,
            height=request.height,
            width=request.width,
            **mask_argument,
        )
        if request.mask is None:
            return done
        kept = [keep_outside_mask(request.image, image, request.mask) for image in done.images]
        return JobDone(kept, done.method, done.timings, done.steps_run, done.prompt_embeds)

    @torch.inference_mode()
    def _run_omni(self, job: GpuJob, report: Callable[[StepDone], None]) -> JobDone:
        request = job.request
        assert isinstance(request, Edit) and self.omni is not None
        self._check(job)
        started = time.perf_counter()
        steps = _StepWatch(self, job, report)
        image = self.omni(
            prompt=request.instruction,
            image=[request.image],
            height=request.height,
            width=request.width,
            num_inference_steps=request.steps,
            guidance_scale=presets.GUIDANCE_SCALE,
            generator=torch.Generator("cpu").manual_seed(request.seed),
            callback_on_step_end=steps.on_step_end,
        ).images[0]
        _synchronize(self.device)
        total = time.perf_counter() - started
        timings = Timings(text_encoder_s=0.0, denoise_s=total, vae_s=0.0, total_s=total)
        return JobDone([image], "omni", timings, steps.done)

    @torch.inference_mode()
    def _denoise_and_decode(
        self,
        job: GpuJob,
        report: Callable[[StepDone], None],
        pipeline: DiffusionPipeline,
        method: str,
        shift: float,
        **call_arguments: Any,
    ) -> JobDone:
        """Encode the prompt (or reuse the owner's encoding) and, with guidance, the negative
        prompt; denoise, decode; time each stage."""
        request = job.request
        device = self.device
        started = time.perf_counter()
        self._check(job)
        prompt_embeds = job.prompt_embeds or self._encode(pipeline, request.prompt)
        guidance = request.guidance_scale
        negative = (
            {"negative_prompt_embeds": self._encode(pipeline, request.negative_prompt)}
            if guidance > 0
            else {}
        )
        _synchronize(device)
        encoded = time.perf_counter()

        pipeline.scheduler = FlowMatchEulerDiscreteScheduler.from_config(
            self._scheduler_configs[request.model], shift=shift
        )
        steps = _StepWatch(self, job, report)
        self._check(job, next_stage_s=job.denoise_s + job.decode_s)
        latents = pipeline(
            prompt_embeds=prompt_embeds,
            guidance_scale=guidance,
            **negative,
            generator=[torch.Generator("cpu").manual_seed(seed) for seed in request.seeds],
            output_type="latent",
            callback_on_step_end=steps.on_step_end,
            **call_arguments,
        ).images
        _synchronize(device)
        denoised = time.perf_counter()

        self._check(job, next_stage_s=job.decode_s)
        images = self._decode(latents)
        _synchronize(device)
        finished = time.perf_counter()
        timings = Timings(
            text_encoder_s=encoded - started,
            denoise_s=denoised - encoded,
            vae_s=finished - denoised,
            total_s=finished - started,
        )
        kept_embeds = prompt_embeds if job.keep_prompt_embeds else None
        return JobDone(images, method, timings, steps.done, kept_embeds)

    def _encode(self, pipeline: DiffusionPipeline, prompt: str) -> list[torch.Tensor]:
        prompt_embeds, _ = pipeline.encode_prompt(
            prompt,
            device=self.device,
            do_classifier_free_guidance=False,
            max_sequence_length=presets.MAX_SEQUENCE_LENGTH,
        )
        return prompt_embeds

    def _decode(self, latents: torch.Tensor) -> list[Image.Image]:
        vae = self.pipeline.vae
        latents = latents.to(vae.dtype) / vae.config.scaling_factor + vae.config.shift_factor
        decoded = vae.decode(latents, return_dict=False)[0]
        return self.pipeline.image_processor.postprocess(decoded, output_type="pil")

    # -- the rest -------------------------------------------------------------------------------

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

    def forget_prompts_of(self, owner: str) -> None:
        """Drop the owner's cached prompt embeddings (their data is being deleted)."""
        if self.prompt_embeddings is not None:
            self.prompt_embeddings.forget_owner(owner)

    def warm_up(self, resolutions: list[str]) -> None:
        """Run each resolution once with each model so compiled kernels exist before the first
        visitor."""
        for model in self.models:
            for resolution in resolutions:
                self.text_to_image(
                    TextToImage(
                        prompt="warm-up", resolution=resolution, seed=0, steps=2, model=model
                    )
                )


def _raise_for(reason: StopReason | None) -> None:
    if reason is StopReason.CANCELLED:
        raise Cancelled()
    if reason is StopReason.SHUTTING_DOWN:
        raise ShuttingDown()


@dataclass
class _StepWatch:
    """A diffusers step-end callback: reports each step and checks before the next one that
    the steps left (each as long as the last one) and the decode can still finish in time."""

    engine: Engine
    job: GpuJob
    report: Callable[[StepDone], None]
    done: int = 0
    last_step_at: float = field(default_factory=time.monotonic)
    previews: RunPreview | None = None

    def __post_init__(self) -> None:
        preview = self.engine.preview_decoder or self.job.preview_map
        if self.job.want_previews and preview is not None:
            self.previews = preview.start_run()

    def on_step_end(self, pipeline: Any, step: int, _timestep: Any, tensors: dict) -> dict:
        now = time.monotonic()
        step_s, self.last_step_at = now - self.last_step_at, now
        self.done = step + 1
        total = pipeline.num_timesteps
        frames = (
            self.previews.after_step(tensors["latents"], pipeline.scheduler)
            if self.previews is not None
            else []
        )
        self.report(StepDone(self.done, total, tuple(frames)))
        self.engine._check(self.job, next_stage_s=(total - self.done) * step_s + self.job.decode_s)
        return tensors


def keep_outside_mask(original: Image.Image, edited: Image.Image, mask: Image.Image) -> Image.Image:
    """Paste the edit into the original through a softened mask, so unmasked pixels stay exact."""
    softened = mask.filter(ImageFilter.GaussianBlur(radius=MASK_FEATHER_PX))
    return Image.composite(edited.convert("RGB"), original.convert("RGB"), softened)
