"""Making and editing images through the page: progress, result, seed, download, history."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import (
    SMALL,
    current_src,
    fill_in,
    generate,
    history_thumbnails,
    open_app,
    open_edit_tab,
    open_tab,
    paint_stroke,
    png_size,
    result_image,
    set_small_size,
    set_steps,
    upload_to_editor,
    wait_idle,
)
from tests.conftest import RunningApp
from zimage.page.edit import SAMPLES

STEPS = 20  # enough denoising steps (about 0.1 s each at 256x256 here) to watch the progress


def test_text_to_image_shows_progress_image_seed_and_downloads(
    page: Page, running_app: RunningApp
) -> None:
    open_app(page, running_app.url)
    fill_in(
        page.get_by_role("textbox", name="Prompt", exact=True), "a lighthouse on a basalt cliff"
    )
    set_small_size(page)
    set_steps(page, STEPS)
    before = current_src(page)
    assert before is None
    seed_used = page.get_by_role("tabpanel").get_by_role("textbox", name="Seed used")
    expect(seed_used).to_have_value("")  # no result, no seed
    page.get_by_role("button", name="Generate", exact=True).click()

    # While it runs, the Result shows the step progress ("Denoising") and the time, all at once,
    # until the first frame of the live preview takes its place (Gradio then shows the frames
    # instead of the tracker's text).
    status = page.locator("#result").get_by_test_id("status-tracker")
    progress = re.compile(rf"\d+/{STEPS} steps\s*\|\s*\d+\.\d+s[\s\S]*Denoising")
    shown: list[str] = []
    deadline = time.monotonic() + 300  # a hang bound
    while not progress.search(status.inner_text()):
        shown.append(current_src(page) or "")
        if shown[-1].endswith("/preview.png"):
            break  # a frame of the live preview
        assert time.monotonic() < deadline, f"neither progress nor a frame shown: {shown[-5:]}"
        time.sleep(0.02)

    expect(result_image(page)).to_have_attribute("src", re.compile(r"/gradio_api/file=.+\.png$"))
    expect(result_image(page)).to_have_js_property("complete", True)
    expect(status).to_have_class(re.compile(r"\bhide\b"))  # finished
    expect(seed_used).to_have_value(re.compile(r"^[1-9]\d*$"))
    seed = seed_used.input_value()
    wait_idle(page)
    # The history lists the same image under the same seed.
    thumbnails = history_thumbnails(page)
    expect(thumbnails).to_have_count(1)
    expect(thumbnails.get_by_role("img")).to_have_attribute("alt", re.compile(f"seed {seed} "))

    # The result gallery shows each image with its seed; the opened image has a download button.
    result = page.locator("#result")
    expect(result.get_by_role("button", name=re.compile("Thumbnail"))).to_contain_text(
        f"seed {seed}"
    )
    result.get_by_role("button", name=re.compile("Thumbnail")).first.click()
    with page.expect_download() as download_info:
        result.get_by_role("button", name="Download").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".png")
    data = Path(download.path()).read_bytes()
    assert png_size(data) == tuple(int(side) for side in SMALL.split("x"))


@pytest.mark.parametrize(("paint", "method"), [(False, "img2img"), (True, "inpaint")])
def test_edit_shows_before_and_after(
    page: Page, running_app: RunningApp, paint: bool, method: str
) -> None:
    open_app(page, running_app.url)
    panel = open_edit_tab(page)
    upload_to_editor(page, SAMPLES / "house.png")
    if paint:
        paint_stroke(page, page)
    fill_in(panel.get_by_role("textbox", name="Instruction"), "Make it a snowy evening")
    set_steps(page, 4)
    panel.get_by_role("button", name="Edit", exact=True).click()

    expect(panel.get_by_role("textbox", name="Method used")).to_have_value(method)
    expect(panel.get_by_role("textbox", name="Seed used")).to_have_value(re.compile(r"^\d+$"))
    slider = page.locator("#edit-result")
    # Before and after: the uploaded image and the result, two different files.
    images = slider.locator("img")
    expect(images).to_have_count(2)
    sources = {images.nth(index).get_attribute("src") for index in range(2)}
    assert len(sources) == 2, sources
    expect(slider.get_by_role("link", name="Download")).to_have_attribute(
        "href", re.compile(r"\.png$")
    )
    wait_idle(page)
    thumbnails = history_thumbnails(page)
    expect(thumbnails).to_have_count(1)
    expect(thumbnails.get_by_role("img")).to_have_attribute("alt", re.compile(f"^{method} · "))


def test_history_counts_down_and_delete_empties_it(page: Page, running_app: RunningApp) -> None:
    open_app(page, running_app.url)
    thumbnails = history_thumbnails(page)
    expect(thumbnails).to_have_count(0)
    generate(page)
    generate(page, prompt="a teapot with a blue glaze")
    expect(thumbnails).to_have_count(2)
    for index in range(2):
        expect(thumbnails.nth(index).get_by_role("img")).to_have_attribute(
            "alt", re.compile(r"^text-to-image · seed \d+ · deleted in (9|10):\d\d$")
        )
    privacy = open_tab(page, "Privacy and your data")
    privacy.get_by_role("button", name="Show my data").click()
    expect(page.locator("#my-data")).to_contain_text("deleted_in_s")

    page.get_by_role("button", name="Delete my images now").click()
    expect(thumbnails).to_have_count(0)
    # The server forgot them too: this browser's data lists no image in memory.
    privacy.get_by_role("button", name="Show my data").click()
    expect(page.locator("#my-data")).not_to_contain_text("deleted_in_s")
