"""The Edit tab: an image, an instruction, optionally a painted area, and the result beside it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
from zimage.tools.edit import Edit
from zimage.translations import EXAMPLE_EDITS

SAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"


@dataclass
class EditTab:
    """`form` holds the edit's parameters but the image: the editor gives the image and the
    painted mask layers together."""

    editor: gr.ImageEditor
    form: ToolForm
    instruction: gr.Textbox
    run: gr.Button
    stop: gr.Button
    before_after: gr.ImageSlider
    seed_used: gr.Textbox
    method_used: gr.Textbox
    enhance: EnhanceControls
    adapters: AdapterControls


def edit_tab(enhancer_available: bool, adapters: AdapterMenu) -> EditTab:
    parameters = Edit.parameters()
    gr.Markdown(t("edit.note"))
    with gr.Row():
        with gr.Column(scale=1):
            editor = gr.ImageEditor(
                label=t("edit.image"),
                type="filepath",
                format="png",
                sources=["upload", "clipboard", "webcam"],
                brush=gr.Brush(colors=["#ffffff"], color_mode="fixed"),
                transforms=[],
                layers=False,
                elem_id="edit-image",
            )
            instruction = gr.Textbox(
                label=t("edit.instruction"),
                lines=2,
                max_length=presets.MAX_PROMPT_CHARS,
                placeholder=t("edit.instruction_placeholder"),
                elem_id="edit-instruction",
            )
            enhance = enhance_controls(enhancer_available)
            strength = slider(parameters["strength"], t("edit.strength"), step=0.05)
            with gr.Row():
                seed, randomize_seed = seed_controls()
            styles = adapter_controls(adapters)
            with gr.Accordion(t("controls.advanced"), open=False):
                steps = slider(parameters["steps"], t("controls.steps"), step=1)
            with gr.Row():
                run = gr.Button(t("edit.run"), variant="primary", elem_id="edit-button")
                stop = gr.Button(t("controls.stop"), variant="secondary", scale=0)
        with gr.Column(scale=1):
            before_after = gr.ImageSlider(
                label=t("edit.before_after"),
                type="filepath",
                format="png",
                interactive=False,
                buttons=["download", "fullscreen"],
                elem_id="edit-result",
            )
            with gr.Row():
                seed_used = seed_used_box()
                method_used = gr.Textbox(label=t("edit.method_used"), interactive=False)
    examples_in_each_language(
        "edit",
        {
            language: [[str(SAMPLES / name), text] for name, text in edits]
            for language, edits in EXAMPLE_EDITS.items()
        },
        inputs=[editor, instruction],
    )
    form = ToolForm(
        Edit,
        {
            "instruction": instruction,
            "strength": strength,
            "seed": seed,
            "randomize_seed": randomize_seed,
            "steps": steps,
            **styles.widgets,
        },
    )
    return EditTab(
        editor, form, instruction, run, stop, before_after, seed_used, method_used, enhance, styles
    )
