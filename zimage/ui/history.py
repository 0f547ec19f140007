"""The visitor's images still in memory, with the time each has left."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

# The gallery's countdown refreshes this often; deletion itself runs on the server's timer.
HISTORY_REFRESH_S = 5.0


@dataclass
class History:
    gallery: gr.Gallery
    keys: gr.State
    delete: gr.Button
    timer: gr.Timer


def history_panel(lifetime: str) -> History:
    with gr.Accordion("Your images", open=True):
        gr.Markdown(
            f"Kept in this server's memory for {lifetime}, then deleted. "
            "Only this browser sees them. Click one to reuse its settings."
        )
        gallery = gr.Gallery(
            label="Your images",
            columns=6,
            height=220,
            object_fit="contain",
            interactive=False,
            buttons=["download", "fullscreen"],
            elem_id="history",
        )
        keys = gr.State([])
        delete = gr.Button("Delete my images now", variant="stop", size="sm")
    return History(gallery, keys, delete, gr.Timer(HISTORY_REFRESH_S))
