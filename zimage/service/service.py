"""The request path: admit -> (wait for the GPU) -> check -> engine -> cache -> response, and the
usage log told at the end.

Plain Python, the one door of the page, the script endpoints and the MCP server to the engine
and to the outputs kept. Each tool is asked for with its request object (zimage/tools), the
visitor and the run's hooks. `admit` runs when a request joins the GPU queue (every door's
queue is the same: zimage/page/gpu_queue.py), so that what would be refused is refused then,
not after waiting its turn; the run checks its parameters again, cheaply. Analytics hears about
a request only when consent allows (operator setting, the visitor's toggle, Global Privacy
Control / Do Not Track) when its row is written: a browser that opts out, or deletes its data,
while its request runs gets no row for it, and a deletion also stops the request and keeps
nothing of it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from PIL import Image

from zimage import presets
from zimage.adapters.menu import AdapterMenu, Styled
from zimage.engine.errors import (
    Cancelled,
    EngineError,
    EngineUnavailable,
    OutOfGpuMemory,
    ShuttingDown,
    TimedOut,
)
from zimage.engine.interface import ImageEngine
from zimage.engine.jobs import JobControl, RunHooks, StopReason
from zimage.engine.lora_files import AdapterRefused
from zimage.engine.results import Timings
from zimage.guards.rate_limit import RateLimited, RateLimiter
from zimage.privacy.output_cache import CacheEntry, OutputCache
from zimage.privacy.policy import analytics_allowed
from zimage.privacy.usage_log import UsageEvent, UsageLog
from zimage.service.images import (
    ImageInputError,
    ImageLimits,
    encode_png,
    load_input_image,
    load_mask,
    painted_mask,
)
from zimage.service.moderation import ContentFlagged, Moderation
from zimage.service.visitors import Visitor
from zimage.tools.checks import InputError, choose_seed
from zimage.tools.edit import Edit
from zimage.tools.enhance import EnhancePrompt
from zimage.tools.parameters import Kind, Offer, ToolRequest
from zimage.tools.text_to_image import SERVED_MODELS, TextToImage

if TYPE_CHECKING:
    from zimage.replicas.link import ReplicaLink

logger = logging.getLogger(__name__)

# The usage log's name for each tool's runs.
ENDPOINTS: dict[type[ToolRequest], str] = {
    TextToImage: "generate",
    Edit: "edit",
    EnhancePrompt: "enhance",
}


@dataclass(frozen=True)
class ImageOutcome:
    png: bytes
    seed: int
    method: str
    width: int
    height: int
    timings: Timings
    cache_key: str


@dataclass(frozen=True)
class EngineFacts:
    """What the page says about the engine: which one runs, how edits are made, whether the
    prompt enhancer is there, which models it serves and whether they take turns on the device."""

    kind: str
    description: str
    is_preview: bool
    edit_methods: str
    edits_with_omni: bool
    can_enhance: bool
    models: tuple[str, ...]
    one_model_at_a_time: bool


@dataclass(eq=False)
class _UsageNote:
    """Filled in while a request runs; written to the usage log when it ends, if the
    visitor's consent still holds then and their data was not deleted meanwhile."""

    control: JobControl
    opt_out: bool
    params: dict[str, Any] = field(default_factory=dict)
    prompt: str | None = None
    forgotten: bool = False


