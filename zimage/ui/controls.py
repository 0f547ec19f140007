"""Controls both tabs share."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from zimage import presets


def seed_controls() -> tuple[gr.Number, gr.Checkbox]:
    with gr.Row():
        seed = gr.Number(value=42, label="Seed", precision=0, minimum=0, maximum=presets.MAX_SEED)
        randomize_seed = gr.Checkbox(value=True, label="Random seed")
    return seed, randomize_seed


def steps_slider() -> gr.Slider:
    return gr.Slider(
        presets.MIN_STEPS, presets.MAX_STEPS, value=presets.DEFAULT_STEPS, step=1, label="Steps"
    )


@dataclass
class EnhanceControls:
    """Enhance the prompt box's text in place, undo it, or enhance before each run."""

    enhance: gr.Button
    undo: gr.Button
    before_run: gr.Checkbox
    original: gr.State


def enhance_controls(available: bool) -> EnhanceControls:
    """Shown only where the prompt enhancer runs (it needs the loaded text encoder)."""
    with gr.Row(visible=available):
        enhance = gr.Button("Enhance prompt", size="sm", scale=0)
        undo = gr.Button("Undo enhance", size="sm", scale=0)
        before_run = gr.Checkbox(label="Enhance before generating", value=False)
    return EnhanceControls(enhance, undo, before_run, gr.State(""))
