"""The whole Space: privacy notice, the two tabs, the visitor's images, privacy and your data,
and the endpoints for scripts."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import gradio as gr

from zimage.page.adapters import preview_files
from zimage.page.api import GPU_QUEUE, ScriptEndpoints
from zimage.page.edit import SAMPLES, edit_tab
from zimage.page.errors import readable_errors
from zimage.page.handlers import PageHandlers
from zimage.page.header import page_header
from zimage.page.history import history_panel
from zimage.page.language import CHOOSE_LANGUAGE_JS, CURRENT_LANGUAGE_JS, t
from zimage.page.privacy import privacy_banner, privacy_tab
from zimage.page.running import RunningRequests
from zimage.page.text_to_image import text_to_image_tab
from zimage.page.visitors import browser_defaults
from zimage.privacy.policy import BrowserKeys
from zimage.service.service import ZImageService
from zimage.settings import Settings

# Events that never touch the GPU: no queue slot, not in the API.
LIGHT = {"concurrency_limit": None, "api_visibility": "private"}
# Copies the clicked checkbox's value to its twin in the browser, at once: a request sent the
# next moment must carry the visitor's latest choice (see PageHandlers.generate's `opt_out`).
MIRROR = "(value) => value"


def undo_enhance(original: str, current: str) -> str:
    """The text from before the last enhancement (the current one if none was enhanced)."""
    return original or current


def stop_runs(running: RunningRequests, events: Iterable[Any]) -> Callable[[gr.Request], None]:
    """A Stop button's handler: ends this page's runs of `events` (Gradio dependencies), running
    or queued. Not Gradio's `cancels=`: see zimage/page/running.py."""
    functions = frozenset(event["id"] for event in events)

    def stop(request: gr.Request) -> None:
        running.stop(request.session_hash or "", functions)

    return stop


