"""The request path: check -> engine -> cache -> response, and the usage log told at the end.

Plain Python, the one door of the page, the script endpoints and the MCP server to the engine
and to the outputs kept. Each tool is asked for with its request object (zimage/tools), the
visitor and the run's hooks. Analytics hears about a request only when consent allows (operator
setting, the visitor's toggle, Global Privacy Control / Do Not Track) when its row is written:
a browser that opts out, or deletes its data, while its request runs gets no row for it, and a
deletion also stops the request and keeps nothing of it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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
from zimage.tools.text_to_image import TextToImage

if TYPE_CHECKING:
    from zimage.replicas.link import ReplicaLink

logger = logging.getLogger(__name__)


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
    prompt enhancer is there."""

    kind: str
    description: str
    is_preview: bool
    edit_methods: str
    edits_with_omni: bool
    can_enhance: bool


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
            self._admit(visitor)
            request = request.checked()
            asked_prompt = request.prompt
            request = self._with_adapters(request, hooks)
            self._check_text(request.prompt, "prompt", cut=request.cut_long_prompt)
            seed = choose_seed(request.seed, request.randomize_seed, room=request.num_images - 1)
            request = dataclasses.replace(request, seed=seed, owner=visitor.owner)
            note.params = self.adapters.usage_settings(request)
            note.prompt = asked_prompt
            if not request.live_preview:
                hooks = dataclasses.replace(hooks, on_preview=None)
            result = self.engine.text_to_image(request, hooks)
            for image in result.images:
                self.moderation.check_output(image)
            settings = {"prompt": asked_prompt, **request.logged_settings()}
            return [
                self._keep(visitor, note, image, seed, "text-to-image", result.timings, settings)
                for image, seed in zip(result.images, result.seeds)
            ]

    def edit(
        self, request: Edit, visitor: Visitor, hooks: RunHooks | None = None
    ) -> ImageOutcome:
        """Edit an image. `mask` (white = change) or painted `mask_layers` select inpainting.

        Raises InputError / ImageInputError for bad input, EngineUnavailable without a model.
        """
        hooks = hooks or RunHooks()
        with self._logged("edit", visitor, hooks) as note:
            self._admit(visitor)
            request = request.checked()
            asked_instruction = request.instruction
            request = self._with_adapters(request, hooks)
            self._check_text(request.instruction, "instruction")
            seed = choose_seed(request.seed, request.randomize_seed)
            if request.image is None:
                raise InputError("Please add an image to edit.")
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
                request, image=picture, mask=mask, mask_layers=(), seed=seed, owner=visitor.owner
            )
            resolution = {"resolution": f"{picture.width}x{picture.height}"}
            note.params = {**resolution, **self.adapters.usage_settings(request)}
            note.prompt = asked_instruction
            result = self.engine.edit(request, hooks)
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
                    "instruction": asked_instruction,
                    **resolution,
                    **request.logged_settings(),
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
            self._admit(visitor)
            request = request.checked()
            self._check_text(request.prompt, "prompt")
            note.params = {"sampled": request.sampling_seed is not None}
            note.prompt = request.prompt
            enhanced = self.engine.enhance_prompt(request, hooks)
            self.moderation.check_prompt(enhanced)
            return enhanced

    def shut_down(self, grace_s: float) -> bool:
        """Refuse new requests, stop the running one at its next step, and wait up to `grace_s`
        for every request to be answered; True when none is left."""
        self._shutting_down = True
        self.engine.stop_everything()
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=grace_s)

    def _admit(self, visitor: Visitor) -> None:
        if self._shutting_down:
            raise ShuttingDown()
        self.rate_limiter.admit(visitor.client_ip)

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
        self.moderation.check_prompt(text)

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
    def _logged(self, endpoint: str, visitor: Visitor, hooks: RunHooks) -> Iterator[_UsageNote]:
        note = _UsageNote(hooks.control, visitor.analytics_opt_out)
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
