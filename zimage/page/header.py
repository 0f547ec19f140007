"""The top of the page under the privacy notice: the name, the language selector, the engine."""

from __future__ import annotations

import gradio as gr

from zimage.page.language import language_selector, t


def page_header() -> gr.Radio:
    """The title row with the language selector (returned), then the engine in use."""
    with gr.Row(equal_height=True, elem_id="page-header"):
        gr.Markdown(f"# Z-Image Turbo\n{t('header.tagline')}", elem_id="title")
        language = language_selector()
    gr.Markdown(t("engine.status"), elem_id="engine-status")
    return language