def build_demo(
    service: ZImageService,
    settings: Settings,
    keys: BrowserKeys,
    running: RunningRequests,
    gpu_slots: int = 1,
) -> gr.Blocks:
    handlers = PageHandlers(service, settings, running, keys)
    # Served from the repository, so the temp-folder sweeper never deletes them; the sample
    # images only, never the rest of the folder (the script that made them).
    gr.set_static_paths([*sorted(SAMPLES.glob("*.png")), *preview_files(service.adapters)])
    # No delete_cache: Housekeeping deletes temp files on its timer and at shutdown. Gradio's
    # own clean-up iterates sets that worker threads add to ("Set changed size during
    # iteration" at shutdown) and forgets only the files it deleted itself.
    with gr.Blocks(title="Z-Image Turbo", analytics_enabled=False) as demo:
        # BrowserState publishes its secret (/config, the page): give it a derived one.
        browser = gr.BrowserState(
            browser_defaults(), storage_key="zimage-space", secret=keys.browser_state_secret
        )
        banner = privacy_banner(handlers.banner_text(policy_updated=False))
        language = page_header()
        with gr.Tabs() as tabs:
            enhancer_available = service.engine_facts.can_enhance
            with gr.Tab(t("tab.generate"), id="generate"):
                text_tab = text_to_image_tab(enhancer_available, service.adapters)
            with gr.Tab(t("tab.edit"), id="edit"):
                edit = edit_tab(enhancer_available, service.adapters)
            with gr.Tab(t("tab.privacy"), id="privacy"):
                data = privacy_tab()
        history = history_panel()
        ScriptEndpoints(service, settings, running, gpu_slots).build()

        # -- privacy ------------------------------------------------------------------------
        demo.load(
            handlers.on_page_load,
            inputs=browser,
            outputs=[browser, banner.accordion, banner.text, banner.opt_out, data.opt_out],
            api_name="on_page_load",
            **LIGHT,
        )
        banner.acknowledge.click(
            handlers.acknowledge_policy,
            inputs=browser,
            outputs=[browser, banner.accordion, banner.text],
            **LIGHT,
        )
        banner.to_your_data.click(lambda: gr.Tabs(selected="privacy"), outputs=tabs, **LIGHT)
        for toggle, twin in ((banner.opt_out, data.opt_out), (data.opt_out, banner.opt_out)):
            toggle.input(None, inputs=toggle, outputs=twin, js=MIRROR, **LIGHT)
            toggle.input(handlers.set_opt_out, inputs=[toggle, browser], outputs=browser, **LIGHT)
        data.show.click(
            handlers.show_my_data,
            inputs=browser,
            outputs=[data.shown, data.download],
            api_name="show_my_data",
            **LIGHT,
        )
        data.delete.click(lambda: gr.Row(visible=True), outputs=data.confirm_row, **LIGHT)
        data.cancel.click(lambda: gr.Row(visible=False), outputs=data.confirm_row, **LIGHT)
        data.confirm.click(
            handlers.delete_my_data,
            inputs=browser,
            outputs=[data.shown, data.status, browser],
            api_name="delete_my_data",
            **LIGHT,
        ).then(
            lambda: (gr.Row(visible=False), gr.DownloadButton(visible=False)),
            outputs=[data.confirm_row, data.download],
            **LIGHT,
        )

        # -- history ------------------------------------------------------------------------
        history_outputs = [history.gallery, history.keys]
        history.timer.tick(
            handlers.history,
            inputs=browser,
            outputs=history_outputs,
            show_progress="hidden",
            **LIGHT,
        )
        history.delete.click(
            handlers.delete_my_images, inputs=browser, outputs=history_outputs, **LIGHT
        )

        # -- language: the selector shows the page's; a pick loads the page again in it ------
        demo.load(None, js=CURRENT_LANGUAGE_JS, outputs=language, **LIGHT)
        language.input(None, inputs=language, js=CHOOSE_LANGUAGE_JS, **LIGHT)

        # -- the GPU work ---------------------------------------------------------------------
        gpu = {
            "concurrency_id": GPU_QUEUE,
            "concurrency_limit": gpu_slots,
            "api_visibility": "private",
        }
        generating = gr.on(
            [text_tab.run.click, text_tab.prompt.submit],
            readable_errors(handlers.generating(text_tab.form)),
            inputs=[*text_tab.form.inputs, text_tab.enhance.before_run, browser, banner.opt_out],
            outputs=[
                text_tab.images,
                text_tab.seed_used,
                text_tab.prompt,
                text_tab.enhance.original,
            ],
            api_name="generate_in_browser",
            **gpu,
        )
        generating.then(handlers.history, inputs=browser, outputs=history_outputs, **LIGHT)
        editing = gr.on(
            [edit.run.click, edit.instruction.submit],
            readable_errors(handlers.editing(edit.form)),
            inputs=[
                edit.editor,
                *edit.form.inputs,
                edit.enhance.before_run,
                browser,
                banner.opt_out,
            ],
            outputs=[
                edit.before_after,
                edit.seed_used,
                edit.method_used,
                edit.instruction,
                edit.enhance.original,
            ],
            api_name="edit_in_browser",
            **gpu,
        )
        editing.then(handlers.history, inputs=browser, outputs=history_outputs, **LIGHT)
        for box, controls, run, stop in (
            (text_tab.prompt, text_tab.enhance, generating, text_tab.stop),
            (edit.instruction, edit.enhance, editing, edit.stop),
        ):
            enhancing = controls.enhance.click(
                readable_errors(handlers.enhance),
                inputs=[box, browser, banner.opt_out],
                outputs=[box, controls.original],
                api_name=False,
                **gpu,
            )
            controls.undo.click(undo_enhance, inputs=[controls.original, box], outputs=box, **LIGHT)
            stop.click(stop_runs(running, [run, enhancing]), **LIGHT)

        def reuse(
            keys: list[str], browser_value: dict, request: gr.Request, selection: gr.SelectData
        ) -> dict[Any, Any]:
            """Fill the tab that made a history image with its settings."""
            chosen = handlers.settings_of(keys, browser_value, request, selection)
            if chosen.get("method") == "text-to-image":
                return {tabs: gr.Tabs(selected="generate"), **text_tab.form.restored(chosen)}
            return {tabs: gr.Tabs(selected="edit"), **edit.form.restored(chosen)}

        reuse_outputs = [tabs, *text_tab.form.inputs, *edit.form.inputs]
        history.gallery.select(
            reuse, inputs=[history.keys, browser], outputs=reuse_outputs, **LIGHT
        )
    return demo
