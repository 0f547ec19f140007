"""The Gradio layout: the only module of the Space that imports gradio.

Visitors use the tabs; scripts call the named endpoints `/generate` and `/edit`, whose
parameters are exactly those documented in README.md. Core errors become `gr.Error` here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gradio as gr
from gradio.processing_utils import save_bytes_to_cache
from gradio.utils import get_upload_folder

from zimage import presets
from zimage.engine import EngineUnavailable
from zimage.service import ImageOutcome, ZImageService
from zimage.validation import InputError

logger = logging.getLogger(__name__)

GPU_QUEUE = "gpu"

EXAMPLE_PROMPTS = [
    "A lighthouse on a basalt cliff at dusk, warm window light, long exposure sea",
    "Close-up of a ceramic teapot with a blue glaze, soft studio light, shallow depth of field",
    "A bustling night market in the rain, paper lanterns, reflections on wet stone, cinematic",
]

SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"]
SYSTEM_MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]


def system_font_theme() -> gr.themes.Base:
    """The default look without web fonts: nothing is fetched from a font host."""
    return gr.themes.Default(font=SYSTEM_FONTS, font_mono=SYSTEM_MONO_FONTS)


def readable_errors(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Turn core exceptions into messages for the visitor; never show a stack trace."""

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except (InputError, EngineUnavailable) as error:
            raise gr.Error(str(error), print_exception=False) from None
        except gr.Error:
            raise
        except Exception:
            logger.exception("request failed")
            raise gr.Error(
                "Something went wrong while making the image. Please try again."
            ) from None

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    wrapped.__signature__ = _signature_of(handler)  # type: ignore[attr-defined]
    return wrapped


def _signature_of(handler: Callable[..., Any]) -> Any:
    import inspect

    return inspect.signature(handler)


def save_output(outcome: ImageOutcome) -> str:
    """Write the PNG where Gradio serves files from, named by content so Gradio reuses it."""
    return save_bytes_to_cache(outcome.png, "zimage.png", cache_dir=get_upload_folder())


def engine_banner(service: ZImageService) -> str:
    engine = service.engine
    if engine.kind == "unavailable":
        return f"**Not available:** {engine.description}"
    if engine.is_preview:
        return f"**{engine.description}**"
    return f"Running {engine.description}."


def add_script_endpoints(generate_handler: Callable[..., Any]) -> None:
    """Named endpoints with plain parameters, so every range check gives our own message."""
    with gr.Group(visible=False):
        prompt = gr.Textbox(label="prompt")
        resolution = gr.Textbox(label="resolution", value=presets.DEFAULT_RESOLUTION)
        seed = gr.Number(label="seed", value=0, precision=0)
        randomize_seed = gr.Checkbox(label="randomize_seed", value=True)
        steps = gr.Number(label="steps", value=presets.DEFAULT_STEPS, precision=0)
        shift = gr.Number(label="shift", value=presets.DEFAULT_SHIFT)
        image = gr.Image(label="image", type="filepath", format="png")
        seed_used = gr.Number(label="seed_used", precision=0)
        trigger = gr.Button("generate")
    trigger.click(
        generate_handler,
        inputs=[prompt, resolution, seed, randomize_seed, steps, shift],
        outputs=[image, seed_used],
        api_name="generate",
        concurrency_id=GPU_QUEUE,
        concurrency_limit=1,
    )


def build_demo(service: ZImageService) -> gr.Blocks:
    """The whole Space: a text-to-image tab with its API endpoint."""

    def generate(
        prompt: str,
        resolution: str,
        seed: float,
        randomize_seed: bool,
        steps: float,
        shift: float,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple[str, int]:
        """Make an image from a text prompt. Returns the PNG and the seed used."""

        def report(step: int, total: int) -> None:
            progress((step, total), desc="Denoising")

        outcome = service.generate(prompt, resolution, seed, randomize_seed, steps, shift, report)
        return save_output(outcome), outcome.seed

    generate_handler = readable_errors(generate)

    with gr.Blocks(title="Z-Image Turbo", analytics_enabled=False) as demo:
        gr.Markdown("# Z-Image Turbo\nText-to-image with Z-Image Turbo, 8 steps.")
        gr.Markdown(engine_banner(service), elem_id="engine-status")
        with gr.Tabs():
            with gr.Tab("Text to image", id="generate"):
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
                        with gr.Row():
                            seed = gr.Number(
                                value=42,
                                label="Seed",
                                precision=0,
                                minimum=0,
                                maximum=presets.MAX_SEED,
                            )
                            randomize_seed = gr.Checkbox(value=True, label="Random seed")
                        with gr.Accordion("Advanced settings", open=False):
                            steps = gr.Slider(
                                presets.MIN_STEPS,
                                presets.MAX_STEPS,
                                value=presets.DEFAULT_STEPS,
                                step=1,
                                label="Steps",
                            )
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
                        seed_used = gr.Number(
                            value=None, label="Seed used", precision=0, interactive=False
                        )
                gr.Examples(examples=[[p] for p in EXAMPLE_PROMPTS], inputs=[prompt])

        category.change(
            lambda chosen: gr.Dropdown(
                choices=presets.RESOLUTION_PRESETS[chosen],
                value=presets.RESOLUTION_PRESETS[chosen][0],
            ),
            inputs=category,
            outputs=resolution,
            api_visibility="private",
            queue=False,
        )
        gr.on(
            [generate_button.click, prompt.submit],
            generate_handler,
            inputs=[prompt, resolution, seed, randomize_seed, steps, shift],
            outputs=[image, seed_used],
            api_name="generate_in_browser",
            api_visibility="private",
            concurrency_id=GPU_QUEUE,
            concurrency_limit=1,
        )
        add_script_endpoints(generate_handler)
    return demo
