"""The Text to image tab: a prompt, a size, a seed, and the images it makes."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from zimage import presets
from zimage.adapters.menu import AdapterMenu
from zimage.page.adapters import AdapterControls, adapter_controls
from zimage.page.controls import (
    EnhanceControls,
    ToolForm,
    enhance_controls,
    examples_in_each_language,
    seed_controls,
    seed_used_box,
    slider,
)
from zimage.page.language import t
from zimage.tools.text_to_image import TextToImage
from zimage.translations import EXAMPLE_PROMPTS


@dataclass
class TextToImageTab:
    form: ToolForm
    prompt: gr.Textbox
    run: gr.Button
    stop: gr.Button
    images: gr.Gallery
    seed_used: gr.Textbox
    enhance: EnhanceControls
    adapters: AdapterControls


def text_to_image_tab(enhancer_available: bool, adapters: AdapterMenu) -> TextToImageTab:
    parameters = TextToImage.parameters()
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
                num_images = slider(parameters["num_images"], t("generate.images"), step=1)
            styles = adapter_controls(adapters)
            with gr.Accordion(t("controls.advanced"), open=False):
                steps = slider(parameters["steps"], t("controls.steps"), step=1)
                shift = slider(parameters["shift"], t("generate.shift"), step=0.1)
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
    form = ToolForm(
        TextToImage,
        {
            "prompt": prompt,
            "resolution": resolution,
            "seed": seed,
            "randomize_seed": randomize_seed,
            "steps": steps,
            "shift": shift,
            "num_images": num_images,
            **styles.widgets,
        },
        fixed={"live_preview": True},
    )
    return TextToImageTab(form, prompt, run, stop, images, seed_used, enhance, styles)


def resolution_choices(category: str) -> list[tuple[str, str]]:
    """A category's sizes, labelled with their aspect ratios; the value stays "WIDTHxHEIGHT"."""
    return [(presets.resolution_label(size), size) for size in presets.RESOLUTION_PRESETS[category]]
