"""Files the Space writes for a visitor, which Gradio serves: outputs (tied to their cache
entries so they go together), a run's live preview frames, and the data download. Every one is
counted against the outputs' byte cap, belongs to that visitor, and goes with their data."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import gradio as gr
import numpy as np
from gradio.processing_utils import save_bytes_to_cache
from gradio.utils import get_upload_folder
from PIL import Image

from zimage.service.images import encode_png
from zimage.service.service import ImageOutcome, ZImageService
from zimage.service.visitors import Visitor

# The kind of file the data download is, among a visitor's files: a new one replaces the last.
EXPORT_FILES = "export"
FORMING = "forming…"

MEGABYTE = 1024 * 1024


def save_output(outcome: ImageOutcome, service: ZImageService) -> str:
    """Write the PNG where Gradio serves files from; the output is served from that file alone.

    The file is named by its content, as Gradio names it, so Gradio serves it without a copy;
    it is deleted with the entry.
    """
    path = save_bytes_to_cache(outcome.png, "zimage.png", cache_dir=get_upload_folder())
    service.serve_from_file(outcome, path)
    return path


def save_export(document: str, service: ZImageService, visitor: Visitor) -> str:
    """Write the visitor's data download, replacing their earlier one; it goes with their data
    and after the output lifetime at the latest."""
    path = save_bytes_to_cache(document.encode(), "my-usage-data.json", get_upload_folder())
    service.keep_visitor_files(visitor, EXPORT_FILES, [path], replace=True)
    return path


def seed_caption(seed: int) -> str:
    return f"seed {seed}"


def gallery_of(
    outcomes: list[ImageOutcome], service: ZImageService, caption: Callable[[int], str | None]
) -> list[tuple[str, str | None]]:
    """(file, caption) pairs for a gr.Gallery, one per image, in seed order."""
    return [(save_output(outcome, service), caption(outcome.seed)) for outcome in outcomes]


class PreviewFrames:
    """One run's live preview frames, written as small PNG files of the visitor's (rather than
    numpy arrays that Gradio would write as files nobody counts or deletes)."""

    def __init__(self, service: ZImageService, visitor: Visitor) -> None:
        self.service = service
        self.visitor = visitor
        self.kind = f"preview:{secrets.token_urlsafe(12)}"

    def files(self, frames: list[np.ndarray]) -> list[str]:
        """A step's frames (one per image) as files, in order."""
        folder = get_upload_folder()
        paths = [
            save_bytes_to_cache(encode_png(Image.fromarray(frame)), "preview.png", folder)
            for frame in frames
        ]
        self.service.keep_visitor_files(self.visitor, self.kind, paths)
        return paths

    def gallery(self, frames: list[np.ndarray]) -> list[tuple[str, str]]:
        """A step's frames as gallery items (small; the gallery scales them up)."""
        return [(path, FORMING) for path in self.files(frames)]


@contextmanager
def preview_frames(
    service: ZImageService, visitor: Visitor, kept_when_done: bool = False
) -> Iterator[PreviewFrames]:
    """The frames of the run inside the block; deleted when it ends, however it ends (done,
    Stop, an error). `kept_when_done`: a run that is done leaves them to the output lifetime,
    for a script (gradio_client) that fetches each frame after its message has come."""
    frames = PreviewFrames(service, visitor)
    done = False
    try:
        yield frames
        done = True
    finally:
        if not (done and kept_when_done):
            service.drop_visitor_files(visitor, frames.kind)


def progress_reporter(progress: gr.Progress) -> Callable[[int, int], None]:
    def report(step: int, total: int) -> None:
        progress((step, total), desc="Denoising")

    return report


def download_reporter(progress: gr.Progress) -> Callable[[int, int], None]:
    """Shows an adapter's download from the Hub, in megabytes."""

    def report(done: int, total: int) -> None:
        shown = (done // MEGABYTE, max(1, total // MEGABYTE))
        progress(shown, desc="Downloading the adapter", unit="MB")

    return report
