"""What a visitor does on the page, as small steps the browser tests share.

`scope` is the page itself or the frame that holds the app (embedding tests).
"""

from __future__ import annotations

import re
import sqlite3
import warnings
from pathlib import Path

from playwright.sync_api import Frame, Locator, Page, expect

from tests.conftest import RunningApp
from zimage.translations import words

Scope = Page | Frame

OPT_OUT = "Keep my requests out of the usage log"
STORAGE_KEY = "zimage-space"  # gr.BrowserState's storage_key in zimage/page/page.py
SMALL = "256x256"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

IDLE_JS = """() => [...document.querySelectorAll('[data-testid="status-tracker"]')]
    .every((tracker) => tracker.classList.contains("hide"))"""


def is_queue_join(request) -> bool:
    return "/gradio_api/queue/join" in request.url


# A run's end may be far off: on a loaded 2-core machine the preview engine has taken 2.5 s a
# step at 256x256. The wait ends as soon as the page is idle.
IDLE_TIMEOUT_MS = 180_000


def wait_idle(scope: Scope) -> None:
    """Wait until no event is pending or running (every status tracker hidden)."""
    scope.wait_for_function(IDLE_JS, timeout=IDLE_TIMEOUT_MS)


def open_app(page: Page, url: str) -> None:
    """Load the app and wait until its page-load event (pseudonym, banner state) has run.

    The page-load event is the page's first queued event: once its request has left, the
    components it updates show as pending until it has finished.
    """
    with page.expect_request(is_queue_join):
        page.goto(url)
    wait_idle(page)
    expect(banner(page)).to_be_visible()


def reload(page: Page) -> None:
    with page.expect_request(is_queue_join):
        page.reload()
    wait_idle(page)
    expect(banner(page)).to_be_visible()


# -- privacy notice ---------------------------------------------------------------------------


def banner(scope: Scope) -> Locator:
    return scope.locator("#privacy-banner")


def banner_body(scope: Scope) -> Locator:
    """The part of the notice that shows while it is open."""
    return banner(scope).get_by_test_id("accordion-content")


def banner_opt_out(scope: Scope) -> Locator:
    return banner(scope).get_by_role("checkbox", name=OPT_OUT)


def stored_choices(scope: Scope) -> str | None:
    """The encrypted BrowserState value in localStorage (None before the first save)."""
    return scope.evaluate("(key) => window.localStorage.getItem(key)", STORAGE_KEY)


def wait_stored_change(scope: Scope, before: str | None) -> None:
    """Wait until the browser has saved a new value of the visitor's choices."""
    scope.wait_for_function(
        "([key, before]) => window.localStorage.getItem(key) !== before", arg=[STORAGE_KEY, before]
    )


def open_tab(scope: Scope, name: str) -> Locator:
    tab = scope.get_by_role("tab", name=name, exact=True)
    tab.click()
    expect(tab).to_have_attribute("aria-selected", "true")
    return scope.get_by_role("tabpanel")


def open_edit_tab(scope: Scope) -> Locator:
    """Open the Edit tab once its image editor is ready (it shows its toolbar then). The editor
    grows by about 400 px when it mounts, up to seconds after the tab shows on a loaded machine,
    and moves everything below it: a click aimed before that lands on the editor (an Enhance
    click was lost so), and a file given to the editor sooner is lost."""
    panel = open_tab(scope, "Edit")
    expect(scope.locator("#edit-image").get_by_role("button", name="Clear canvas")).to_be_visible()
    return panel


def fill_in(field: Locator, value: str, *, press: str = "", shows: Locator | None = None) -> None:
    """Type `value` into a field (then press a key) and wait until `shows` has the value.

    Typing goes to whatever has the focus when it arrives: if the page re-renders the field in
    between (an accordion opening, say), it is lost. So it is checked, and typed again if lost.
    """
    shows = shows or field
    for attempt in range(3):
        field.fill(value)
        if press:
            field.press(press)
        try:
            expect(shows).to_have_value(value, timeout=3_000)
            return
        except AssertionError:
            if attempt == 2:
                raise
            warnings.warn(f"typing {value!r} into {field} was lost; typing it again", stacklevel=2)


# -- text to image ----------------------------------------------------------------------------


def result_image(scope: Scope) -> Locator:
    return scope.locator("#result img")


def set_small_size(scope: Scope, language: str = "en") -> None:
    """Type a custom size into the resolution dropdown (it accepts any WIDTHxHEIGHT)."""
    box = scope.get_by_role("combobox", name=words("generate.resolution", language))
    fill_in(box, SMALL, press="Enter")


def set_steps(scope: Scope, steps: int) -> None:
    panel = scope.get_by_role("tabpanel")
    advanced = panel.get_by_role("button", name="Advanced settings")
    steps_box = panel.get_by_role("spinbutton", name="number input for Steps")
    if not steps_box.is_visible():
        advanced.click()
    slider = panel.get_by_role("slider", name="range slider for Steps")
    fill_in(steps_box, str(steps), press="Enter", shows=slider)


