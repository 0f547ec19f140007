"""The Text to image tab: a prompt, a size, a seed, and the images it makes."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from zimage import presets
from zimage.page.controls import (
    EnhanceControls,
    enhance_controls,
    examples_in_each_language,
    seed_controls,
    seed_used_box,
    steps_slider,
)
from zimage.page.language import t
from zimage.translations import EXAMPLE_PROMPTS


@dataclass
class TextToImageTab:
    prompt: gr.Textbox
    resolution: gr.Dropdown
    seed: gr.Number
    randomize_seed: gr.Checkbox
    steps: gr.Slider
    shift: gr.Slider
    num_images: gr.Slider
    run: gr.Button
    stop: gr.Button
    images: gr.Gallery
    seed_used: gr.Textbox
    enhance: EnhanceControls

    @property
    def inputs(self) -> list[gr.components.Component]:
        return [
            self.prompt,
            self.resolution,
            self.seed,
            self.randomize_seed,
            self.steps,
            self.shift,
            self.num_images,
        ]


def text_to_image_tab(enhancer_available: bool) -> TextToImageTab:
    with gr.Row():
        with gr.Column(scale=1):
            prompt = gr.Textbox(
                label=t("generate.prompt"),
                lines=3,
                max_length=presets.MAX_PROMPT_CHARS,
                placeholder=t("generate.prompt_placeholder"),
                elem_id="prompt",
            )
            enhance = enhance_controls(enhancer_available)
            with gr.Row():
                category = gr.Radio(
                    list(presets.RESOLUTION_PRESETS),
                    value=presets.DEFAULT_CATEGORY,
                    label=t("generate.size_category"),
                )
                resolution = gr.Dropdown(
                    resolution_choices(presets.DEFAULT_CATEGORY),
                    value=presets.DEFAULT_RESOLUTION,
                    label=t("generate.resolution"),
                    allow_custom_value=True,
                )
            with gr.Row():
                seed, randomize_seed = seed_controls()
                num_images = gr.Slider(
                    1, presets.MAX_IMAGES_PER_RUN, value=1, step=1, label=t("generate.images")
                )
            with gr.Accordion(t("controls.advanced"), open=False):
                steps = steps_slider()
                shift = gr.Slider(
                    presets.MIN_SHIFT,
                    presets.MAX_SHIFT,
                    value=presets.DEFAULT_SHIFT,
                    step=0.1,
                    label=t("generate.shift"),
                )
            with gr.Row():
                run = gr.Button(t("generate.run"), variant="primary", elem_id="generate-button")
                stop = gr.Button(t("controls.stop"), variant="secondary", scale=0)
        with gr.Column(scale=1):
            images = gr.Gallery(
                label=t("generate.result"),
                columns=2,
                height=440,
                object_fit="contain",
                format="png",
                interactive=False,
                buttons=["download", "fullscreen"],
                elem_id="result",
            )
            seed_used = seed_used_box()
    examples_in_each_language(
        "generate",
        {language: [[text] for text in prompts] for language, prompts in EXAMPLE_PROMPTS.items()},
        inputs=[prompt],
    )
    category.change(
        lambda chosen: gr.Dropdown(
            choices=resolution_choices(chosen), value=presets.RESOLUTION_PRESETS[chosen][0]
        ),
        inputs=category,
        outputs=resolution,
        api_visibility="private",
        concurrency_limit=None,
    )
    return TextToImageTab(
        prompt,
        resolution,
        seed,
        randomize_seed,
        steps,
        shift,
        num_images,
        run,
        stop,
        images,
        seed_used,
        enhance,
    )


def resolution_choices(category: str) -> list[tuple[str, str]]:
    """A category's sizes, labelled with their aspect ratios; the value stays "WIDTHxHEIGHT"."""
    return [(presets.resolution_label(size), size) for size in presets.RESOLUTION_PRESETS[category]]
