"""The Gradio layout: the only module of the Space that imports gradio.

Visitors use the tabs; scripts call the named endpoints `/generate` and `/edit`, whose
parameters are exactly those documented in README.md. Core errors become `gr.Error` here.
A visitor's choices (analytics opt-out, the policy version they have read) and their random
pseudonym live in their own browser (`gr.BrowserState`); where the browser refuses storage
(some cross-site iframes) they last for the page.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.processing_utils import save_bytes_to_cache
from gradio.utils import get_upload_folder

from zimage import presets
from zimage.admission import RateLimited
from zimage.engine import EngineError
from zimage.images import ImageInputError
from zimage.moderation import ContentFlagged
from zimage.privacy import (
    POLICY_VERSION,
    banner_markdown,
    banner_needs_showing,
    new_pseudonym,
)
from zimage.service import ImageOutcome, Visitor, ZImageService
from zimage.settings import Settings
from zimage.validation import InputError

logger = logging.getLogger(__name__)

GPU_QUEUE = "gpu"
# Errors whose message is written for the visitor; anything else is logged and summarised.
VISITOR_ERRORS = (InputError, ImageInputError, EngineError, RateLimited, ContentFlagged)
ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "examples"
POLICY_FILE = ROOT / "PRIVACY.md"
HISTORY_REFRESH_S = 5.0

EXAMPLE_PROMPTS = [
    "A lighthouse on a basalt cliff at dusk, warm window light, long exposure sea",
    "Close-up of a ceramic teapot with a blue glaze, soft studio light, shallow depth of field",
    "A bustling night market in the rain, paper lanterns, reflections on wet stone, cinematic",
]
EXAMPLE_EDITS = [
    ("house.png", "Turn the scene into a snowy winter evening"),
    ("still_life.png", "Make it a watercolour painting"),
]

SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"]
SYSTEM_MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]

# Some browsers refuse storage to cross-site frames (an embedded Space); Gradio's BrowserState
# then fails to start. This keeps the visitor's choices in page memory instead, as PRIVACY.md
# promises ("they last only while the page is open").
STORAGE_FALLBACK_HEAD = """<script>
(() => {
  try { window.localStorage.getItem("zimage-space"); return; } catch (refused) {}
  const memory = new Map();
  const store = {
    getItem: (key) => (memory.has(String(key)) ? memory.get(String(key)) : null),
    setItem: (key, value) => { memory.set(String(key), String(value)); },
    removeItem: (key) => { memory.delete(String(key)); },
    clear: () => memory.clear(),
    key: (index) => [...memory.keys()][index] ?? null,
    get length() { return memory.size; },
  };
  Object.defineProperty(window, "localStorage", { configurable: true, get: () => store });
})();
</script>"""

CORRECTION_NOTE = (
    "Correction does not apply here: you never enter personal details, and each row only "
    "describes a request your browser made."
)


def system_font_theme() -> gr.themes.Base:
    """The default look without web fonts: nothing is fetched from a font host."""
    return gr.themes.Default(font=SYSTEM_FONTS, font_mono=SYSTEM_MONO_FONTS)


def readable_errors(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Turn core exceptions into messages for the visitor; never show a stack trace."""

    @functools.wraps(handler)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except VISITOR_ERRORS as error:
            raise gr.Error(str(error), print_exception=False) from None
        except gr.Error:
            raise
        except Exception:
            logger.exception("request failed")
            raise gr.Error(
                "Something went wrong while making the image. Please try again."
            ) from None

    return wrapped


def save_output(outcome: ImageOutcome, service: ZImageService) -> str:
    """Write the PNG where Gradio serves files from and tie the file to the cache entry.

    The file is named by its content, as Gradio names it, so Gradio serves it without a copy;
    it is deleted with the entry.
    """
    path = save_bytes_to_cache(outcome.png, "zimage.png", cache_dir=get_upload_folder())
    service.cache.attach_files(outcome.cache_key, [path])
    return path


def progress_reporter(progress: gr.Progress) -> Callable[[int, int], None]:
    def report(step: int, total: int) -> None:
        progress((step, total), desc="Denoising")

    return report


def browser_defaults() -> dict[str, Any]:
    return {"pseudonym": "", "opt_out": False, "policy_seen": None}


def lifetime_in_words(seconds: int) -> str:
    if seconds % 60 == 0:
        minutes = seconds // 60
        return f"{minutes} minute" + ("" if minutes == 1 else "s")
    return f"{seconds} seconds"


