"""The page's choice of model (issue 27): Base's fields appear only with Base, the steps follow
the model picked, and "reuse settings" brings a Base image's model and fields back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import (
    fill_in,
    generate,
    history_thumbnails,
    open_app,
    open_tab,
    set_steps,
    wait_idle,
)
from tests.conftest import RunningApp, serve

TURBO = "Turbo: fast (8 steps)"
BASE = "Base: more variety, negative prompt (50 steps)"


@pytest.fixture(scope="module")
def base_app() -> Iterator[RunningApp]:
    yield from serve({"ZIMAGE_BASE_MODEL": "Tongyi-MAI/Z-Image"})


def steps_box(page: Page):
    panel = page.get_by_role("tabpanel")
    box = panel.get_by_role("spinbutton", name="number input for Steps")
    if not box.is_visible():
        panel.get_by_role("button", name="Advanced settings").click()
    return box


def test_base_fields_follow_the_model_and_reuse_brings_them_back(
    page: Page, base_app: RunningApp
) -> None:
    open_app(page, base_app.url)
    open_tab(page, "Text to image")
    negative = page.get_by_role("textbox", name="Negative prompt")
    guidance = page.get_by_role("spinbutton", name="number input for Guidance")
    expect(page.get_by_text("Both models are loaded")).to_be_visible()
    expect(page.get_by_role("radio", name=TURBO)).to_be_checked()
    expect(negative).to_be_hidden()

    page.get_by_role("radio", name=BASE).check()
    expect(negative).to_be_visible()
    expect(guidance).to_have_value("4")
    expect(steps_box(page)).to_have_value("50")  # Base's own steps
    fill_in(negative, "blurry, text")
    set_steps(page, 1)
    generate(page, "a lighthouse at dusk")

    page.get_by_role("radio", name=TURBO).check()
    expect(negative).to_be_hidden()
    expect(steps_box(page)).to_have_value("8")

    history_thumbnails(page).first.click()
    wait_idle(page)
    expect(page.get_by_role("radio", name=BASE)).to_be_checked()
    expect(negative).to_be_visible()
    expect(negative).to_have_value("blurry, text")
    expect(steps_box(page)).to_have_value("1")


def test_a_space_without_base_shows_no_choice_of_model(page: Page, running_app: RunningApp) -> None:
    open_app(page, running_app.url)
    open_tab(page, "Text to image")
    expect(page.get_by_role("textbox", name="Prompt", exact=True)).to_be_visible()
    expect(page.get_by_role("radio", name=TURBO)).to_be_hidden()
    expect(page.get_by_role("textbox", name="Negative prompt")).to_be_hidden()
