"""Where things sit: the folded notice leaves the tool on a laptop screen, and README's iframe
height holds the whole page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.helpers import (
    banner,
    banner_body,
    fill_in,
    open_app,
    open_edit_tab,
    reload,
    set_small_size,
    wait_idle,
)
from tests.conftest import RunningApp
from zimage.translations import EXAMPLE_EDITS, words

README = Path(__file__).resolve().parents[2] / "README.md"
LAPTOP = {"width": 1366, "height": 768}
# Widths of the page that embeds the Space for which README's iframe height is promised.
EMBED_WIDTHS = (1024, 1280)


def readme_iframe_height() -> int:
    snippet = re.search(r"<iframe [^>]*>", README.read_text(encoding="utf-8"))
    assert snippet is not None, "README.md has no iframe snippet"
    return int(re.search(r'height="(\d+)"', snippet.group(0)).group(1))


def bottom(page: Page, selector: str) -> float:
    box = page.locator(selector).bounding_box()
    assert box is not None, selector
    return box["y"] + box["height"]


@pytest.mark.parametrize(
    ("context", "language"),
    [({"viewport": LAPTOP}, "en"), ({"viewport": LAPTOP, "locale": "zh-CN"}, "zh-CN")],
    indirect=["context"],
)
def test_once_read_the_notice_is_one_line_and_the_tool_fits_a_laptop_screen(
    page: Page, running_app: RunningApp, language: str
) -> None:
    open_app(page, running_app.url)
    banner(page).get_by_role("button", name=words("privacy.got_it", language)).click()
    expect(banner_body(page)).to_be_hidden()
    reload(page)  # a later visit: the notice stays folded
    expect(banner_body(page)).to_be_hidden()

    notice = banner(page).bounding_box()
    assert notice is not None and notice["height"] <= 60, notice  # one line
    assert page.evaluate("window.scrollY") == 0
    for part in ("#prompt", "#generate-button", "#result"):
        assert bottom(page, part) <= LAPTOP["height"], f"{part} is below the fold"
    expect(page.locator("#generate-button")).to_be_in_viewport(ratio=1)


def page_height(page: Page) -> int:
    return page.evaluate("document.documentElement.scrollHeight")


def test_readme_iframe_height_holds_the_page_without_cutting_anything(
    browser: Browser, running_app: RunningApp
) -> None:
    """At README's height the tabs a visitor works in never scroll, in the tallest states: the
    notice open, four images and the history shown, an edit shown (the long policy in the
    Privacy tab scrolls, as README says)."""
    height = readme_iframe_height()
    measured: dict[str, int] = {}
    for width in EMBED_WIDTHS:
        context = browser.new_context(viewport={"width": width, "height": height})
        try:
            page = context.new_page()
            open_app(page, running_app.url)
            measured[f"{width}: first visit"] = page_height(page)
            panel = page.get_by_role("tabpanel")
            fill_in(panel.get_by_role("textbox", name="Prompt", exact=True), "four red kites")
            set_small_size(page)
            images = panel.get_by_role("spinbutton", name="number input for Images")
            fill_in(images, "4", press="Enter")
            panel.get_by_role("button", name="Generate", exact=True).click()
            thumbnails = page.locator("#result").get_by_role("button", name=re.compile("^Thumb"))
            expect(thumbnails).to_have_count(4)
            expect(page.locator("#history img")).to_have_count(4)
            wait_idle(page)
            measured[f"{width}: four images and the history"] = page_height(page)
            panel = open_edit_tab(page)
            panel.get_by_text(EXAMPLE_EDITS["en"][0][1], exact=True).click()
            panel.get_by_role("button", name="Edit", exact=True).click()
            expect(panel.get_by_role("textbox", name="Method used")).to_have_value("img2img")
            wait_idle(page)
            measured[f"{width}: an edit"] = page_height(page)
        finally:
            context.close()
    assert max(measured.values()) <= height, measured
    # And not far more than needed: README's figure tracks the page.
    assert height - max(measured.values()) <= 150, measured
