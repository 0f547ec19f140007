"""A run besides its result: Stop usable only while a run goes, a stopped run saying where it
stopped with its half-formed picture and the last seed cleared; Undo enhance only when there is
something to undo; the example cards; and a first visit on a laptop screen, the privacy notice
open above the prompt and Generate."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.helpers import (
    banner_body,
    fill_in,
    messages_shown,
    newest_usage,
    open_app,
    result_image,
    serious_accessibility_faults,
    wait_idle,
)
from tests.conftest import RunningApp
from zimage.translations import (
    EXAMPLE_PROMPTS,
    EXAMPLE_SETTINGS,
    LANGUAGE_NAMES,
    example_card,
    words,
)

ZH = "zh-CN"
LAPTOP = {"width": 1366, "height": 768}
LONG_STEPS = 50
LANGUAGES = pytest.mark.parametrize(
    ("context", "language"),
    [({"locale": "en-US"}, "en"), ({"locale": ZH}, ZH)],
    indirect=["context"],
)


def button(page: Page, key: str, language: str = "en") -> Locator:
    name = words(key, language)
    return page.get_by_role("tabpanel").get_by_role("button", name=name, exact=True)


def seed_used(page: Page, language: str = "en") -> Locator:
    return page.get_by_role("tabpanel").get_by_role(
        "textbox", name=words("controls.seed_used", language)
    )


def run_in(page: Page, language: str, prompt: str, size: str, steps: int) -> None:
    """Fill the Text to image form through the labels of `language` and press Generate."""
    panel = page.get_by_role("tabpanel")
    fill_in(panel.get_by_role("textbox", name=words("generate.prompt", language)), prompt)
    size_box = panel.get_by_role("combobox", name=words("generate.resolution", language))
    fill_in(size_box, size, press="Enter")
    label = words("controls.steps", language)
    steps_box = panel.get_by_role("spinbutton", name=f"number input for {label}")
    if not steps_box.is_visible():
        panel.get_by_role("button", name=words("controls.advanced", language)).click()
    slider = panel.get_by_role("slider", name=f"range slider for {label}")
    fill_in(steps_box, str(steps), press="Enter", shows=slider)
    button(page, "generate.run", language).click()


@LANGUAGES
def test_stop_says_where_the_run_stopped_and_clears_its_picture_and_seed(
    page: Page, roomy_app: RunningApp, axe_script: Path, language: str
) -> None:
    open_app(page, roomy_app.url)
    stop = button(page, "controls.stop", language)
    status = page.locator("#generate-status")
    expect(stop).to_be_disabled()  # nothing to stop
    run_in(page, language, "a first kite", "256x256", steps=2)
    expect(result_image(page)).to_have_attribute("src", re.compile(r"/zimage\.png$"))
    expect(seed_used(page, language)).to_have_value(re.compile(r"^\d+$"))
    wait_idle(page)
    expect(stop).to_be_disabled()

    run_in(page, language, "a slow lighthouse", "512x512", steps=LONG_STEPS)
    expect(stop).to_be_enabled()
    # The picture forms (frames are served as preview.png) and the last run's seed is gone.
    frame = re.compile(r"/preview\.png$")
    expect(result_image(page)).to_have_attribute("src", frame, timeout=120_000)
    expect(seed_used(page, language)).to_have_value("")
    stop.click()

    said = re.escape(words("message.stopped_at", language, step=999, total=LONG_STEPS))
    expect(status).to_have_text(re.compile(r"^\s*" + said.replace("999", r"\d+") + r"\s*$"))
    expect(status).to_have_attribute("role", "status")
    expect(result_image(page)).to_have_count(0)  # no half-formed picture left
    expect(seed_used(page, language)).to_have_value("")
    expect(stop).to_be_disabled()
    wait_idle(page)
    assert serious_accessibility_faults(page, axe_script) == []

    run_in(page, language, "a second kite", "256x256", steps=2)  # the next run clears it
    expect(result_image(page)).to_have_attribute("src", re.compile(r"/zimage\.png$"))
    expect(status).to_have_text("")


def test_undo_enhance_is_usable_only_when_there_is_something_to_undo(
    page: Page, running_app: RunningApp
) -> None:
    open_app(page, running_app.url)
    box = page.get_by_role("textbox", name="Prompt", exact=True)
    undo = page.get_by_role("button", name="Undo enhance").first
    expect(undo).to_be_disabled()
    fill_in(box, "a red kite over the sea")
    page.get_by_role("button", name="Enhance prompt").first.click()
    expect(undo).to_be_enabled()
    wait_idle(page)
    # Failed once in CI with the text unchanged: say what the page and the app's log showed.
    assert box.input_value() != "a red kite over the sea", (
        messages_shown(page),
        newest_usage(running_app),
    )
    undo.click()
    expect(box).to_have_value("a red kite over the sea")
    expect(undo).to_be_disabled()  # undone: nothing left to undo


@LANGUAGES
def test_example_cards_show_and_fill_in_their_settings(
    page: Page, running_app: RunningApp, language: str
) -> None:
    open_app(page, running_app.url)
    panel = page.get_by_role("tabpanel")
    for settings in EXAMPLE_SETTINGS:
        card = panel.get_by_role("button", name=example_card(settings, language))
        expect(card).to_be_visible()
        for shown in (settings.resolution, str(settings.steps), LANGUAGE_NAMES[language]):
            expect(card).to_contain_text(shown)
    # Other values first, so that the card's are seen to arrive.
    prompt = panel.get_by_role("textbox", name=words("generate.prompt", language))
    size_box = panel.get_by_role("combobox", name=words("generate.resolution", language))
    fill_in(size_box, "256x256", press="Enter")
    panel.get_by_role("button", name=words("controls.advanced", language)).click()
    label = words("controls.steps", language)
    slider = panel.get_by_role("slider", name=f"range slider for {label}")
    steps_box = panel.get_by_role("spinbutton", name=f"number input for {label}")
    fill_in(steps_box, "3", press="Enter", shows=slider)

    chosen = EXAMPLE_SETTINGS[2]
    panel.get_by_role("button", name=example_card(chosen, language)).click()
    expect(prompt).to_have_value(EXAMPLE_PROMPTS[language][2])
    expect(size_box).to_have_value(re.compile(f"^{chosen.resolution}"))
    expect(slider).to_have_value(str(chosen.steps))


@pytest.mark.parametrize(
    ("context", "language"),
    [({"viewport": LAPTOP}, "en"), ({"viewport": LAPTOP, "locale": ZH}, ZH)],
    indirect=["context"],
)
def test_a_first_visit_on_a_laptop_shows_the_notice_open_and_generate(
    page: Page, running_app: RunningApp, language: str
) -> None:
    open_app(page, running_app.url)
    expect(banner_body(page)).to_be_visible()  # a first visit: the notice is open
    assert page.evaluate("window.scrollY") == 0
    for part in ("#privacy-banner", "#prompt", "#generate-button"):
        box = page.locator(part).bounding_box()
        assert box is not None and box["y"] + box["height"] <= LAPTOP["height"], (part, box)
    expect(page.locator("#generate-button")).to_be_in_viewport(ratio=1)
    expect(page.locator("#prompt textarea")).to_be_in_viewport(ratio=1)
