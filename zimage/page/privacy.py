"""The privacy notice at the top of every page, and the "Privacy and your data" tab."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from zimage.page.language import t


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
    """The notice: open until the visitor has read this policy version, then one line."""
    with gr.Accordion(t("privacy.notice"), open=True, elem_id="privacy-banner") as accordion:
        markdown = gr.Markdown(text)
        with gr.Row():
            opt_out = gr.Checkbox(
                label=t("privacy.opt_out"), elem_id="banner-opt-out", container=False
            )
            acknowledge = gr.Button(t("privacy.got_it"), size="sm", scale=0)
            to_your_data = gr.Button(t("privacy.to_your_data"), size="sm", scale=0)
    return PrivacyBanner(accordion, markdown, opt_out, acknowledge, to_your_data)


def privacy_tab() -> PrivacyTab:
    """The policy as this code keeps it (PRIVACY.md, or PRIVACY.zh.md for Chinese visitors), and
    "your data": see, download, delete, opt out."""
    gr.Markdown(t("privacy.policy"), elem_id="privacy")
    gr.Markdown(t("privacy.your_data"))
    opt_out = gr.Checkbox(label=t("privacy.opt_out"), elem_id="data-opt-out")
    gr.Markdown(t("privacy.correction"))
    with gr.Row():
        show = gr.Button(t("privacy.show"))
        download = gr.DownloadButton(t("privacy.download"), visible=False)
        delete = gr.Button(t("privacy.delete"), variant="stop")
    with gr.Row(visible=False) as confirm_row:
        gr.Markdown(t("privacy.confirm_question"))
        confirm = gr.Button(t("privacy.confirm"), variant="stop")
        cancel = gr.Button(t("privacy.cancel"))
    status = gr.Markdown()
    shown = gr.JSON(label=t("privacy.shown"), elem_id="my-data")
    return PrivacyTab(opt_out, show, download, delete, confirm_row, confirm, cancel, status, shown)
