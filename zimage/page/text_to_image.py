"""The Text to image tab: a prompt, a size, a seed, and the images it makes; where the Space
serves Base too, a choice of model, and Base's own fields (negative prompt, guidance)."""

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
from zimage.page.run_status import status_line
from zimage.tools.parameters import Parameter
from zimage.tools.text_to_image import TextToImage
from zimage.translations import EXAMPLE_PROMPTS, EXAMPLE_SETTINGS, example_card


@dataclass
class TextToImageTab:
    form: ToolForm
    prompt: gr.Textbox
    run: gr.Button
    stop: gr.Button
    images: gr.Gallery
    seed_used: gr.Textbox
    enhance: EnhanceControls
    status: gr.Markdown
    adapters: AdapterControls


def text_to_image_tab(
    enhancer_available: bool, adapters: AdapterMenu, models: tuple[str, ...] = (presets.TURBO,)
) -> TextToImageTab:
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
            # Right under the prompt: on a laptop screen it shows with the privacy notice open.
            with gr.Row():
                run = gr.Button(t("generate.run"), variant="primary", elem_id="generate-button")
                stop = gr.Button(
                    t("controls.stop"), variant="secondary", scale=0, interactive=False
                )
            base = base_controls(models, parameters)
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
                steps = slider(
                    parameters["steps"], t("controls.steps"), step=1, value=presets.DEFAULT_STEPS
                )
                shift = slider(parameters["shift"], t("generate.shift"), step=0.1)
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
            status = status_line("generate-status")
            seed_used = seed_used_box()
    examples_in_each_language(
        "generate",
        {
            language: [
                [text, example.resolution, example.steps]
                for text, example in zip(prompts, EXAMPLE_SETTINGS, strict=True)
            ]
            for language, prompts in EXAMPLE_PROMPTS.items()
        },
        inputs=[prompt, resolution, steps],
        cards={
            language: [example_card(example, language) for example in EXAMPLE_SETTINGS]
            for language in EXAMPLE_PROMPTS
        },
    )
    base.model.change(
        lambda chosen: gr.Group(visible=chosen == presets.BASE),
        inputs=base.model,
        outputs=base.fields,
        api_visibility="private",
        concurrency_limit=None,
    )
    # Picked by the visitor (not restored from the history): the model's own defaults.
    base.model.input(
        lambda chosen: (presets.DEFAULT_STEPS_OF[chosen], presets.DEFAULT_GUIDANCE),
        inputs=base.model,
        outputs=[steps, base.guidance],
        api_visibility="private",
        concurrency_limit=None,
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
            "model": base.model,
            "negative_prompt": base.negative_prompt,
            "guidance": base.guidance,
            "cfg_normalization": base.cfg_normalization,
            **styles.widgets,
        },
        fixed={"live_preview": True},
    )
    return TextToImageTab(form, prompt, run, stop, images, seed_used, enhance, status, styles)


@dataclass
class BaseControls:
    """The choice of model, shown where the Space serves Base; Base's fields, shown when it is
    chosen."""

    model: gr.Radio
    fields: gr.Group
    negative_prompt: gr.Textbox
    guidance: gr.Slider
    cfg_normalization: gr.Checkbox


def base_controls(models: tuple[str, ...], parameters: dict[str, Parameter]) -> BaseControls:
    offered = len(models) > 1
    model = gr.Radio(
        [(t(f"generate.model_{name}"), name) for name in models],
        value=presets.TURBO,
        label=t("generate.model"),
        visible=offered,
        elem_id="model",
    )
    gr.Markdown(t("generate.model_note"), visible=offered, elem_id="model-note")
    with gr.Group(visible=False) as fields:
        negative_prompt = gr.Textbox(
            label=t("generate.negative_prompt"),
            lines=2,
            max_length=presets.MAX_PROMPT_CHARS,
            placeholder=t("generate.negative_placeholder"),
            elem_id="negative-prompt",
        )
        with gr.Row():
            guidance = slider(
                parameters["guidance"],
                t("generate.guidance"),
                step=0.1,
                value=presets.DEFAULT_GUIDANCE,
            )
            cfg_normalization = gr.Checkbox(
                value=parameters["cfg_normalization"].default,
                label=t("generate.cfg_normalization"),
            )
    return BaseControls(model, fields, negative_prompt, guidance, cfg_normalization)


def resolution_choices(category: str) -> list[tuple[str, str]]:
    """A category's sizes, labelled with their aspect ratios; the value stays "WIDTHxHEIGHT"."""
    return [(presets.resolution_label(size), size) for size in presets.RESOLUTION_PRESETS[category]]