def current_src(scope: Scope) -> str | None:
    image = result_image(scope)
    return image.get_attribute("src") if image.count() else None


def wait_new_result(scope: Scope, before: str | None) -> str:
    """Wait until the Result shows an image other than `before`; returns its URL."""
    scope.wait_for_function(
        """(before) => {
            const image = document.querySelector("#result img");
            return image !== null && image.complete && image.naturalWidth > 0
                && image.getAttribute("src") !== before;
        }""",
        arg=before,
        timeout=IDLE_TIMEOUT_MS,  # a run's end: a hang bound, not a speed
    )
    wait_idle(scope)  # the history refresh that follows each run
    return result_image(scope).get_attribute("src")


def generate(scope: Scope, prompt: str = "a red kite over a grey sea") -> str:
    """Text to image at 256x256 through the form; returns the Result image's URL."""
    open_tab(scope, "Text to image")
    fill_in(scope.get_by_role("textbox", name="Prompt", exact=True), prompt)
    set_small_size(scope)
    before = current_src(scope)
    scope.get_by_role("button", name="Generate", exact=True).click()
    return wait_new_result(scope, before)


# -- edit -------------------------------------------------------------------------------------


def upload_to_editor(scope: Scope, image: Path) -> None:
    """Give the editor an image (on the Edit tab opened with `open_edit_tab`)."""
    editor = scope.locator("#edit-image")
    editor.locator("input[type=file]").set_input_files(image)
    expect(editor.get_by_text("Upload an image or select the draw tool")).to_be_hidden()


def paint_stroke(scope: Scope, page: Page) -> None:
    """Drag the brush across the middle of the editor's canvas (the server then reports
    "inpaint", which proves the stroke reached it as a mask)."""
    editor = scope.locator("#edit-image")
    editor.get_by_role("button", name="Brush", exact=True).click()
    box = editor.locator("canvas").first.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.35)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.65, steps=12)
    page.mouse.up()


# -- history and your data --------------------------------------------------------------------


def history_thumbnails(scope: Scope) -> Locator:
    return scope.locator("#history").get_by_role("button", name=re.compile(r"^Thumbnail \d+ of"))


def usage_rows(app: RunningApp, pseudonym: str | None = None) -> int:
    """Rows in the app's usage log (every row recorded so far stored first)."""
    with sqlite3.connect(app.usage_db) as connection:
        if pseudonym is None:
            return connection.execute("SELECT COUNT(*) FROM usage").fetchone()[0]
        return connection.execute(
            "SELECT COUNT(*) FROM usage WHERE pseudonym = ?", (pseudonym,)
        ).fetchone()[0]


def newest_usage(app: RunningApp, columns: str = "endpoint, outcome") -> tuple | None:
    """`columns` of the usage log's newest row (None while it is empty)."""
    with sqlite3.connect(app.usage_db) as connection:
        return connection.execute(f"SELECT {columns} FROM usage ORDER BY id DESC").fetchone()


def messages_shown(scope: Scope) -> list[str]:
    """The texts of the messages (toasts) the page shows now."""
    return scope.get_by_test_id("toast-body").all_inner_texts()


def newest_pseudonym(app: RunningApp) -> str:
    newest = newest_usage(app, "pseudonym")
    assert newest is not None, "the usage log is empty"
    return newest[0]


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG_MAGIC), data[:16]
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# -- accessibility ----------------------------------------------------------------------------

# WCAG 2.0, 2.1 and 2.2, levels A and AA; what axe-core rates serious or critical fails a test.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]
AXE_RUN_JS = """async (tags) => {
  const result = await axe.run(document, { runOnly: { type: "tag", values: tags } });
  return result.violations
    .filter((violation) => ["serious", "critical"].includes(violation.impact))
    .map((violation) => `${violation.id} (${violation.impact}): ${violation.help} at `
      + violation.nodes.map((node) => `${node.target.join(" ")} ${node.html.slice(0, 300)} `
        + (node.any[0]?.message ?? "")).join(", "));
}"""

SETTLED_JS = """() =>
  [...document.querySelectorAll('[data-testid="status-tracker"].hide')]
    .every((tracker) => getComputedStyle(tracker).opacity === "0")
  && [...document.querySelectorAll('[data-testid="toast-body"]')]
    .every((message) => getComputedStyle(message).opacity === "1")"""


def serious_accessibility_faults(page: Page, axe_script: Path) -> list[str]:
    """axe-core's serious and critical WCAG A/AA violations on the page as it is now, once
    progress overlays have faded out and messages in (text is not judged halfway through)."""
    page.wait_for_function(SETTLED_JS)
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=str(axe_script))
    return page.evaluate(AXE_RUN_JS, AXE_TAGS)
