"""A run as the page shows it besides its result: the line under the result that says where a
stopped run ended, and the Stop button, usable only while a run of its tab is going."""

from __future__ import annotations

import gradio as gr

from zimage.page.outputs import progress_reporter
from zimage.translations import words

# Set in the browser as a run is asked for (also while it waits in the queue), and once it has
# ended, however it ended; no server call either way.
CAN_STOP_JS = "() => ({ __type__: 'update', interactive: true })"
CANNOT_STOP_JS = "() => ({ __type__: 'update', interactive: false })"


def status_line(elem_id: str) -> gr.Markdown:
    """Empty, except after a stopped run (browser/gradio_markup.js makes it a live region)."""
    return gr.Markdown("", elem_id=elem_id, elem_classes=["run-status"])


class StepsReached:
    """Passes a run's progress on to Gradio's progress bar and remembers the last step."""

    def __init__(self, progress: gr.Progress) -> None:
        self._progress = progress_reporter(progress)
        self.step = 0
        self.total = 0

    def report(self, step: int, total: int) -> None:
        self.step, self.total = step, total
        self._progress(step, total)

    def stopped(self, language: str) -> str:
        """ "Stopped at step 5 of 8.", or that it stopped before its first step."""
        if self.step == 0:
            return words("message.stopped_before", language)
        return words("message.stopped_at", language, step=self.step, total=self.total)
