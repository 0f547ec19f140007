"""Controls both tabs share."""

from __future__ import annotations

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
