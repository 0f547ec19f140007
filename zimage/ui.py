"""The Gradio layout: the only module of the Space that imports gradio.

Visitors use the tabs; scripts call the named endpoints `/generate` and `/edit`, whose
parameters are exactly those documented in README.md. Core errors become `gr.Error` here.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.processing_utils import save_bytes_to_cache
from gradio.utils import get_upload_folder

from zimage import presets
from zimage.engine import EngineUnavailable
from zimage.images import ImageInputError
from zimage.service import ImageOutcome, ZImageService
from zimage.validation import InputError

logger = logging.getLogger(__name__)

GPU_QUEUE = "gpu"
SAMPLES = Path(__file__).resolve().parent.parent / "examples"

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


def system_font_theme() -> gr.themes.Base:
    """The default look without web fonts: nothing is fetched from a font host."""
    return gr.themes.Default(font=SYSTEM_FONTS, font_mono=SYSTEM_MONO_FONTS)


def readable_errors(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Turn core exceptions into messages for the visitor; never show a stack trace."""

    @functools.wraps(handler)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except (InputError, ImageInputError, EngineUnavailable) as error:
            raise gr.Error(str(error), print_exception=False) from None
        except gr.Error:
            raise
        except Exception:
            logger.exception("request failed")
            raise gr.Error(
                "Something went wrong while making the image. Please try again."
            ) from None

    return wrapped


def save_output(outcome: ImageOutcome) -> str:
    """Write the PNG where Gradio serves files from, named by content so Gradio reuses it."""
    return save_bytes_to_cache(outcome.png, "zimage.png", cache_dir=get_upload_folder())


def progress_reporter(progress: gr.Progress) -> Callable[[int, int], None]:
    def report(step: int, total: int) -> None:
        progress((step, total), desc="Denoising")

    return report


def engine_banner(service: ZImageService) -> str:
    engine = service.engine
    if engine.kind == "unavailable":
        return f"**Not available:** {engine.description}"
    if engine.is_preview:
        return f"**{engine.description}**"
    return f"Running {engine.description}."


class Handlers:
    """The functions behind the buttons and the script endpoints."""

    def __init__(self, service: ZImageService) -> None:
        self.service = service

    def generate(
        self,
        prompt: str,
        resolution: str,
        seed: float,
        randomize_seed: bool,
        steps: float,
        shift: float,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple[str, int]:
        """Make an image from a text prompt. Returns the PNG and the seed used."""
        outcome = self.service.generate(
            prompt, resolution, seed, randomize_seed, steps, shift, progress_reporter(progress)
        )
        return save_output(outcome), outcome.seed

    def edit(
        self,
        image: str | None,
        instruction: str,
        mask: str | None,
        strength: float,
        seed: float,
        randomize_seed: bool,
        steps: float,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple[str, int, str]:
        """Edit an image file with an instruction; a mask file (white = change) limits the edit.

        Returns the PNG, the seed used and the method that ran (img2img, inpaint or omni).
        """
        outcome = self.service.edit(
            image,
            instruction,
            mask,
            strength,
            seed,
            randomize_seed,
            steps,
            progress_reporter(progress),
        )
        return save_output(outcome), outcome.seed, outcome.method

    def edit_in_editor(
        self,
        editor: dict | None,
        instruction: str,
        strength: float,
        seed: float,
        randomize_seed: bool,
        steps: float,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple[tuple[str, str], int, str]:
        """The Edit tab: the editor's background is the image, its brush layers the mask."""
        background = (editor or {}).get("background")
        outcome = self.service.edit(
            background,
            instruction,
            None,
            strength,
            seed,
            randomize_seed,
            steps,
            progress_reporter(progress),
            mask_layers=(editor or {}).get("layers") or [],
        )
        return (background, save_output(outcome)), outcome.seed, outcome.method


def build_demo(service: ZImageService) -> gr.Blocks:
    """The whole Space: text-to-image and edit tabs, with their script endpoints."""
    handlers = Handlers(service)
    with gr.Blocks(title="Z-Image Turbo", analytics_enabled=False) as demo:
        gr.Markdown("# Z-Image Turbo\nText-to-image and image editing with Z-Image Turbo.")
        gr.Markdown(engine_banner(service), elem_id="engine-status")
        with gr.Tabs():
            with gr.Tab("Text to image", id="generate"):
                text_to_image_tab(handlers)
            with gr.Tab("Edit", id="edit"):
                edit_tab(handlers)
        script_endpoints(handlers)
    return demo


def text_to_image_tab(handlers: Handlers) -> None:
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
            generate_button = gr.Button("Generate", variant="primary")
        with gr.Column(scale=1):
            image = gr.Image(
                label="Result",
                type="filepath",
                format="png",
                interactive=False,
                buttons=["download", "fullscreen"],
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
        queue=False,
    )
    gr.on(
        [generate_button.click, prompt.submit],
        readable_errors(handlers.generate),
        inputs=[prompt, resolution, seed, randomize_seed, steps, shift],
        outputs=[image, seed_used],
        api_name="generate_in_browser",
        api_visibility="private",
        concurrency_id=GPU_QUEUE,
        concurrency_limit=1,
    )


def edit_tab(handlers: Handlers) -> None:
    engine = handlers.service.engine
    gr.Markdown(
        "Z-Image-Edit weights are not published, so edits run on the Turbo weights: "
        f"**{engine.edit_methods}**. Paint over the part to change, or leave the image unpainted "
        "to change all of it."
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
            edit_button = gr.Button("Edit", variant="primary")
        with gr.Column(scale=1):
            before_after = gr.ImageSlider(
                label="Before / after",
                type="filepath",
                format="png",
                interactive=False,
                buttons=["download", "fullscreen"],
            )
            with gr.Row():
                seed_used = gr.Number(value=None, label="Seed used", precision=0, interactive=False)
                method_used = gr.Textbox(label="Method used", interactive=False)
    gr.Examples(
        examples=[[str(SAMPLES / name), text] for name, text in EXAMPLE_EDITS],
        inputs=[editor, instruction],
    )
    gr.on(
        [edit_button.click, instruction.submit],
        readable_errors(handlers.edit_in_editor),
        inputs=[editor, instruction, strength, seed, randomize_seed, steps],
        outputs=[before_after, seed_used, method_used],
        api_name="edit_in_browser",
        api_visibility="private",
        concurrency_id=GPU_QUEUE,
        concurrency_limit=1,
    )


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
        seed = gr.Number(label="seed", value=0, precision=0)
        randomize_seed = gr.Checkbox(label="randomize_seed", value=True)
        steps = gr.Number(label="steps", value=presets.DEFAULT_STEPS, precision=0)
        shift = gr.Number(label="shift", value=presets.DEFAULT_SHIFT)
        image_in = gr.File(label="image", type="filepath")
        instruction = gr.Textbox(label="instruction")
        mask = gr.File(label="mask", type="filepath")
        strength = gr.Number(label="strength", value=presets.DEFAULT_STRENGTH)
        image_out = gr.Image(label="image", type="filepath", format="png")
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
