"""The privacy notice at the top of every page, and the "Privacy and your data" tab."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

POLICY_FILE = Path(__file__).resolve().parent.parent.parent / "PRIVACY.md"
OPT_OUT_LABEL = "Keep my requests out of the usage log"
CORRECTION_NOTE = (
    "Correction does not apply here: you never enter personal details, and each row only "
    "describes a request your browser made."
)


@dataclass
class PrivacyBanner:
    accordion: gr.Accordion
    text: gr.Markdown
    opt_out: gr.Checkbox
    acknowledge: gr.Button
    to_your_data: gr.Button


@dataclass
class PrivacyTab:
    opt_out: gr.Checkbox
    show: gr.Button
    download: gr.DownloadButton
    delete: gr.Button
    confirm_row: gr.Row
    confirm: gr.Button
    cancel: gr.Button
    status: gr.Markdown
    shown: gr.JSON


def privacy_banner(text: str) -> PrivacyBanner:
    with gr.Accordion("Privacy notice", open=True, elem_id="privacy-banner") as accordion:
        markdown = gr.Markdown(text)
        with gr.Row():
            opt_out = gr.Checkbox(label=OPT_OUT_LABEL, elem_id="banner-opt-out")
            acknowledge = gr.Button("Got it", size="sm", scale=0)
            to_your_data = gr.Button("Full policy and your data", size="sm", scale=0)
    return PrivacyBanner(accordion, markdown, opt_out, acknowledge, to_your_data)


def privacy_tab() -> PrivacyTab:
    """The policy as this code keeps it, and "your data": see, download, delete, opt out."""
    gr.Markdown(POLICY_FILE.read_text(encoding="utf-8"), elem_id="privacy")
    gr.Markdown("## Your data")
    opt_out = gr.Checkbox(label=OPT_OUT_LABEL, elem_id="data-opt-out")
    gr.Markdown(CORRECTION_NOTE)
    with gr.Row():
        show = gr.Button("Show my data")
        download = gr.DownloadButton("Download my data (JSON)", visible=False)
        delete = gr.Button("Delete my data", variant="stop")
    with gr.Row(visible=False) as confirm_row:
        gr.Markdown(
            "Delete every usage row and image linked to this browser? This cannot be undone."
        )
        confirm = gr.Button("Yes, delete everything", variant="stop")
        cancel = gr.Button("Cancel")
    status = gr.Markdown()
    shown = gr.JSON(label="Data linked to this browser", elem_id="my-data")
    return PrivacyTab(opt_out, show, download, delete, confirm_row, confirm, cancel, status, shown)
