"""Outputs as files Gradio serves, tied to their cache entries so they go together."""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr
import numpy as np
from gradio.processing_utils import save_bytes_to_cache
from gradio.utils import get_upload_folder

from zimage.service.service import ImageOutcome, ZImageService

MEGABYTE = 1024 * 1024


def save_output(outcome: ImageOutcome, service: ZImageService) -> str:
    """Write the PNG where Gradio serves files from and tie the file to the cache entry.

    The file is named by its content, as Gradio names it, so Gradio serves it without a copy;
    it is deleted with the entry. Call it before keeping the request's uploads with the output:
    the history shows an entry's first file.
    """
    path = save_bytes_to_cache(outcome.png, "zimage.png", cache_dir=get_upload_folder())
    service.keep_files(outcome, [path])
    return path


def seed_caption(seed: int) -> str:
    return f"seed {seed}"


def gallery_of(
    outcomes: list[ImageOutcome], service: ZImageService, caption: Callable[[int], str | None]
) -> list[tuple[str, str | None]]:
    """(file, caption) pairs for a gr.Gallery, one per image, in seed order."""
    return [(save_output(outcome, service), caption(outcome.seed)) for outcome in outcomes]


def preview_items(frames: list[np.ndarray]) -> list[tuple[np.ndarray, str]]:
    """A step's preview frames as gallery items (small; the gallery scales them up)."""
    return [(frame, "forming…") for frame in frames]


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
