"""The visitor's images still in memory, with the time each has left.

The page asks the server for them only when they change: once the page has loaded, when a run
ends, when the visitor deletes some, and when the next one expires. The countdown in the
captions runs in the browser (browser/history.js), from the seconds left that each answer
carries; `refresh` is an inactive timer that each answer sets to tick just after the next
image expires, so that the server, which deletes it, says what is left. An idle page with no
images asks nothing at all, and one with images asks once per image, when it goes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from zimage.page.language import t

# The refresh ticks this long after the next image expires (the server's sweeper deletes its
# files within seconds; the list it answers leaves expired images out at once).
AFTER_EXPIRY_S = 0.5
# Hands each answer's images to the countdown (no server call).
SHOW_COUNTDOWN_JS = "(shown) => { window.zimageHistory?.show(shown); }"
# Where each caption's countdown goes, in the captions `shown` carries.
LEFT = "{left}"


@dataclass
class History:
    gallery: gr.Gallery
    # Per image, in the gallery's order: its cache key (to reuse its settings), the seconds it
    # had left when sent and its caption with LEFT for the countdown. Kept in the page, so a
    # page whose server session was forgotten (idle for an hour) still knows its images.
    shown: gr.JSON
    delete: gr.Button
    refresh: gr.Timer


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
        shown = gr.JSON([], visible=False)
        delete = gr.Button(t("history.delete"), variant="stop", size="sm")
    return History(gallery, shown, delete, gr.Timer(active=False))


def countdown(seconds: float) -> str:
    """'9:58': minutes and seconds left, as the browser's countdown writes them."""
    left = max(0, int(seconds))
    return f"{left // 60}:{left % 60:02d}"


def refresh_after(seconds_left: list[float]) -> Any:
    """The refresh timer for images with these seconds left: ticking just after the first goes,
    or stopped when there are none."""
    if not seconds_left:
        return gr.Timer(active=False)
    return gr.Timer(value=max(0.0, min(seconds_left)) + AFTER_EXPIRY_S, active=True)
