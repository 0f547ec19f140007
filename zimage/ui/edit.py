"""The Edit tab: an image, an instruction, optionally a painted area, and the result beside it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from zimage import presets
from zimage.ui.controls import EnhanceControls, enhance_controls, seed_controls, steps_slider

SAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"
EXAMPLE_EDITS = [
    ("house.png", "Turn the scene into a snowy winter evening"),
    ("still_life.png", "Make it a watercolour painting"),
]


@dataclass
class EditTab:
    editor: gr.ImageEditor
    instruction: gr.Textbox
    strength: gr.Slider
    seed: gr.Number
    randomize_seed: gr.Checkbox
    steps: gr.Slider
    run: gr.Button
    stop: gr.Button
    before_after: gr.ImageSlider
    seed_used: gr.Number
    method_used: gr.Textbox
    enhance: EnhanceControls

    @property
    def inputs(self) -> list[gr.components.Component]:
        return [
            self.editor,
            self.instruction,
            self.strength,
            self.seed,
            self.randomize_seed,
            self.steps,
        ]


def edit_tab(edit_methods: str, enhancer_available: bool) -> EditTab:
    gr.Markdown(
        "Z-Image-Edit weights are not published, so edits run on the Turbo weights: "
        f"**{edit_methods}**. Paint over the part to change, or leave the image "
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
            enhance = enhance_controls(enhancer_available)
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
            with gr.Row():
                run = gr.Button("Edit", variant="primary")
                stop = gr.Button("Stop", variant="secondary", scale=0)
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
        stop,
        before_after,
        seed_used,
        method_used,
        enhance,
    )
