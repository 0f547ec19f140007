"""The functions behind the page's buttons: the tabs, the history and the visitor's data."""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.processing_utils import save_bytes_to_cache
from gradio.utils import get_upload_folder

from zimage.privacy import POLICY_VERSION, banner_needs_showing, new_pseudonym
from zimage.service import Visitor, ZImageService
from zimage.settings import Settings
from zimage.translations import method_name, words
from zimage.ui.language import language_of, t
from zimage.ui.outputs import (
    attach_inputs,
    gallery_of,
    progress_reporter,
    save_output,
    seed_caption,
)
from zimage.ui.running import RunningRequests
from zimage.ui.visitors import browser_defaults, visitor_of


class PageHandlers:
    def __init__(
        self, service: ZImageService, settings: Settings, running: RunningRequests
    ) -> None:
        self.service = service
        self.settings = settings
        self.running = running

    def _visitor(
        self, request: gr.Request | None, browser: dict | None, opt_out: bool | None = None
    ) -> Visitor:
        return visitor_of(request, self.settings, browser, opt_out)

    # -- the two tabs -------------------------------------------------------------------------

    def generate(
        self,
        prompt: str,
        resolution: str,
        seed: float,
        randomize_seed: bool,
        steps: float,
        shift: float,
        num_images: float,
        browser: dict,
        opt_out: bool,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple[list, int]:
        """Text to image: the images with their seeds, and the first seed."""
        with self.running.control() as control:
            outcomes = self.service.generate(
                prompt,
                resolution,
                seed,
                randomize_seed,
                steps,
                shift,
                self._visitor(request, browser, opt_out),
                progress_reporter(progress),
                control,
                num_images,
            )
        return gallery_of(outcomes, self.service, seed_caption), outcomes[0].seed

    def edit(
        self,
        editor: dict | None,
        instruction: str,
        strength: float,
        seed: float,
        randomize_seed: bool,
        steps: float,
        browser: dict,
        opt_out: bool,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple[tuple[str, str], int, str]:
        """The Edit tab: the editor's background is the image, its brush layers the mask."""
        editor = editor or {}
        background = editor.get("background")
        layers = editor.get("layers") or []
        with self.running.control() as control:
            outcome = self.service.edit(
                background,
                instruction,
                None,
                strength,
                seed,
                randomize_seed,
                steps,
                self._visitor(request, browser, opt_out),
                progress_reporter(progress),
                mask_layers=layers,
                control=control,
            )
        result = save_output(outcome, self.service)
        attach_inputs(self.service, outcome, [background, editor.get("composite"), *layers])
        return (background, result), outcome.seed, outcome.method

    # -- privacy ------------------------------------------------------------------------------

    def banner_text(self, policy_updated: bool) -> str:
        """The notice in the visitor's language: its key (zimage/ui/language.py), then the
        policy version read now."""
        key = "privacy.banner_updated" if policy_updated else "privacy.banner"
        return f"{t(key)}{POLICY_VERSION}"

    def on_page_load(self, browser: dict | None) -> tuple[dict, Any, str, bool, bool]:
        """Give a new browser its pseudonym; show the banner until this policy version is read."""
        browser = {**browser_defaults(), **(browser or {})}
        if not browser["pseudonym"]:
            browser["pseudonym"] = new_pseudonym()
        seen = browser["policy_seen"]
        show = banner_needs_showing(seen)
        text = self.banner_text(policy_updated=show and seen is not None)
        return browser, gr.Accordion(open=show), text, browser["opt_out"], browser["opt_out"]

    def acknowledge_policy(self, browser: dict) -> tuple[dict, Any, str]:
        browser = {**browser_defaults(), **(browser or {}), "policy_seen": POLICY_VERSION}
        return browser, gr.Accordion(open=False), self.banner_text(policy_updated=False)

    def set_opt_out(self, opt_out: bool, browser: dict) -> dict:
        """Remember the analytics toggle in the browser."""
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
                    "deleted_in_s": round(self.service.cache.seconds_left(entry)),
                }
                for entry in outputs
            ],
        }
        export = self.service.usage_export_of(visitor.pseudonym)
        path = save_bytes_to_cache(export.encode(), "my-usage-data.json", get_upload_folder())
        return shown, gr.DownloadButton(value=path, visible=True)

    def delete_my_data(self, browser: dict, request: gr.Request) -> tuple[dict, str, dict]:
        """Delete rows and images of this browser now, then give it a fresh pseudonym."""
        visitor = self._visitor(request, browser)
        rows, outputs = self.service.delete_everything_of(visitor)
        browser = {**browser_defaults(), **(browser or {}), "pseudonym": new_pseudonym()}
        message = words("message.deleted", language_of(request), rows=rows, images=outputs)
        return {"usage_rows": [], "images_in_memory": []}, message, browser

    # -- history ------------------------------------------------------------------------------

    def history(self, browser: dict, request: gr.Request) -> tuple[list, list[str]]:
        """This browser's images still in memory, newest first, with time left."""
        visitor = self._visitor(request, browser)
        language = language_of(request)
        items, keys = [], []
        for entry in self.service.outputs_of(visitor.owner):
            if not entry.files:
                continue
            left = int(self.service.cache.seconds_left(entry))
            caption = words(
                "history.caption",
                language,
                method=method_name(str(entry.settings.get("method")), language),
                seed=entry.seed,
                left=f"{left // 60}:{left % 60:02d}",
            )
            items.append((str(entry.files[0]), caption))  # the output is attached first
            keys.append(entry.key)
        return items, keys

    def delete_my_images(self, browser: dict, request: gr.Request) -> tuple[list, list[str]]:
        self.service.cache.purge_owner(self._visitor(request, browser).owner)
        return [], []

    def settings_of(
        self, keys: list[str], browser: dict, request: gr.Request, selection: gr.SelectData
    ) -> dict[str, Any]:
        """The settings of a history image, as field values for the tab that made it."""
        entry = None
        if 0 <= selection.index < len(keys):
            entry = self.service.cache.get(
                keys[selection.index], self._visitor(request, browser).owner
            )
        if entry is None:
            message = words("message.image_gone", language_of(request))
            raise gr.Error(message, print_exception=False)
        return entry.settings