class ZImageService:
    """What a visitor, script or agent can ask of the Space."""

    def __init__(
        self,
        engine: ImageEngine,
        image_limits: ImageLimits,
        cache: OutputCache,
        usage_log: UsageLog | None = None,
        moderation: Moderation | None = None,
        rate_limiter: RateLimiter | None = None,
        replicas: ReplicaLink | None = None,
        adapters: AdapterMenu | None = None,
    ) -> None:
        self.engine = engine
        self.adapters = adapters or AdapterMenu()
        self.image_limits = image_limits
        self.cache = cache
        self.usage_log = usage_log
        self.moderation = moderation or Moderation()
        self.rate_limiter = rate_limiter or RateLimiter(0)
        self.replicas = replicas  # other replicas sharing the usage database, if any
        self._shutting_down = False
        self._in_flight = 0
        self._idle = threading.Condition()
        # The requests running for each browser pseudonym (consent and deletion reach them).
        self._runs: dict[str, set[_UsageNote]] = {}

    @property
    def engine_facts(self) -> EngineFacts:
        engine = self.engine
        return EngineFacts(
            kind=engine.kind,
            description=engine.description,
            is_preview=engine.is_preview,
            edit_methods=engine.edit_methods,
            edits_with_omni=getattr(engine, "omni", None) is not None,
            can_enhance=engine.enhancer is not None,
            models=engine.models,
            one_model_at_a_time=engine.one_model_at_a_time,
        )

    def offered(self) -> dict[str, Offer]:
        """The choices this Space offers where they depend on its settings (the models it
        serves, the adapters), for schemas, docs and widgets."""
        return {**self.adapters.offer(), SERVED_MODELS: Offer(self.engine.models)}

    def _check_model(self, request: TextToImage) -> None:
        """The model is one this Space serves; adapters only with Turbo, which they are made
        for (Base's transformer carries none)."""
        served = self.engine.models
        if request.model not in served:
            raise InputError(f"Model must be one of {', '.join(served)} (got {request.model!r}).")
        if request.model != presets.TURBO and (request.lora or request.lora_2):
            raise InputError(
                f"Style adapters (LoRA) here are made for {presets.TURBO}: choose the "
                f"{presets.TURBO} model, or no adapter with {request.model}."
            )

    # -- the tools ------------------------------------------------------------------------------

    def text_to_image(
        self, request: TextToImage, visitor: Visitor, hooks: RunHooks | None = None
    ) -> list[ImageOutcome]:
        """`request.num_images` images with seeds s, s+1, ... in one GPU batch.

        Raises InputError for a bad parameter, EngineUnavailable without a model, Cancelled
        when the caller stops it.
        """
        hooks = hooks or RunHooks()
        with self._logged("generate", visitor, hooks) as note:
            self._refuse_when_shutting_down()
            request = self._checked(request)
            asked_prompt = request.prompt
            request = self._with_adapters(request, hooks)
            if request.prompt != asked_prompt:  # with the adapters' trigger words
                self._check_text(request.prompt, "prompt", cut=request.cut_long_prompt)
            request = dataclasses.replace(request, owner=visitor.owner)
            note.params = self.adapters.usage_settings(request)
            note.prompt = asked_prompt
            if not request.live_preview:
                hooks = dataclasses.replace(hooks, on_preview=None)
            result = self.engine.text_to_image(request, hooks)
            _end_if_stopped(hooks.control)
            for image in result.images:
                self.moderation.check_output(image)
            # Kept with the images (their owner's "reuse settings"), the prompt as asked.
            settings = {**request.kept_settings(), "prompt": asked_prompt}
            return [
                self._keep(visitor, note, image, seed, "text-to-image", result.timings, settings)
                for image, seed in zip(result.images, result.seeds)
            ]

    def edit(self, request: Edit, visitor: Visitor, hooks: RunHooks | None = None) -> ImageOutcome:
        """Edit an image. `mask` (white = change) or painted `mask_layers` select inpainting.

        Raises InputError / ImageInputError for bad input, EngineUnavailable without a model.
        """
        hooks = hooks or RunHooks()
        with self._logged("edit", visitor, hooks) as note:
            self._refuse_when_shutting_down()
            request = self._checked(request)
            asked_instruction = request.instruction
            request = self._with_adapters(request, hooks)
            if request.instruction != asked_instruction:  # with the adapters' trigger words
                self._check_text(request.instruction, "instruction")
            picture = load_input_image(request.image, self.image_limits)
            if request.mask is not None:
                mask = load_mask(request.mask, picture.size, self.image_limits)
            else:
                mask = painted_mask(request.mask_layers, picture.size, self.image_limits)
            if mask is None and request.adapters and self.engine_facts.edits_with_omni:
                raise InputError(
                    "Adapters do not apply to whole-image edits on this Space (they run on the "
                    "image-conditioned edit model): paint the area to change, or choose none."
                )
            request = dataclasses.replace(
                request, image=picture, mask=mask, mask_layers=(), owner=visitor.owner
            )
            resolution = {"resolution": f"{picture.width}x{picture.height}"}
            note.params = {**resolution, **self.adapters.usage_settings(request)}
            note.prompt = asked_instruction
            result = self.engine.edit(request, hooks)
            _end_if_stopped(hooks.control)
            note.params["method"] = result.method
            self.moderation.check_output(result.image)
            return self._keep(
                visitor,
                note,
                result.image,
                result.seed,
                result.method,
                result.timings,
                {
                    **request.kept_settings(),
                    "instruction": asked_instruction,
                    **resolution,
                    "method": result.method,
                },
            )

    def enhance_prompt(
        self, request: EnhancePrompt, visitor: Visitor, hooks: RunHooks | None = None
    ) -> str:
        """Rewrite a prompt into a richer one with the prompt enhancer, on this Space.

        Seed -1 gives the most likely wording; another seed samples a variant. The result is a
        prompt like any other: it passes the same checks and content filter, and it is never
        logged unless prompts are.
        """
        hooks = hooks or RunHooks()
        with self._logged("enhance", visitor, hooks) as note:
            self._refuse_when_shutting_down()
            request = self._checked(request)
            note.params = {"sampled": request.sampling_seed is not None}
            note.prompt = request.prompt
            enhanced = self.engine.enhance_prompt(request, hooks)
            _end_if_stopped(hooks.control)
            self.moderation.check_prompt(enhanced)
            return enhanced

    def shut_down(self, grace_s: float) -> bool:
        """Refuse new requests, stop the running one at its next step, and wait up to `grace_s`
        for every request to be answered; True when none is left."""
        self._shutting_down = True
        self.engine.stop_everything()
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=grace_s)

    def admit(self, asked: Sequence[ToolRequest], visitor: Visitor) -> None:
        """Refuse now, as a run joins the GPU queue, what its run would refuse after waiting:
        the Space stopping, the visitor's rate limit (counting every image asked for, a prompt
        enhancement as one), a bad parameter, a prompt over the token limit or the filter.
        `asked` are the requests the run makes in order (an enhancement, then an image). Counts
        against the rate limit when admitted; a refusal is logged as a run's would be."""
        with self._logged(ENDPOINTS[type(asked[0])], visitor, refusals_only=True):
            self._refuse_when_shutting_down()
            self.rate_limiter.admit(visitor.client_ip, sum(map(images_counted, asked)))
            for request in asked:
                self._checked(request)

    def _refuse_when_shutting_down(self) -> None:
        if self._shutting_down:
            raise ShuttingDown()

    def _checked(self, request: Request) -> Request:
        """The request with its parameters, text and seed checked (the seed chosen)."""
        request = request.checked()
        self._check_texts(request)
        if isinstance(request, TextToImage):
            self._check_model(request)
            seed = choose_seed(request.seed, request.randomize_seed, room=request.num_images - 1)
            return dataclasses.replace(request, seed=seed)
        if isinstance(request, Edit):
            seed = choose_seed(request.seed, request.randomize_seed)
            if request.image is None:
                raise InputError("Please add an image to edit.")
            return dataclasses.replace(request, seed=seed)
        return request

    def _check_texts(self, request: ToolRequest) -> None:
        """Every text of the request that the model reads: within its token limit, and prompts
        past the filter (an optional prompt, e.g. the negative one, names what must stay out of
        the picture, so it is not filtered)."""
        cut = getattr(request, "cut_long_prompt", False)
        for name, described in request.parameters().items():
            what = described.label.lower()
            if described.kind is Kind.PROMPT:
                self._check_text(getattr(request, name), what, cut=cut)
            elif described.kind is Kind.OPTIONAL_PROMPT:
                self._within_token_limit(getattr(request, name), what)

    def _with_adapters(self, request: Styled, hooks: RunHooks) -> Styled:
        """The request with its adapters resolved and trigger words added (a visitor-named Hub
        adapter is fetched now, outside the GPU slot, its bytes shown as progress)."""
        return self.adapters.applied(
            request,
            progress=hooks.fetching,
            should_stop=lambda: hooks.control.stop_reason() is not None,
        )

    def _check_text(self, text: str, what: str, cut: bool = False) -> None:
        """Within the model's token limit (or, if `cut`, read only up to it), and past the prompt
        filter (the characters were checked with the other parameters)."""
        self._within_token_limit(text, what, cut)
        self.moderation.check_prompt(text)

    def _within_token_limit(self, text: str, what: str, cut: bool = False) -> None:
        """Refuse a text over the model's token limit unless it is to be `cut` there."""
        if not text:
            return
        tokens = self.engine.prompt_tokens(text)
        if tokens > presets.MAX_SEQUENCE_LENGTH and cut:
            logger.info(
                "a %d-token prompt is read up to its first %d tokens, as the official Space does",
                tokens,
                presets.MAX_SEQUENCE_LENGTH,
            )
        elif tokens > presets.MAX_SEQUENCE_LENGTH:
            raise InputError(
                f"The {what} is {tokens} tokens long; the model reads at most "
                f"{presets.MAX_SEQUENCE_LENGTH}. Please shorten it."
            )

    # -- the outputs kept -------------------------------------------------------------------

    def outputs_of(self, owner: str) -> list[CacheEntry]:
        """This visitor's images still in memory, newest first."""
        return self.cache.entries_for(owner) if owner else []

    def output_of(self, key: str, owner: str) -> CacheEntry | None:
        """One of this visitor's images, if it is still kept."""
        return self.cache.get(key, owner)

    def seconds_left(self, entry: CacheEntry) -> float:
        """How long an output is kept before it is deleted."""
        return self.cache.seconds_left(entry)

    def keep_files(self, outcome: ImageOutcome, paths: Iterable[str | None]) -> None:
        """Tie files to an output (the uploads it was made from) so that they are deleted with
        it."""
        self.cache.attach_files(outcome.cache_key, [path for path in paths if path])

    def serve_from_file(self, outcome: ImageOutcome, path: str) -> None:
        """The output is served from the file at `path` from now on: the file is deleted with
        it, and its PNG is kept in that file only."""
        self.cache.attach_files(outcome.cache_key, [path], serves=True)

    def keep_visitor_files(
        self, visitor: Visitor, kind: str, paths: Iterable[str], *, replace: bool = False
    ) -> None:
        """Hold files written for the visitor outside an output (a run's preview frames, their
        data download) under `kind`, until `drop_visitor_files`, the output lifetime or the
        deletion of their data; `replace` lets go of their earlier files of that kind."""
        self.cache.keep_visitor_files(
            visitor.owner, kind, paths, given_to=visitor.address_key, replace=replace
        )

    def drop_visitor_files(self, visitor: Visitor, kind: str) -> None:
        """Delete the visitor's files of `kind` now."""
        self.cache.drop_visitor_files(visitor.owner, kind)

    def delete_outputs_of(self, owner: str) -> int:
        """Delete this visitor's images now; returns how many."""
        return self.cache.purge_owner(owner) if owner else 0

    # -- the visitor's data ---------------------------------------------------------------------

    def usage_rows_of(self, pseudonym: str) -> list[dict[str, Any]]:
        return self.usage_log.rows_for(pseudonym) if self.usage_log and pseudonym else []

    def usage_export_of(self, pseudonym: str) -> str:
        if self.usage_log is None:
            return '{"rows": []}'
        return self.usage_log.export_json(pseudonym)

    def set_opt_out(self, visitor: Visitor, opt_out: bool) -> None:
        """The browser's analytics choice changed: its requests running now are logged only if
        it allows when they end."""
        with self._idle:
            for note in self._runs.get(visitor.pseudonym, ()):
                note.opt_out = opt_out

    def delete_everything_of(self, visitor: Visitor) -> tuple[int, int]:
        """Delete the visitor's usage rows and cached outputs now (its requests running now are
        stopped, and nothing of them is kept or logged), and have the other replicas drop what
        they hold of this browser; returns (rows, outputs)."""
        rows, outputs = self._forget(visitor.owner, visitor.pseudonym)
        if self.replicas is not None and visitor.pseudonym:
            self.replicas.announce_deletion(visitor.pseudonym)
        return rows, outputs

    def usage_deletion_waiting(self, pseudonym: str) -> bool:
        """Whether the usage store was away when this pseudonym's rows were deleted: the rows it
        holds are deleted as soon as it answers again."""
        return bool(self.usage_log and pseudonym and self.usage_log.deletion_waiting(pseudonym))

    def forget_browser_here(self, pseudonym: str) -> tuple[int, int]:
        """What a browser deleted on another replica leaves here: its usage rows (queued ones
        too), outputs and prompt embeddings, kept under its pseudonym (zimage/page/visitors.py)."""
        return self._forget(pseudonym, pseudonym)

    def _forget(self, owner: str, pseudonym: str) -> tuple[int, int]:
        with self._idle:
            running = list(self._runs.get(pseudonym, ()))
            for note in running:
                note.forgotten = True
        for note in running:
            note.control.stop(StopReason.CANCELLED)
        rows = self.usage_log.delete_for(pseudonym) if self.usage_log else 0
        outputs = self.delete_outputs_of(owner)
        self.engine.forget_prompts_of(owner)
        return rows, outputs

    def _keep(
        self,
        visitor: Visitor,
        note: _UsageNote,
        image: Image.Image,
        seed: int,
        method: str,
        timings: Timings,
        settings: dict[str, Any],
    ) -> ImageOutcome:
        png = encode_png(image)
        entry = self.cache.put(
            visitor.owner,
            png,
            seed,
            {"method": method, "seed": seed, **settings},
            given_to=visitor.address_key,
        )
        # Checked after storing: a deletion marks first and purges after, so either this sees
        # the mark or the purge sees the output.
        if note.forgotten:
            self.cache.purge_owner(visitor.owner)
            raise Cancelled()
        return ImageOutcome(png, seed, method, image.width, image.height, timings, entry.key)

    @contextmanager
    def _logged(
        self,
        endpoint: str,
        visitor: Visitor,
        hooks: RunHooks | None = None,
        refusals_only: bool = False,
    ) -> Iterator[_UsageNote]:
        """Log the request when it ends (only a refusal, if `refusals_only`), while consent
        holds and the visitor's data was not deleted meanwhile."""
        note = _UsageNote((hooks or RunHooks()).control, visitor.analytics_opt_out)
        started = time.perf_counter()
        outcome = "ok"
        with self._idle:
            self._in_flight += 1
            if visitor.pseudonym:
                self._runs.setdefault(visitor.pseudonym, set()).add(note)
        try:
            yield note
        except Exception as error:
            outcome = outcome_of(error)
            raise
        finally:
            duration_s = time.perf_counter() - started
            # Under the lock that a change of consent and a deletion take: the row is queued
            # before a deletion reads the queue, or not at all.
            with self._idle:
                if outcome != "ok" or not refusals_only:
                    self._record(endpoint, visitor, note, duration_s, outcome)
                runs = self._runs.get(visitor.pseudonym, set())
                runs.discard(note)
                if not runs:
                    self._runs.pop(visitor.pseudonym, None)
                self._in_flight -= 1
                self._idle.notify_all()

    def _record(
        self, endpoint: str, visitor: Visitor, note: _UsageNote, duration_s: float, outcome: str
    ) -> None:
        operator_enabled = self.usage_log is not None
        if note.forgotten or not analytics_allowed(operator_enabled, note.opt_out, visitor.headers):
            return
        assert self.usage_log is not None
        self.usage_log.record(
            UsageEvent(
                endpoint=endpoint,
                params=note.params if outcome in ("ok", "flagged") else {},
                duration_s=duration_s,
                outcome=outcome,
                user_agent=visitor.user_agent,
                client_ip=visitor.client_ip,
                pseudonym=visitor.pseudonym,
                prompt=note.prompt if outcome == "ok" else None,
            )
        )


