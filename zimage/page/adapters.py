"""The style adapters (LoRA) on both tabs: a gallery of the operator's adapters with their
previews, two name boxes with a strength slider each, and "add trigger words"."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from zimage.adapters.menu import AdapterMenu
from zimage.page.language import t
from zimage.tools.adapters import ADAPTER_SCALE

# Shown for an adapter without a preview image (served from the repository, never swept).
PLACEHOLDER = Path(__file__).resolve().parent / "browser" / "adapter.png"
NO_ADAPTER = ("—", "")
SCALE_STEP = 0.05
DEFAULT_SHOWN_SCALE = 1.0


@dataclass
class AdapterControls:
    gallery: gr.Gallery
    lora: gr.Dropdown
    lora_scale: gr.Slider
    lora_2: gr.Dropdown
    lora_2_scale: gr.Slider
    trigger_words: gr.Checkbox

    @property
    def widgets(self) -> dict[str, gr.components.Component]:
        """The widgets by the parameter each one gives (for the tab's ToolForm)."""
        return {
            "lora": self.lora,
            "lora_scale": self.lora_scale,
            "lora_2": self.lora_2,
            "lora_2_scale": self.lora_2_scale,
            "trigger_words": self.trigger_words,
        }


def preview_files(menu: AdapterMenu) -> list[Path]:
    """The images the galleries show, to be served where they are (gr.set_static_paths)."""
    return [
        PLACEHOLDER,
        *(Path(adapter.preview) for adapter in menu.offered.values() if adapter.preview),
    ]


def adapter_controls(menu: AdapterMenu) -> AdapterControls:
    """The adapters' controls, hidden where the Space offers none."""
    names = menu.names
    choices = [NO_ADAPTER, *((name, name) for name in names)]
    free_text = menu.hub is not None
    with gr.Accordion(t("adapters.title"), open=False, visible=menu.available):
        gr.Markdown(t("adapters.note"))
        gallery = gr.Gallery(
            [
                (adapter.preview or str(PLACEHOLDER), adapter.name)
                for adapter in menu.offered.values()
            ],
            label=t("adapters.gallery"),
            columns=4,
            height=220,
            object_fit="cover",
            allow_preview=False,
            interactive=False,
            buttons=[],  # no share or download: these are the Space's pictures, not outputs
            visible=bool(names),
        )
        boxes = []
        for label in ("adapters.first", "adapters.second"):
            with gr.Row():
                box = gr.Dropdown(
                    choices, value="", label=t(label), allow_custom_value=free_text, scale=2
                )
                strength = gr.Slider(
                    ADAPTER_SCALE.minimum,
                    ADAPTER_SCALE.maximum,
                    value=DEFAULT_SHOWN_SCALE,
                    step=SCALE_STEP,
                    label=t("adapters.scale"),
                    scale=1,
                )
            boxes.append((box, strength))
        trigger_words = gr.Checkbox(value=False, label=t("adapters.triggers"))
    (lora, lora_scale), (lora_2, lora_2_scale) = boxes
    light: dict[str, Any] = {"concurrency_limit": None, "api_visibility": "private"}

    def default_scale(name: str) -> float:
        adapter = menu.offered.get(name)
        return adapter.entry.scale if adapter is not None else DEFAULT_SHOWN_SCALE

    def pick(first: str, second: str, selection: gr.SelectData) -> tuple[Any, ...]:
        """A click on the gallery: the adapter goes into the first free box (else the second)."""
        name = names[selection.index]
        if name in (first, second):
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        if not first:
            return name, default_scale(name), gr.skip(), gr.skip()
        return gr.skip(), gr.skip(), name, default_scale(name)

    gallery.select(
        pick, inputs=[lora, lora_2], outputs=[lora, lora_scale, lora_2, lora_2_scale], **light
    )
    for box, strength in boxes:
        box.input(default_scale, inputs=box, outputs=strength, **light)
    return AdapterControls(gallery, lora, lora_scale, lora_2, lora_2_scale, trigger_words)