def engine_banner(service: ZImageService) -> str:
    engine = service.engine
    if engine.kind == "unavailable":
        return f"**Not available:** {engine.description}"
    if engine.is_preview:
        return f"**{engine.description}**"
    return f"Running {engine.description}."


class Handlers:
    """The functions behind the buttons and the script endpoints."""

    def __init__(self, service: ZImageService, settings: Settings) -> None:
        self.service = service
        self.settings = settings

    # -- who is asking ------------------------------------------------------------------------

    def visitor(self, request: gr.Request | None, browser: dict | None = None) -> Visitor:
        """The browser's pseudonym and choices, or for a script its session."""
        headers = dict(request.headers) if request is not None else {}
        client_ip = request.client.host if request is not None and request.client else ""
        forwarded = headers.get("x-forwarded-for", "")
        if self.settings.on_space and forwarded:
            client_ip = forwarded.split(",")[0].strip()
        session = getattr(request, "session_hash", None) or ""
        pseudonym = (browser or {}).get("pseudonym") or ""
        return Visitor(
            owner=pseudonym or f"session:{session}",
            pseudonym=pseudonym,
            analytics_opt_out=bool((browser or {}).get("opt_out")),
            headers=headers,
            client_ip=client_ip,
            user_agent=headers.get("user-agent", ""),
        )

    # -- scripts ------------------------------------------------------------------------------

    def generate(
        self,
        prompt: str,
        resolution: str,
        seed: float,
        randomize_seed: bool,
        steps: float,
        shift: float,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple[str, int]:
        """Make an image from a text prompt. Returns the PNG and the seed used."""
        return self.generate_for(
            prompt, resolution, seed, randomize_seed, steps, shift, self.visitor(request), progress
        )

    def edit(
        self,
        image: str | None,
        instruction: str,
        mask: str | None,
        strength: float,
        seed: float,
        randomize_seed: bool,
        steps: float,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple[str, int, str]:
        """Edit an image file with an instruction; a mask file (white = change) limits the edit.

        Returns the PNG, the seed used and the method that ran (img2img, inpaint or omni).
        """
        visitor = self.visitor(request)
        outcome = self.service.edit(
            image,
            instruction,
            mask,
            strength,
            seed,
            randomize_seed,
            steps,
            visitor,
            progress_reporter(progress),
        )
        self.service.cache.attach_files(outcome.cache_key, [p for p in (image, mask) if p])
        return save_output(outcome, self.service), outcome.seed, outcome.method

    # -- the page -----------------------------------------------------------------------------

    def generate_in_browser(
        self,
        prompt: str,
        resolution: str,
        seed: float,
        randomize_seed: bool,
        steps: float,
        shift: float,
        browser: dict,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple[str, int]:
        visitor = self.visitor(request, browser)
        return self.generate_for(
            prompt, resolution, seed, randomize_seed, steps, shift, visitor, progress
        )

    def generate_for(
        self,
        prompt: str,
        resolution: str,
        seed: float,
        randomize_seed: bool,
        steps: float,
        shift: float,
        visitor: Visitor,
        progress: gr.Progress,
    ) -> tuple[str, int]:
        outcome = self.service.generate(
            prompt,
            resolution,
            seed,
            randomize_seed,
            steps,
            shift,
            visitor,
            progress_reporter(progress),
        )
        return save_output(outcome, self.service), outcome.seed

    def edit_in_browser(
        self,
        editor: dict | None,
        instruction: str,
        strength: float,
        seed: float,
        randomize_seed: bool,
        steps: float,
        browser: dict,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple[tuple[str, str], int, str]:
        """The Edit tab: the editor's background is the image, its brush layers the mask."""
        editor = editor or {}
        background = editor.get("background")
        layers = editor.get("layers") or []
        outcome = self.service.edit(
            background,
            instruction,
            None,
            strength,
            seed,
            randomize_seed,
            steps,
            self.visitor(request, browser),
            progress_reporter(progress),
            mask_layers=layers,
        )
        uploads = [p for p in (background, editor.get("composite"), *layers) if p]
        self.service.cache.attach_files(outcome.cache_key, uploads)
        return (background, save_output(outcome, self.service)), outcome.seed, outcome.method

    # -- privacy ------------------------------------------------------------------------------

    def banner_text(self, policy_updated: bool) -> str:
        return banner_markdown(
            output_ttl_minutes=self.settings.output_ttl_s / 60,
            retention_days=self.settings.log_retention_days,
            analytics_enabled=self.service.usage_log is not None,
            policy_updated=policy_updated,
            log_prompts=self.settings.log_prompts,
        )

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

    def set_opt_out(self, opt_out: bool, browser: dict) -> tuple[dict, bool]:
        """The analytics toggle (shown in two places, kept in step)."""
        return {**browser_defaults(), **(browser or {}), "opt_out": bool(opt_out)}, bool(opt_out)

    def show_my_data(self, browser: dict, request: gr.Request) -> tuple[dict, Any]:
        visitor = self.visitor(request, browser)
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
        visitor = self.visitor(request, browser)
        rows, outputs = self.service.delete_everything_of(visitor)
        browser = {**browser_defaults(), **(browser or {}), "pseudonym": new_pseudonym()}
        message = f"Deleted {rows} usage rows and {outputs} images linked to this browser."
        return {"usage_rows": [], "images_in_memory": []}, message, browser

    # -- history ------------------------------------------------------------------------------

    def history(self, browser: dict, request: gr.Request) -> tuple[list, list[str]]:
        """This browser's images still in memory, newest first, with time left."""
        visitor = self.visitor(request, browser)
        items, keys = [], []
        for entry in self.service.outputs_of(visitor.owner):
            if not entry.files:
                continue
            left = int(self.service.cache.seconds_left(entry))
            caption = f"{entry.settings.get('method')} · seed {entry.seed} · deleted in {left // 60}:{left % 60:02d}"
            items.append((str(entry.files[-1]), caption))
            keys.append(entry.key)
        return items, keys

    def delete_my_images(self, browser: dict, request: gr.Request) -> tuple[list, list[str]]:
        self.service.cache.purge_owner(self.visitor(request, browser).owner)
        return [], []

    def reuse_settings(
        self, keys: list[str], browser: dict, request: gr.Request, selection: gr.SelectData
    ) -> dict[str, Any]:
        """The settings of a history image, as field values for the tab that made it."""
        entry = None
        if 0 <= selection.index < len(keys):
            entry = self.service.cache.get(
                keys[selection.index], self.visitor(request, browser).owner
            )
        if entry is None:
            raise gr.Error("That image has already been deleted.", print_exception=False)
        return entry.settings


@dataclass
class TextToImageTab:
    prompt: gr.Textbox
    resolution: gr.Dropdown
    seed: gr.Number
    randomize_seed: gr.Checkbox
    steps: gr.Slider
    shift: gr.Slider
    run: gr.Button
    image: gr.Image
    seed_used: gr.Number


@dataclass
class EditTab:
    editor: gr.ImageEditor
    instruction: gr.Textbox
    strength: gr.Slider
    seed: gr.Number
    randomize_seed: gr.Checkbox
    steps: gr.Slider
    run: gr.Button
    before_after: gr.ImageSlider
    seed_used: gr.Number
    method_used: gr.Textbox


def build_demo(service: ZImageService, settings: Settings, browser_secret: str) -> gr.Blocks:
    """The whole Space: privacy banner, the two tabs, history, privacy and your data."""
    handlers = Handlers(service, settings)
    ttl = settings.output_ttl_s
    # Served from the repository, so the temp-folder sweeper never deletes them.
    gr.set_static_paths([SAMPLES])
    # No delete_cache: Housekeeping deletes temp files on its timer and at shutdown. Gradio's
    # own clean-up iterates sets that worker threads add to ("Set changed size during
    # iteration" at shutdown) and forgets only the files it deleted itself.
    with gr.Blocks(title="Z-Image Turbo", analytics_enabled=False) as demo:
        browser = gr.BrowserState(
            browser_defaults(), storage_key="zimage-space", secret=browser_secret
        )
        with gr.Accordion("Privacy notice", open=True, elem_id="privacy-banner") as banner:
            banner_text = gr.Markdown(handlers.banner_text(policy_updated=False))
            with gr.Row():
                banner_opt_out = gr.Checkbox(label="Keep my requests out of the usage log")
                acknowledge = gr.Button("Got it", size="sm", scale=0)
                to_your_data = gr.Button("Full policy and your data", size="sm", scale=0)
        gr.Markdown("# Z-Image Turbo\nText-to-image and image editing with Z-Image Turbo.")
        gr.Markdown(engine_banner(service), elem_id="engine-status")
        with gr.Tabs() as tabs:
            with gr.Tab("Text to image", id="generate"):
                text_tab = text_to_image_tab()
            with gr.Tab("Edit", id="edit"):
                edit_tab_ = edit_tab(service)
            with gr.Tab("Privacy and your data", id="privacy"):
                data_opt_out = privacy_tab(handlers, browser)
        with gr.Accordion("Your images", open=True):
            gr.Markdown(
                f"Kept in this server's memory for {lifetime_in_words(ttl)}, then deleted. "
                "Only this browser sees them. Click one to reuse its settings."
            )
            gallery = gr.Gallery(
                label="Your images",
                columns=6,
                height=220,
                object_fit="contain",
                interactive=False,
                buttons=["download", "fullscreen"],
                elem_id="history",
            )
            history_keys = gr.State([])
            delete_images = gr.Button("Delete my images now", variant="stop", size="sm")
        script_endpoints(handlers)

        light = {"concurrency_limit": None, "api_visibility": "private"}
        demo.load(
            handlers.on_page_load,
            inputs=browser,
            outputs=[browser, banner, banner_text, banner_opt_out, data_opt_out],
            **light,
        )
        acknowledge.click(
            handlers.acknowledge_policy,
            inputs=browser,
            outputs=[browser, banner, banner_text],
            **light,
        )
        to_your_data.click(lambda: gr.Tabs(selected="privacy"), outputs=tabs, **light)
        banner_opt_out.input(
            handlers.set_opt_out,
            inputs=[banner_opt_out, browser],
            outputs=[browser, data_opt_out],
            **light,
        )
        data_opt_out.input(
            handlers.set_opt_out,
            inputs=[data_opt_out, browser],
            outputs=[browser, banner_opt_out],
            **light,
        )

        history_outputs = [gallery, history_keys]
        gr.Timer(HISTORY_REFRESH_S).tick(
            handlers.history,
            inputs=browser,
            outputs=history_outputs,
            show_progress="hidden",
            **light,
        )
        delete_images.click(
            handlers.delete_my_images, inputs=browser, outputs=history_outputs, **light
        )

        gpu = {"concurrency_id": GPU_QUEUE, "concurrency_limit": 1, "api_visibility": "private"}
        gr.on(
            [text_tab.run.click, text_tab.prompt.submit],
            readable_errors(handlers.generate_in_browser),
            inputs=[
                text_tab.prompt,
                text_tab.resolution,
                text_tab.seed,
                text_tab.randomize_seed,
                text_tab.steps,
                text_tab.shift,
                browser,
            ],
            outputs=[text_tab.image, text_tab.seed_used],
            api_name="generate_in_browser",
            **gpu,
        ).then(handlers.history, inputs=browser, outputs=history_outputs, **light)
        gr.on(
            [edit_tab_.run.click, edit_tab_.instruction.submit],
            readable_errors(handlers.edit_in_browser),
            inputs=[
                edit_tab_.editor,
                edit_tab_.instruction,
                edit_tab_.strength,
                edit_tab_.seed,
                edit_tab_.randomize_seed,
                edit_tab_.steps,
                browser,
            ],
            outputs=[edit_tab_.before_after, edit_tab_.seed_used, edit_tab_.method_used],
            api_name="edit_in_browser",
            **gpu,
        ).then(handlers.history, inputs=browser, outputs=history_outputs, **light)

        def reuse(
            keys: list[str], browser_value: dict, request: gr.Request, selection: gr.SelectData
        ):
            settings_of = handlers.reuse_settings(keys, browser_value, request, selection)
            if settings_of.get("method") == "text-to-image":
                return {
                    tabs: gr.Tabs(selected="generate"),
                    text_tab.prompt: settings_of["prompt"],
                    text_tab.resolution: settings_of["resolution"],
                    text_tab.seed: settings_of["seed"],
                    text_tab.randomize_seed: False,
                    text_tab.steps: settings_of["steps"],
                    text_tab.shift: settings_of["shift"],
                }
            return {
                tabs: gr.Tabs(selected="edit"),
                edit_tab_.instruction: settings_of["instruction"],
                edit_tab_.strength: settings_of["strength"],
                edit_tab_.seed: settings_of["seed"],
                edit_tab_.randomize_seed: False,
                edit_tab_.steps: settings_of["steps"],
            }

        gallery.select(
            reuse,
            inputs=[history_keys, browser],
            outputs=[
                tabs,
                text_tab.prompt,
                text_tab.resolution,
                text_tab.seed,
                text_tab.randomize_seed,
                text_tab.steps,
                text_tab.shift,
                edit_tab_.instruction,
                edit_tab_.strength,
                edit_tab_.seed,
                edit_tab_.randomize_seed,
                edit_tab_.steps,
            ],
            **light,
        )
    return demo


def text_to_image_tab() -> TextToImageTab:
    with gr.Row():
        with gr.Column(scale=1):
            prompt = gr.Textbox(
                label="Prompt",
                lines=3,
                max_length=presets.MAX_PROMPT_CHARS,
                placeholder="Describe the image you want",
            )
            with gr.Row():
                category = gr.Radio(
                    list(presets.RESOLUTION_PRESETS),
                    value=presets.DEFAULT_CATEGORY,
                    label="Size category",
                )
                resolution = gr.Dropdown(
                    presets.RESOLUTION_PRESETS[presets.DEFAULT_CATEGORY],
                    value=presets.DEFAULT_RESOLUTION,
                    label="Resolution (width x height)",
                    allow_custom_value=True,
                )
            seed, randomize_seed = seed_controls()
            with gr.Accordion("Advanced settings", open=False):
                steps = steps_slider()
                shift = gr.Slider(
                    presets.MIN_SHIFT,
                    presets.MAX_SHIFT,
                    value=presets.DEFAULT_SHIFT,
                    step=0.1,
                    label="Time shift",
                )
            run = gr.Button("Generate", variant="primary")
        with gr.Column(scale=1):
            image = gr.Image(
                label="Result",
                type="filepath",
                format="png",
                interactive=False,
                buttons=["download", "fullscreen"],
                # Names the clickable preview for screen readers (it is a button).
                alt_text="Generated image",
                elem_id="result",
            )
            seed_used = gr.Number(value=None, label="Seed used", precision=0, interactive=False)
    gr.Examples(examples=[[p] for p in EXAMPLE_PROMPTS], inputs=[prompt])
    category.change(
        lambda chosen: gr.Dropdown(
            choices=presets.RESOLUTION_PRESETS[chosen], value=presets.RESOLUTION_PRESETS[chosen][0]
        ),
        inputs=category,
        outputs=resolution,
        api_visibility="private",
        concurrency_limit=None,
    )
    return TextToImageTab(
        prompt, resolution, seed, randomize_seed, steps, shift, run, image, seed_used
    )


def edit_tab(service: ZImageService) -> EditTab:
    gr.Markdown(
        "Z-Image-Edit weights are not published, so edits run on the Turbo weights: "
        f"**{service.engine.edit_methods}**. Paint over the part to change, or leave the image "
        "unpainted to change all of it."
    )
    with gr.Row():
        with gr.Column(scale=1):
            editor = gr.ImageEditor(
                label="Image to edit (paint the area to change)",
                type="filepath",
                format="png",
                sources=["upload", "clipboard", "webcam"],
                brush=gr.Brush(colors=["#ffffff"], color_mode="fixed"),
                transforms=[],
                layers=False,
                elem_id="edit-image",
            )
            instruction = gr.Textbox(
                label="Instruction",
                lines=2,
                max_length=presets.MAX_PROMPT_CHARS,
                placeholder="Say what to change, e.g. 'make it a snowy evening'",
            )
            strength = gr.Slider(
                presets.MIN_STRENGTH,
                presets.MAX_STRENGTH,
                value=presets.DEFAULT_STRENGTH,
                step=0.05,
                label="Strength (how much may change)",
            )
            seed, randomize_seed = seed_controls()
            with gr.Accordion("Advanced settings", open=False):
                steps = steps_slider()
            run = gr.Button("Edit", variant="primary")
        with gr.Column(scale=1):
            before_after = gr.ImageSlider(
                label="Before / after",
                type="filepath",
                format="png",
                interactive=False,
                buttons=["download", "fullscreen"],
                elem_id="edit-result",
            )
            with gr.Row():
                seed_used = gr.Number(value=None, label="Seed used", precision=0, interactive=False)
                method_used = gr.Textbox(label="Method used", interactive=False)
    gr.Examples(
        examples=[[str(SAMPLES / name), text] for name, text in EXAMPLE_EDITS],
        inputs=[editor, instruction],
    )
    return EditTab(
        editor,
        instruction,
        strength,
        seed,
        randomize_seed,
        steps,
        run,
        before_after,
        seed_used,
        method_used,
    )


def privacy_tab(handlers: Handlers, browser: gr.BrowserState) -> gr.Checkbox:
    """The policy as this code keeps it, and "your data": see, download, delete, opt out."""
    gr.Markdown(POLICY_FILE.read_text(encoding="utf-8"), elem_id="privacy")
    gr.Markdown("## Your data")
    opt_out = gr.Checkbox(label="Keep my requests out of the usage log")
    gr.Markdown(CORRECTION_NOTE)
    with gr.Row():
        show = gr.Button("Show my data")
        download = gr.DownloadButton("Download my data (JSON)", visible=False)
        delete = gr.Button("Delete my data", variant="stop")
    with gr.Row(visible=False) as confirm_row:
        gr.Markdown(
            "Delete every usage row and image linked to this browser? This cannot be undone."
        )
        confirm = gr.Button("Yes, delete everything", variant="stop")
        cancel = gr.Button("Cancel")
    status = gr.Markdown()
    shown = gr.JSON(label="Data linked to this browser", elem_id="my-data")

    light = {"concurrency_limit": None, "api_visibility": "private"}
    show.click(handlers.show_my_data, inputs=browser, outputs=[shown, download], **light)
    delete.click(lambda: gr.Row(visible=True), outputs=confirm_row, **light)
    cancel.click(lambda: gr.Row(visible=False), outputs=confirm_row, **light)
    confirm.click(
        handlers.delete_my_data,
        inputs=browser,
        outputs=[shown, status, browser],
        **light,
    ).then(
        lambda: (gr.Row(visible=False), gr.DownloadButton(visible=False)),
        outputs=[confirm_row, download],
        **light,
    )
    return opt_out


def seed_controls() -> tuple[gr.Number, gr.Checkbox]:
    with gr.Row():
        seed = gr.Number(value=42, label="Seed", precision=0, minimum=0, maximum=presets.MAX_SEED)
        randomize_seed = gr.Checkbox(value=True, label="Random seed")
    return seed, randomize_seed


def steps_slider() -> gr.Slider:
    return gr.Slider(
        presets.MIN_STEPS, presets.MAX_STEPS, value=presets.DEFAULT_STEPS, step=1, label="Steps"
    )


def script_endpoints(handlers: Handlers) -> None:
    """`/generate` and `/edit` with plain parameters: files in, our own range checks."""
    with gr.Group(visible=False):
        prompt = gr.Textbox(label="prompt")
        resolution = gr.Textbox(label="resolution", value=presets.DEFAULT_RESOLUTION)
        # No `precision`: Gradio would round 2.5 to 2 before our check could refuse it.
        seed = gr.Number(label="seed", value=0)
        randomize_seed = gr.Checkbox(label="randomize_seed", value=True)
        steps = gr.Number(label="steps", value=presets.DEFAULT_STEPS)
        shift = gr.Number(label="shift", value=presets.DEFAULT_SHIFT)
        image_in = gr.File(label="image", type="filepath")
        instruction = gr.Textbox(label="instruction")
        mask = gr.File(label="mask", type="filepath")
        strength = gr.Number(label="strength", value=presets.DEFAULT_STRENGTH)
        image_out = gr.Image(label="image", type="filepath", format="png", buttons=["download"])
        seed_used = gr.Number(label="seed_used", precision=0)
        method = gr.Textbox(label="method")
        generate_trigger = gr.Button("generate")
        edit_trigger = gr.Button("edit")
    generate_trigger.click(
        readable_errors(handlers.generate),
        inputs=[prompt, resolution, seed, randomize_seed, steps, shift],
        outputs=[image_out, seed_used],
        api_name="generate",
        concurrency_id=GPU_QUEUE,
        concurrency_limit=1,
    )
    edit_trigger.click(
        readable_errors(handlers.edit),
        inputs=[image_in, instruction, mask, strength, seed, randomize_seed, steps],
        outputs=[image_out, seed_used, method],
        api_name="edit",
        concurrency_id=GPU_QUEUE,
        concurrency_limit=1,
    )
