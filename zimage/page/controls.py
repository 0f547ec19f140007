"""Controls both tabs share, and the form that turns a tab's widgets into a tool request."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
from gradio.i18n import I18nData

from zimage import presets
from zimage.page.language import t
from zimage.tools.parameters import Parameter, ToolRequest
from zimage.translations import words


@dataclass
class ToolForm:
    """The page's widgets for one tool's parameters, by parameter name, in the order Gradio
    sends their values; `fixed` are values the page always sends (e.g. live preview on)."""

    tool: type[ToolRequest]
    widgets: dict[str, gr.components.Component]
    fixed: dict[str, Any] = field(default_factory=dict)

    @property
    def inputs(self) -> list[gr.components.Component]:
        return list(self.widgets.values())

    def request(self, values: Sequence[Any], **more: Any) -> Any:
        """The tool request of the widgets' `values` (and `more` fields the tab reads itself)."""
        return self.tool(**dict(zip(self.widgets, values, strict=True)), **self.fixed, **more)

    def restored(self, settings: Mapping[str, Any]) -> dict[gr.components.Component, Any]:
        """Widget values that repeat a kept image's settings (its own seed, not a random one)."""
        shown = {
            widget: settings[name]
            for name, widget in self.widgets.items()
            if settings.get(name) is not None  # None: the default, which the widget shows
        }
        if "randomize_seed" in self.widgets:
            shown[self.widgets["randomize_seed"]] = False
        return shown


def slider(parameter: Parameter, label: Any, step: float) -> gr.Slider:
    """A slider over a parameter's range, starting at its default."""
    return gr.Slider(
        parameter.minimum, parameter.maximum, value=parameter.default, step=step, label=label
    )


def seed_controls() -> tuple[gr.Number, gr.Checkbox]:
    """The seed and the "random seed" box, side by side in the caller's row: a visitor gets a
    new seed each run until they untick the box."""
    seed = gr.Number(
        value=presets.DEFAULT_SEED,
        label=t("controls.seed"),
        precision=0,
        minimum=0,
        maximum=presets.MAX_SEED,
    )
    randomize_seed = gr.Checkbox(value=True, label=t("controls.random_seed"))
    return seed, randomize_seed


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
