"""A run as a visitor sees it: the picture forming, Stop, leaving mid-run, and an opt-out
ticked in the very moment Generate is pressed."""

from __future__ import annotations

import re
import tempfile

from gradio_client import Client
from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.browser.helpers import (
    IDLE_TIMEOUT_MS,
    banner_opt_out,
    current_src,
    fill_in,
    open_app,
    result_image,
    set_small_size,
    set_steps,
    usage_rows,
    wait_idle,
    wait_new_result,
)
from tests.conftest import TEST_FOLDER, RunningApp
from tests.launcher import wait_until

LONG_STEPS = 50


def start_long_run(page: Page, steps: list[int], size: str = "768x768") -> None:
    """Press Generate for a long run and wait until its first step ran (`steps`, from
    `counting_steps`): told by the engine, not by a progress text the page may show too
    briefly to be seen."""
    fill_in(page.get_by_role("textbox", name="Prompt", exact=True), "a slow lighthouse")
    box = page.get_by_role("combobox", name="Resolution (width x height)")
    fill_in(box, size, press="Enter")
    set_steps(page, LONG_STEPS)
    page.get_by_role("button", name="Generate", exact=True).click()
    wait_until(lambda: steps, IDLE_TIMEOUT_MS / 1000, "the long run never started")


def start_small_run(page: Page, prompt: str, steps: int) -> Locator:
    """Press Generate for a 256x256 run of `steps` steps; the result's status tracker."""
    fill_in(page.get_by_role("textbox", name="Prompt", exact=True), prompt)
    set_small_size(page)
    set_steps(page, steps)
    page.get_by_role("button", name="Generate", exact=True).click()
    return page.locator("#result").get_by_test_id("status-tracker")


def quick_run(page: Page) -> None:
    """A 1-step 256x256 run on this page, to its picture."""
    fill_in(page.get_by_role("textbox", name="Prompt", exact=True), "a quick kite")
    set_small_size(page)
    set_steps(page, 1)
    before = current_src(page)
    page.get_by_role("button", name="Generate", exact=True).click()
    wait_new_result(page, before)


# Every picture the Result shows, in order, recorded by the page itself as it changes (a test
# that looked now and then would miss frames on a busy machine, or all of them on a fast one).
RECORD_RESULT_SOURCES_JS = """() => {
    window.resultSources = [];
    const record = () => {
        const image = document.querySelector("#result img");
        const source = image && image.getAttribute("src");
        if (source && window.resultSources.at(-1) !== source) window.resultSources.push(source);
    };
    new MutationObserver(record).observe(document.querySelector("#result"),
        {subtree: true, childList: true, attributes: true, attributeFilter: ["src"]});
}"""
FINISHED_IMAGE_JS = """() => (document.querySelector("#result img")?.getAttribute("src") || "")
    .endsWith("/zimage.png")"""


def test_the_picture_forms_while_it_is_made(page: Page, running_app: RunningApp) -> None:
    open_app(page, running_app.url)
    page.evaluate(RECORD_RESULT_SOURCES_JS)
    start_small_run(page, "a lighthouse at dusk", steps=20)
    page.wait_for_function(FINISHED_IMAGE_JS, timeout=IDLE_TIMEOUT_MS)
    wait_idle(page)
    seen = page.evaluate("() => window.resultSources")
    # Several frames replaced each other (the visitor's preview.png files), then the finished
    # image took their place.
    frames = [src for src in seen if src.endswith("/preview.png")]
    assert len(frames) >= 4, seen
    expect(result_image(page)).to_have_attribute("src", re.compile(r"/zimage\.png$"))


def test_stop_ends_the_run_and_frees_the_gpu(page: Page, roomy_app: RunningApp) -> None:
    open_app(page, roomy_app.url)
    with roomy_app.counting_steps() as steps:
        start_long_run(page, steps)
        page.get_by_role("button", name="Stop", exact=True).click()
        wait_idle(page)
        quick_run(page)
    # One GPU slot: the quick run came once the long one had stopped, before its last step.
    assert len(steps) < LONG_STEPS, len(steps)


def test_stop_while_waiting_in_the_queue_ends_the_run_as_its_turn_comes(
    page: Page, roomy_app: RunningApp
) -> None:
    # A script's two long runs take both GPU slots, so the page's run waits in Gradio's queue.
    script = Client(
        roomy_app.url,
        verbose=False,
        analytics_enabled=False,
        download_files=tempfile.mkdtemp(prefix="stop-", dir=TEST_FOLDER),
    )
    long_runs = [
        script.submit(
            f"a slow lighthouse {index}",
            "768x768",
            index,
            False,
            LONG_STEPS,
            3.0,
            1,
            False,
            api_name="/text_to_image",
        )
        for index in range(2)
    ]
    open_app(page, roomy_app.url)
    tracker = start_small_run(page, "a quick kite", steps=1)
    expect(tracker).to_contain_text(re.compile("queue", re.IGNORECASE))
    page.get_by_role("button", name="Stop", exact=True).click()
    for run in long_runs:
        run.cancel()
    wait_idle(page)
    # Its turn came and it ended before any GPU work: no picture.
    assert current_src(page) is None
    script.close()


def test_leaving_mid_run_frees_the_gpu(context: BrowserContext, roomy_app: RunningApp) -> None:
    leaving = context.new_page()
    open_app(leaving, roomy_app.url)
    with roomy_app.counting_steps() as steps:
        start_long_run(leaving, steps)
        leaving.close()
        staying = context.new_page()
        open_app(staying, roomy_app.url)
        quick_run(staying)
    assert len(steps) < LONG_STEPS, len(steps)


def test_an_opt_out_ticked_as_generate_is_pressed_is_honoured(
    page: Page, running_app: RunningApp
) -> None:
    open_app(page, running_app.url)
    fill_in(page.get_by_role("textbox", name="Prompt", exact=True), "a private kite")
    set_small_size(page)
    set_steps(page, 1)
    before_rows = usage_rows(running_app)
    before = current_src(page)
    # Both clicks in one task of the page: the stored choice cannot have been updated yet.
    checkbox = banner_opt_out(page)
    page.evaluate(
        """([box, button]) => { box.click(); button.click(); }""",
        [
            checkbox.element_handle(),
            page.get_by_role("button", name="Generate", exact=True).element_handle(),
        ],
    )
    wait_new_result(page, before)
    wait_idle(page)
    assert usage_rows(running_app) == before_rows
