"""The request path: validate -> engine -> cache -> response, and the usage log told at the end.

Plain Python, shared by the UI and the API. Analytics hears about a request only when consent
allows (operator setting, the visitor's toggle, Global Privacy Control / Do Not Track).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PIL import Image

from zimage import presets
from zimage.engine.engine import Engine
from zimage.engine.errors import (
    Cancelled,
    EngineError,
    EngineUnavailable,
    OutOfGpuMemory,
    ShuttingDown,
    TimedOut,
)
from zimage.engine.jobs import JobControl, PreviewCallback, ProgressCallback, TextCallback
from zimage.engine.loading import UnavailableEngine
from zimage.guards.rate_limit import RateLimited, RateLimiter
from zimage.privacy.output_cache import CacheEntry, OutputCache
from zimage.privacy.policy import analytics_allowed
from zimage.privacy.usage_log import UsageEvent, UsageLog
from zimage.service.images import (
    ImageInputError,
    ImageLimits,
    Source,
    encode_png,
    load_input_image,
    load_mask,
    painted_mask,
)
from zimage.service.moderation import ContentFlagged, Moderation
from zimage.tools.checks import (
    InputError,
    check_integer,
    check_number,
    check_prompt,
    choose_seed,
    parse_resolution,
)
from zimage.tools.requests import EditRequest, EnhanceRequest, GenerateRequest, Timings

if TYPE_CHECKING:
    from zimage.replicas.link import ReplicaLink


@dataclass(frozen=True)
class Visitor:
    """Who is asking, as far as the policy lets the server know.

    `owner` decides who may see the outputs: the browser's pseudonym, or the session of a
    script. `pseudonym` links usage rows to a browser for "your data"; scripts have none.
    """

    owner: str
    pseudonym: str = ""
    analytics_opt_out: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)
    client_ip: str = ""
    user_agent: str = ""


@dataclass(frozen=True)
class ImageOutcome:
    png: bytes
    seed: int
    method: str
    width: int
    height: int
    timings: Timings
    cache_key: str


@dataclass
class _UsageNote:
    """Filled in while a request runs; written to the usage log when it ends."""

    params: dict[str, Any] = field(default_factory=dict)
    prompt: str | None = None


class ZImageService:
    """What a visitor or script can ask of the Space."""

    def __init__(
        self,
        engine: Engine | UnavailableEngine,
        image_limits: ImageLimits,
        cache: OutputCache,
        usage_log: UsageLog | None = None,
        moderation: Moderation | None = None,
        rate_limiter: RateLimiter | None = None,
        replicas: ReplicaLink | None = None,
    ) -> None:
        self.engine = engine
        self.image_limits = image_limits
        self.cache = cache
        self.usage_log = usage_log
        self.moderation = moderation or Moderation()
        self.rate_limiter = rate_limiter or RateLimiter(0)
        self.replicas = replicas  # other replicas sharing the usage database, if any
        self._shutting_down = False
        self._in_flight = 0
        self._idle = threading.Condition()

    def generate(
        self,
        prompt: object,
        resolution: str,
        seed: object,
        randomize_seed: bool,
        steps: object,
        shift: object,
        visitor: Visitor,
        progress: ProgressCallback | None = None,
        control: JobControl | None = None,
        num_images: object = 1,
        on_preview: PreviewCallback | None = None,
    ) -> list[ImageOutcome]:
        """Text-to-image: `num_images` images with seeds s, s+1, ... in one GPU batch.

        Raises InputError for a bad parameter, EngineUnavailable without a model, Cancelled
        when the caller stops it.
        """
        with self._logged("generate", visitor) as note:
            self._admit(visitor)
            width, height = parse_resolution(resolution)
            count = check_integer(num_images, "Number of images", 1, presets.MAX_IMAGES_PER_RUN)
            request = GenerateRequest(
                prompt=self._checked_text(prompt, "prompt"),
                width=width,
                height=height,
                seed=choose_seed(seed, bool(randomize_seed), room=count - 1),
                steps=check_steps(steps),
                shift=check_number(shift, "Time shift", presets.MIN_SHIFT, presets.MAX_SHIFT),
                owner=visitor.owner,
                num_images=count,
            )
            note.params = {
                "resolution": f"{width}x{height}",
                "steps": request.steps,
                "shift": request.shift,
                "images": count,
            }
            note.prompt = request.prompt
            result = self.engine.text_to_image(request, progress, control, on_preview)
            for image in result.images:
                self.moderation.check_output(image)
            return [
                self._keep(
                    visitor,
                    image,
                    seed,
                    "text-to-image",
                    result.timings,
                    {"prompt": request.prompt, **note.params},
                )
                for image, seed in zip(result.images, result.seeds)
            ]

    def edit(
        self,
        image: Source | None,
        instruction: object,
        mask: Source | None,
        strength: object,
        seed: object,
        randomize_seed: bool,
        steps: object,
        visitor: Visitor,
        progress: ProgressCallback | None = None,
        mask_layers: Sequence[Source] = (),
        control: JobControl | None = None,
        on_preview: PreviewCallback | None = None,
    ) -> ImageOutcome:
        """Edit an image. `mask` (white = change) or painted `mask_layers` select inpainting.

        Raises InputError / ImageInputError for bad input, EngineUnavailable without a model.
        """
        with self._logged("edit", visitor) as note:
            self._admit(visitor)
            text = self._checked_text(instruction, "instruction")
            strength_value = check_number(
                strength, "Strength", presets.MIN_STRENGTH, presets.MAX_STRENGTH
            )
            steps_value = check_steps(steps)
            seed_value = choose_seed(seed, bool(randomize_seed))
            if image is None:
                raise InputError("Please add an image to edit.")
            picture = load_input_image(image, self.image_limits)
            if mask is not None:
                mask_image = load_mask(mask, picture.size, self.image_limits)
            else:
                mask_image = painted_mask(mask_layers, picture.size, self.image_limits)
            request = EditRequest(
                image=picture,
                instruction=text,
                seed=seed_value,
                mask=mask_image,
                strength=strength_value,
                steps=steps_value,
                owner=visitor.owner,
            )
            note.params = {
                "resolution": f"{picture.width}x{picture.height}",
                "steps": steps_value,
                "strength": strength_value,
            }
            note.prompt = text
            result = self.engine.edit(request, progress, control, on_preview)
            note.params["method"] = result.method
            self.moderation.check_output(result.image)
            return self._keep(
                visitor,
                result.image,
                result.seed,
                result.method,
                result.timings,
                {"instruction": text, **note.params},
            )

    def enhance_prompt(
        self,
        prompt: object,
        seed: object,
        visitor: Visitor,
        on_text: TextCallback | None = None,
        control: JobControl | None = None,
    ) -> str:
        """Rewrite a prompt into a richer one with the prompt enhancer, on this Space.

        `seed` -1 (or None) gives the most likely wording; another seed samples a variant. The
        result is a prompt like any other: it passes the same checks and content filter, and it
        is never logged unless prompts are.
        """
        with self._logged("enhance", visitor) as note:
            self._admit(visitor)
            original = self._checked_text(prompt, "prompt")
            chosen = (
                None
                if seed is None or seed == -1
                else check_integer(seed, "Seed", 0, presets.MAX_SEED)
            )
            note.params = {"sampled": chosen is not None}
            note.prompt = original
            enhanced = self.engine.enhance_prompt(
                EnhanceRequest(original, chosen, visitor.owner), on_text, control
            )
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

    def _checked_text(self, text: object, what: str) -> str:
        """Non-empty, within the character and token limits, and past the prompt filter."""
        checked = check_prompt(text, what=what)
        tokens = self.engine.prompt_tokens(checked)
        if tokens > presets.MAX_SEQUENCE_LENGTH:
            raise InputError(
                f"The {what} is {tokens} tokens long; the model reads at most "
                f"{presets.MAX_SEQUENCE_LENGTH}. Please shorten it."
            )
        self.moderation.check_prompt(checked)
        return checked

    def outputs_of(self, owner: str) -> list[CacheEntry]:
        """This visitor's images still in memory, newest first."""
        return self.cache.entries_for(owner) if owner else []

    def usage_rows_of(self, pseudonym: str) -> list[dict[str, Any]]:
        return self.usage_log.rows_for(pseudonym) if self.usage_log and pseudonym else []

    def usage_export_of(self, pseudonym: str) -> str:
        if self.usage_log is None:
            return '{"rows": []}'
        return self.usage_log.export_json(pseudonym)

    def delete_everything_of(self, visitor: Visitor) -> tuple[int, int]:
        """Delete the visitor's usage rows and cached outputs now, and have the other replicas
        drop what they hold of this browser; returns (rows, outputs)."""
        rows, outputs = self._forget(visitor.owner, visitor.pseudonym)
        if self.replicas is not None and visitor.pseudonym:
            self.replicas.announce_deletion(visitor.pseudonym)
        return rows, outputs

    def forget_browser_here(self, pseudonym: str) -> tuple[int, int]:
        """What a browser deleted on another replica leaves here: its usage rows (queued ones
        too), outputs and prompt embeddings, kept under its pseudonym (zimage/page/visitors.py)."""
        return self._forget(pseudonym, pseudonym)

    def _forget(self, owner: str, pseudonym: str) -> tuple[int, int]:
        rows = self.usage_log.delete_for(pseudonym) if self.usage_log else 0
        outputs = self.cache.purge_owner(owner) if owner else 0
        self.engine.forget_prompts_of(owner)
        return rows, outputs

    def _keep(
        self,
        visitor: Visitor,
        image: Image.Image,
        seed: int,
        method: str,
        timings: Timings,
        settings: dict[str, Any],
    ) -> ImageOutcome:
        png = encode_png(image)
        entry = self.cache.put(
            visitor.owner, png, seed, {"method": method, "seed": seed, **settings}
        )
        return ImageOutcome(png, seed, method, image.width, image.height, timings, entry.key)

    @contextmanager
    def _logged(self, endpoint: str, visitor: Visitor) -> Iterator[_UsageNote]:
        note = _UsageNote()
        started = time.perf_counter()
        outcome = "ok"
        with self._idle:
            self._in_flight += 1
        try:
            yield note
        except Exception as error:
            outcome = outcome_of(error)
            raise
        finally:
            self._record(endpoint, visitor, note, time.perf_counter() - started, outcome)
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _record(
        self, endpoint: str, visitor: Visitor, note: _UsageNote, duration_s: float, outcome: str
    ) -> None:
        operator_enabled = self.usage_log is not None
        if not analytics_allowed(operator_enabled, visitor.analytics_opt_out, visitor.headers):
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


def check_steps(steps: object) -> int:
    return check_integer(steps, "Steps", presets.MIN_STEPS, presets.MAX_STEPS)
