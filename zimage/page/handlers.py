"""The functions behind the page's buttons: the tabs, the history and the visitor's data."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any, TypeVar

import gradio as gr

from zimage import presets
from zimage.engine.errors import Cancelled
from zimage.engine.jobs import JobControl, PreviewCallback, RunHooks, TextCallback
from zimage.page.controls import ToolForm
from zimage.page.gpu_queue import JoinCheck
from zimage.page.history import LEFT, countdown, refresh_after
from zimage.page.language import language_of, t
from zimage.page.outputs import (
    download_reporter,
    gallery_of,
    preview_frames,
    save_export,
    save_output,
    seed_caption,
)
from zimage.page.run_status import StepsReached
from zimage.page.running import RunningRequests, stream_while_running
from zimage.page.visitors import browser_defaults, visitor_of
from zimage.privacy.policy import POLICY_VERSION, BrowserKeys, banner_needs_showing
from zimage.service.service import ZImageService
from zimage.service.visitors import Visitor
from zimage.settings import Settings
from zimage.tools.edit import Edit
from zimage.tools.enhance import EnhancePrompt
from zimage.tools.parameters import ToolRequest
from zimage.tools.text_to_image import TextToImage
from zimage.translations import method_name, words

Outputs = TypeVar("Outputs")


def _enhanced_first(text: str, asked: ToolRequest, enhance_first: bool) -> list[ToolRequest]:
    """The requests of a run: an enhancement of `text` first when asked, then `asked`."""
    return [EnhancePrompt(prompt=text), asked] if enhance_first else [asked]


class PageHandlers:
    def __init__(
        self,
        service: ZImageService,
        settings: Settings,
        running: RunningRequests,
        keys: BrowserKeys,
    ) -> None:
        self.service = service
        self.settings = settings
        self.running = running
        self.keys = keys

    def _visitor(
        self, request: gr.Request | None, browser: dict | None, opt_out: bool | None = None
    ) -> Visitor:
        return visitor_of(request, self.settings, browser, opt_out, self.keys)

    # -- the two tabs -------------------------------------------------------------------------

    def generating(self, form: ToolForm) -> Callable[..., Iterator[tuple[Any, ...]]]:
        """The Generate button's handler for the tab's `form`."""

        def generate(
            request: gr.Request, progress: gr.Progress = gr.Progress(), *values: Any
        ) -> Iterator[tuple[Any, ...]]:
            """Text to image from the form's values, "enhance first", the browser state and the
            opt-out box; yields (images, seed used, prompt box, original prompt, status): the
            prompt being enhanced when asked, the picture forming at each step, then the images
            with their seeds; or, when stopped, no picture and where it stopped."""
            asked, enhance_first, visitor = self._generate_values(form, values, request)
            keep = gr.skip()
            steps = StepsReached(progress)
            yield keep, "", keep, keep, ""  # the last run's seed and message are not this one's
            with self.running.control() as control, preview_frames(self.service, visitor) as shown:
                try:
                    if enhance_first:
                        yield keep, keep, keep, asked.prompt, keep  # what Undo brings back
                        enhanced = yield from self._enhancing(
                            asked.prompt,
                            None,
                            visitor,
                            control,
                            lambda text: (keep, keep, text, keep, keep),
                        )
                        asked = dataclasses.replace(asked, prompt=enhanced)

                    work = previewed_run(
                        self.service.text_to_image, asked, visitor, control, steps, progress
                    )
                    outcomes = yield from stream_while_running(
                        control,
                        work,
                        lambda frames: (shown.gallery(frames), keep, keep, keep, keep),
                    )
                except Cancelled:
                    yield None, "", keep, keep, steps.stopped(language_of(request))
                    return
                images = gallery_of(outcomes, self.service, seed_caption)
                yield images, outcomes[0].seed, keep, keep, keep

        return generate

    def editing(self, form: ToolForm) -> Callable[..., Iterator[tuple[Any, ...]]]:
        """The Edit button's handler for the tab's `form`."""

        def edit(
            request: gr.Request, progress: gr.Progress = gr.Progress(), *values: Any
        ) -> Iterator[tuple[Any, ...]]:
            """The image editor's value (its background is the image, its brush layers the
            mask), the form's values, "enhance first", the browser state and the opt-out box.
            Yields (before/after, seed used, method, instruction box, original instruction,
            status); the after side shows the edit forming, then the result; when stopped,
            nothing, and where it stopped."""
            asked, editor, enhance_first, visitor = self._edit_values(form, values, request)
            background = asked.image
            layers = list(asked.mask_layers)
            keep = gr.skip()
            steps = StepsReached(progress)
            yield keep, "", "", keep, keep, ""  # the last edit's seed and method are not this one's
            with self.running.control() as control, preview_frames(self.service, visitor) as shown:
                try:
                    if enhance_first:
                        yield keep, keep, keep, keep, asked.instruction, keep
                        enhanced = yield from self._enhancing(
                            asked.instruction,
                            None,
                            visitor,
                            control,
                            lambda text: (keep, keep, keep, text, keep, keep),
                        )
                        asked = dataclasses.replace(asked, instruction=enhanced)

                    work = previewed_run(
                        self.service.edit, asked, visitor, control, steps, progress
                    )
                    outcome = yield from stream_while_running(
                        control,
                        work,
                        lambda frames: (
                            (background, shown.files(frames)[0]),
                            keep,
                            keep,
                            keep,
                            keep,
                            keep,
                        ),
                    )
                except Cancelled:
                    yield None, "", "", keep, keep, steps.stopped(language_of(request))
                    return
                result = save_output(outcome, self.service)
                self.service.keep_files(outcome, [background, editor.get("composite"), *layers])
                yield (background, result), outcome.seed, outcome.method, keep, keep, keep

        return edit

    def enhance(
        self, text: str, browser: dict, opt_out: bool, request: gr.Request
    ) -> Iterator[tuple[Any, Any]]:
        """The Enhance button: the rewrite streams into the box (a new variant each press);
        yields (box, original for Undo)."""
        visitor = self._visitor(request, browser, opt_out)
        with self.running.control() as control:
            yield gr.skip(), text
            variant = secrets.randbelow(presets.MAX_SEED + 1)
            enhanced = yield from self._enhancing(
                text, variant, visitor, control, lambda so_far: (so_far, gr.skip())
            )
        yield enhanced, gr.skip()

    # -- what each GPU event asks for, read again when it joins the queue (gpu_queue.py) ------

    def generate_joins(self, form: ToolForm) -> JoinCheck:
        def asks(values: list[Any], request: gr.Request) -> tuple[list[ToolRequest], Visitor]:
            asked, enhance_first, visitor = self._generate_values(form, values, request)
            return _enhanced_first(asked.prompt, asked, enhance_first), visitor

        return asks

    def edit_joins(self, form: ToolForm) -> JoinCheck:
        def asks(values: list[Any], request: gr.Request) -> tuple[list[ToolRequest], Visitor]:
            asked, _, enhance_first, visitor = self._edit_values(form, values, request)
            return _enhanced_first(asked.instruction, asked, enhance_first), visitor

        return asks

    def enhance_joins(self, values: list[Any], request: gr.Request) -> tuple[list, Visitor]:
        text, browser, opt_out = values
        return [EnhancePrompt(prompt=text)], self._visitor(request, browser, opt_out)

    def _generate_values(
        self, form: ToolForm, values: Sequence[Any], request: gr.Request
    ) -> tuple[TextToImage, bool, Visitor]:
        """The Generate button's values: the request, "enhance first", the visitor."""
        *given, enhance_first, browser, opt_out = values
        visitor = self._visitor(request, browser, opt_out)
        return form.request(given), bool(enhance_first), visitor

    def _edit_values(
        self, form: ToolForm, values: Sequence[Any], request: gr.Request
    ) -> tuple[Edit, dict, bool, Visitor]:
        """The Edit button's values: the request (the editor's background as its image, its
        brush layers as the mask), the editor's value, "enhance first", the visitor."""
        editor, *given, enhance_first, browser, opt_out = values
        editor = editor or {}
        asked = form.request(
            given, image=editor.get("background"), mask_layers=editor.get("layers") or []
        )
        return asked, editor, bool(enhance_first), self._visitor(request, browser, opt_out)

    def _enhancing(
        self,
        text: str,
        seed: int | None,
        visitor: Visitor,
        control: JobControl,
        as_outputs: Callable[[str], Outputs],
    ) -> Generator[Outputs, None, str]:
        """The prompt enhancer's rewrite of `text`, streamed as outputs; returns the result."""

        def work(on_text: TextCallback) -> str:
            asked = EnhancePrompt(prompt=text, seed=-1 if seed is None else seed)
            return self.service.enhance_prompt(asked, visitor, RunHooks(control, on_text=on_text))

        return (yield from stream_while_running(control, work, as_outputs))

    # -- privacy ------------------------------------------------------------------------------

    def banner_text(self, policy_updated: bool) -> str:
        """The notice in the visitor's language: its key (zimage/page/language.py), then the
        policy version read now."""
        key = "privacy.banner_updated" if policy_updated else "privacy.banner"
        return f"{t(key)}{POLICY_VERSION}"

    def on_page_load(self, browser: dict | None) -> tuple[dict, Any, str, bool, bool]:
        """Give a new browser (or one with a forged pseudonym) a signed pseudonym; show the
        banner until this policy version is read."""
        browser = {**browser_defaults(), **(browser or {})}
        if not self.keys.verified_id(browser["pseudonym"]):
            browser["pseudonym"] = self.keys.new_pseudonym()
        seen = browser["policy_seen"]
        show = banner_needs_showing(seen)
        text = self.banner_text(policy_updated=show and seen is not None)
        return browser, gr.Accordion(open=show), text, browser["opt_out"], browser["opt_out"]

    def acknowledge_policy(self, browser: dict) -> tuple[dict, Any, str]:
        browser = {**browser_defaults(), **(browser or {}), "policy_seen": POLICY_VERSION}
        return browser, gr.Accordion(open=False), self.banner_text(policy_updated=False)

    def set_opt_out(self, opt_out: bool, browser: dict, request: gr.Request) -> dict:
        """Remember the analytics toggle in the browser; it applies to the browser's requests
        running now too (each is logged only if it allows when it ends)."""
        self.service.set_opt_out(self._visitor(request, browser), bool(opt_out))
        return {**browser_defaults(), **(browser or {}), "opt_out": bool(opt_out)}

    def show_my_data(self, browser: dict, request: gr.Request) -> tuple[dict, Any]:
        visitor = self._visitor(request, browser)
        outputs = self.service.outputs_of(visitor.owner)
        shown = {
            "usage_rows": self.service.usage_rows_of(visitor.pseudonym),
            "images_in_memory": [
                {
                    "seed": entry.seed,
                    "method": entry.settings.get("method"),
                    "deleted_in_s": round(self.service.seconds_left(entry)),
                }
                for entry in outputs
            ],
        }
        export = self.service.usage_export_of(visitor.pseudonym)
        path = save_export(export, self.service, visitor)
        return shown, gr.DownloadButton(value=path, visible=True)

    def delete_my_data(self, browser: dict, request: gr.Request) -> tuple[dict, str, dict]:
        """Delete rows and images of this browser now, then give it a fresh pseudonym."""
        visitor = self._visitor(request, browser)
        rows, outputs = self.service.delete_everything_of(visitor)
        browser = {**browser_defaults(), **(browser or {}), "pseudonym": self.keys.new_pseudonym()}
        later = self.service.usage_deletion_waiting(visitor.pseudonym)
        key = "message.deleted_later" if later else "message.deleted"
        message = words(key, language_of(request), rows=rows, images=outputs)
        return {"usage_rows": [], "images_in_memory": []}, message, browser

    # -- history ------------------------------------------------------------------------------

    def history(self, browser: dict, request: gr.Request) -> tuple[list, list[dict], Any]:
        """This browser's images still in memory, newest first: the gallery's items, captioned
        with the time left; what the page keeps of each (zimage/page/history.py); and the
        refresh timer, set to tick when the first of them expires."""
        visitor = self._visitor(request, browser)
        language = language_of(request)
        items, shown = [], []
        for entry in self.service.outputs_of(visitor.owner):
            if not entry.files:
                continue
            left = self.service.seconds_left(entry)
            caption = words(
                "history.caption",
                language,
                method=method_name(str(entry.settings.get("method")), language),
                seed=entry.seed,
                left=LEFT,
            )
            items.append((str(entry.files[0]), caption.replace(LEFT, countdown(left))))
            shown.append({"key": entry.key, "left_s": round(left, 1), "caption": caption})
        return items, shown, refresh_after([item["left_s"] for item in shown])

    def delete_my_images(self, browser: dict, request: gr.Request) -> tuple[list, list, Any]:
        self.service.delete_outputs_of(self._visitor(request, browser).owner)
        return [], [], refresh_after([])

    def settings_of(
        self, shown: Any, browser: dict, request: gr.Request, selection: gr.SelectData
    ) -> dict[str, Any]:
        """The settings of a history image, as field values for the tab that made it. `shown`
        is what the page kept of its images (it comes from the browser: only a key of this
        visitor's own image finds one)."""
        picked = shown[selection.index] if isinstance(shown, list) else None
        key = picked.get("key") if isinstance(picked, dict) and selection.index >= 0 else None
        entry = None
        if isinstance(key, str):
            entry = self.service.output_of(key, self._visitor(request, browser).owner)
        if entry is None:
            message = words("message.image_gone", language_of(request))
            raise gr.Error(message, print_exception=False)
        return entry.settings


def previewed_run(
    run: Callable[[Any, Visitor, RunHooks], Any],
    asked: Any,
    visitor: Visitor,
    control: JobControl,
    steps: StepsReached,
    progress: gr.Progress,
) -> Callable[[PreviewCallback], Any]:
    """The service's `run` of `asked` for a button, given the preview callback it streams:
    its steps counted, an adapter's download shown."""

    def work(on_preview: PreviewCallback) -> Any:
        hooks = RunHooks(
            control, steps.report, on_preview=on_preview, fetching=download_reporter(progress)
        )
        return run(asked, visitor, hooks)

    return work
