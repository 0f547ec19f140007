"""The Text to image tab: a prompt, a size, a seed, and the images it makes."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from zimage import presets
from zimage.ui.controls import EnhanceControls, enhance_controls, seed_controls, steps_slider

EXAMPLE_PROMPTS = [
    "A lighthouse on a basalt cliff at dusk, warm window light, long exposure sea",
    "Close-up of a ceramic teapot with a blue glaze, soft studio light, shallow depth of field",
    "A bustling night market in the rain, paper lanterns, reflections on wet stone, cinematic",
]


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
    seed_used: gr.Number
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
                label="Prompt",
                lines=3,
                max_length=presets.MAX_PROMPT_CHARS,
                placeholder="Describe the image you want",
            )
            enhance = enhance_controls(enhancer_available)
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
            num_images = gr.Slider(
                1, presets.MAX_IMAGES_PER_RUN, value=1, step=1, label="Images (seeds s, s+1, ...)"
            )
            with gr.Accordion("Advanced settings", open=False):
                steps = steps_slider()
                shift = gr.Slider(
                    presets.MIN_SHIFT,
                    presets.MAX_SHIFT,
                    value=presets.DEFAULT_SHIFT,
                    step=0.1,
                    label="Time shift",
                )
            with gr.Row():
                run = gr.Button("Generate", variant="primary")
                stop = gr.Button("Stop", variant="secondary", scale=0)
        with gr.Column(scale=1):
            images = gr.Gallery(
                label="Result",
                columns=2,
                height=520,
                object_fit="contain",
                format="png",
                interactive=False,
                buttons=["download", "fullscreen"],
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
