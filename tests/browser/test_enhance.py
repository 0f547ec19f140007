"""Enhancing a prompt from the page: it streams into the box, Undo brings the original back,
and "Enhance before generating" rewrites it before the image is made."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.helpers import (
    current_src,
    fill_in,
    is_queue_join,
    open_app,
    open_edit_tab,
    set_small_size,
    set_steps,
    wait_idle,
    wait_new_result,
)
from tests.conftest import RunningApp

ORIGINAL = "a red kite over the sea"


def test_enhance_then_undo(page: Page, running_app: RunningApp) -> None:
    open_app(page, running_app.url)
    box = page.get_by_role("textbox", name="Prompt", exact=True)
    fill_in(box, ORIGINAL)
    with page.expect_request(is_queue_join):
        page.get_by_role("button", name="Enhance prompt").first.click()
    expect(box).not_to_have_value(ORIGINAL)
    wait_idle(page)
    enhanced = box.input_value()
    assert enhanced and enhanced != ORIGINAL
    page.get_by_role("button", name="Undo enhance").first.click()
    expect(box).to_have_value(ORIGINAL)


def test_enhance_before_generating(page: Page, running_app: RunningApp) -> None:
    open_app(page, running_app.url)
    box = page.get_by_role("textbox", name="Prompt", exact=True)
    fill_in(box, ORIGINAL)
    set_small_size(page)
    set_steps(page, 2)
    page.get_by_role("checkbox", name="Enhance before generating").first.check()
    before = current_src(page)
    page.get_by_role("button", name="Generate", exact=True).click()
    wait_new_result(page, before)
    assert box.input_value() != ORIGINAL


def test_the_edit_tab_enhances_its_instruction(page: Page, running_app: RunningApp) -> None:
    open_app(page, running_app.url)
    panel = open_edit_tab(page)
    box = panel.get_by_role("textbox", name="Instruction")
    fill_in(box, "make it snowy")
    # Beside a CPU hog the box once kept its text for 30 s: this tells a click that never
    # reached the queue from an enhancement that did not change the text.
    with page.expect_request(is_queue_join):
        panel.get_by_role("button", name="Enhance prompt").click()
    expect(box).not_to_have_value("make it snowy")
