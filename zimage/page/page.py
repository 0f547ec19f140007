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
from zimage.page.gpu_queue import GpuQueue
from zimage.page.handlers import PageHandlers
from zimage.page.header import page_header
from zimage.page.history import SHOW_COUNTDOWN_JS, history_panel
from zimage.page.language import CHOOSE_LANGUAGE_JS, CURRENT_LANGUAGE_JS, t
from zimage.page.privacy import privacy_banner, privacy_tab
from zimage.page.run_status import CAN_STOP_JS, CANNOT_STOP_JS
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
# Undo, in the browser: the text from before the last enhancement (the current one if none was
# enhanced), and nothing left to undo. Undo is usable exactly while there is something to undo.
UNDO_ENHANCE_JS = "(original, current) => [original || current, '']"
CAN_UNDO_JS = "(original) => ({ __type__: 'update', interactive: Boolean(original) })"


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
    gpu_queue: GpuQueue,
    gpu_slots: int = 1,
) -> gr.Blocks:
    """The page and the script endpoints; every GPU event's joins are admitted by `gpu_queue`
    (install it on the Blocks' queue once `queue()` made it)."""
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
                text_tab = text_to_image_tab(
                    enhancer_available, service.adapters, service.engine_facts.models
                )
            with gr.Tab(t("tab.edit"), id="edit"):
                edit = edit_tab(enhancer_available, service.adapters)
            with gr.Tab(t("tab.privacy"), id="privacy"):
                data = privacy_tab()
        history = history_panel()
        ScriptEndpoints(service, settings, running, gpu_queue, gpu_slots).build()

        # -- privacy ------------------------------------------------------------------------
        page_loaded = demo.load(
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
        deleted_data = data.confirm.click(
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

        # -- history: asked for when it changes (zimage/page/history.py), never polled ----------
        history_outputs = [history.gallery, history.shown, history.refresh]
        quietly = {"show_progress": "hidden", **LIGHT}
        for changed in (page_loaded, deleted_data):
            changed.then(handlers.history, inputs=browser, outputs=history_outputs, **quietly)
        history.refresh.tick(handlers.history, inputs=browser, outputs=history_outputs, **quietly)
        history.delete.click(
            handlers.delete_my_images, inputs=browser, outputs=history_outputs, **LIGHT
        )
        history.shown.change(None, inputs=history.shown, js=SHOW_COUNTDOWN_JS, **LIGHT)

        # -- language: the selector shows the page's; a pick loads the page again in it ------
        demo.load(None, js=CURRENT_LANGUAGE_JS, outputs=language, **LIGHT)
        language.input(None, inputs=language, js=CHOOSE_LANGUAGE_JS, **LIGHT)

        # -- the GPU work ---------------------------------------------------------------------
        gpu = {
            "concurrency_id": GPU_QUEUE,
            "concurrency_limit": gpu_slots,
            "api_visibility": "private",
        }
        # Stop is usable from the moment a run or an enhancement is asked for (also while it
        # waits in the queue) until it ends: set in the browser, before the runs' own events
        # (the page runs a trigger's events in the order they were added).
        for triggers, stop in (
            (
                [text_tab.run.click, text_tab.prompt.submit, text_tab.enhance.enhance.click],
                text_tab.stop,
            ),
            ([edit.run.click, edit.instruction.submit, edit.enhance.enhance.click], edit.stop),
        ):
            gr.on(triggers, None, outputs=stop, js=CAN_STOP_JS, **LIGHT)
        generating = gr.on(
            [text_tab.run.click, text_tab.prompt.submit],
            readable_errors(handlers.generating(text_tab.form)),
            inputs=[*text_tab.form.inputs, text_tab.enhance.before_run, browser, banner.opt_out],
            outputs=[
                text_tab.images,
                text_tab.seed_used,
                text_tab.prompt,
                text_tab.enhance.original,
                text_tab.status,
            ],
            api_name="generate_in_browser",
            **gpu,
        )
        gpu_queue.expects(generating, handlers.generate_joins(text_tab.form))
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
                edit.status,
            ],
            api_name="edit_in_browser",
            **gpu,
        )
        gpu_queue.expects(editing, handlers.edit_joins(edit.form))
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
            gpu_queue.expects(enhancing, handlers.enhance_joins)
            controls.undo.click(
                None,
                inputs=[controls.original, box],
                outputs=[box, controls.original],
                js=UNDO_ENHANCE_JS,
                **LIGHT,
            )
            controls.original.change(
                None, inputs=controls.original, outputs=controls.undo, js=CAN_UNDO_JS, **LIGHT
            )
            stop.click(stop_runs(running, [run, enhancing]), **LIGHT)
            for ended in (run, enhancing):
                ended.then(None, outputs=stop, js=CANNOT_STOP_JS, **LIGHT)

        def reuse(
            shown: Any, browser_value: dict, request: gr.Request, selection: gr.SelectData
        ) -> dict[Any, Any]:
            """Fill the tab that made a history image with its settings."""
            chosen = handlers.settings_of(shown, browser_value, request, selection)
            if chosen.get("method") == "text-to-image":
                return {tabs: gr.Tabs(selected="generate"), **text_tab.form.restored(chosen)}
            return {tabs: gr.Tabs(selected="edit"), **edit.form.restored(chosen)}

        reuse_outputs = [tabs, *text_tab.form.inputs, *edit.form.inputs]
        history.gallery.select(
            reuse, inputs=[history.shown, browser], outputs=reuse_outputs, **LIGHT
        )
    return demo