Request = TypeVar("Request", bound=ToolRequest)


def images_counted(request: ToolRequest) -> int:
    """What a request counts against the rate limit: its images (one for an edit or a prompt
    enhancement; one for a number of images the checks will refuse)."""
    images = getattr(request, "num_images", 1)
    if isinstance(images, int) and 1 <= images <= presets.MAX_IMAGES_PER_RUN:
        return images
    return 1


def _end_if_stopped(control: JobControl) -> None:
    """A run stopped after its GPU work ended (a cancel that came during the last step) keeps
    nothing and is logged as cancelled (or as ended by the shutdown)."""
    reason = control.stop_reason()
    if reason is StopReason.SHUTTING_DOWN:
        raise ShuttingDown()
    if reason is not None:
        raise Cancelled()


# Errors whose message is written for the visitor; anything else is logged and summarised.
VISITOR_ERRORS = (InputError, ImageInputError, EngineError, RateLimited, ContentFlagged)
OUTCOMES: tuple[tuple[type[Exception], str], ...] = (
    (Cancelled, "cancelled"),
    (ContentFlagged, "flagged"),
    (RateLimited, "error:rate_limited"),
    (InputError, "error:input"),
    (AdapterRefused, "error:input"),
    (ImageInputError, "error:input"),
    (OutOfGpuMemory, "error:out_of_memory"),
    (TimedOut, "error:timeout"),
    (EngineUnavailable, "error:unavailable"),
    (ShuttingDown, "error:shutting_down"),
)


def outcome_of(error: Exception) -> str:
    """The usage log's word for how a request failed (never its content)."""
    for kind, outcome in OUTCOMES:
        if isinstance(error, kind):
            return outcome
    return "error:internal"
