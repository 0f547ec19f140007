"""The visitor's images still in memory, with the time each has left."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from zimage.page.language import t

# The gallery's countdown refreshes this often; deletion itself runs on the server's timer.
HISTORY_REFRESH_S = 5.0


@dataclass
class History:
    gallery: gr.Gallery
    keys: gr.State
    delete: gr.Button
    timer: gr.Timer


def history_panel() -> History:
    with gr.Accordion(t("history.title"), open=True):
        gr.Markdown(t("history.note"))
        gallery = gr.Gallery(
            label=t("history.title"),
            columns=6,
            height=220,
            object_fit="contain",
            interactive=False,
            buttons=["download", "fullscreen"],
            elem_id="history",
        )
        keys = gr.State([])
        delete = gr.Button(t("history.delete"), variant="stop", size="sm")
    return History(gallery, keys, delete, gr.Timer(HISTORY_REFRESH_S))
