"""Controls both tabs share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.i18n import I18nData

from zimage import presets
from zimage.page.language import t
from zimage.translations import words


def seed_controls() -> tuple[gr.Number, gr.Checkbox]:
    """The seed and the "random seed" box, side by side in the caller's row."""
    seed = gr.Number(
        value=42, label=t("controls.seed"), precision=0, minimum=0, maximum=presets.MAX_SEED
    )
    randomize_seed = gr.Checkbox(value=True, label=t("controls.random_seed"))
    return seed, randomize_seed


def steps_slider() -> gr.Slider:
    return gr.Slider(
        presets.MIN_STEPS,
        presets.MAX_STEPS,
        value=presets.DEFAULT_STEPS,
        step=1,
        label=t("controls.steps"),
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
        enhance = gr.Button(t("enhance.run"), size="sm", scale=0)
        undo = gr.Button(t("enhance.undo"), size="sm", scale=0)
        before_run = gr.Checkbox(label=t("enhance.before_run"), value=False)
    return EnhanceControls(enhance, undo, before_run, gr.State(""))


def seed_used_box() -> gr.Textbox:
    """The seed of the result shown: empty until there is one (a gr.Number would show 0)."""
    return gr.Textbox(label=t("controls.seed_used"), interactive=False)


def examples_in_each_language(
    name: str, examples: dict[str, list[list[Any]]], inputs: list[gr.components.Component]
) -> None:
    """One set of examples per language; the page's style shows the set of the page's language
    (see zimage/page/browser/page.css)."""
    for language, samples in examples.items():
        shown = gr.Examples(
            samples,
            inputs=inputs,
            label=t("controls.examples"),
            elem_id=f"{name}-examples-{language}",
            api_visibility="private",
        )
        # Gradio heads the table of examples with the inputs' labels, but does not translate
        # them there: each set is in one language, so its headers are written in it.
        shown.dataset.headers = [_in_language(component.label, language) for component in inputs]


def _in_language(label: Any, language: str) -> str:
    return words(label.key, language) if isinstance(label, I18nData) else str(label or "")
