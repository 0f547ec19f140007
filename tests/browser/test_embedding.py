"""The Space inside an <iframe> on another site's page, and what the page fetches."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Frame, Page, expect

from tests.browser.helpers import (
    IDLE_JS,
    OPT_OUT,
    banner_body,
    banner_opt_out,
    generate,
    is_queue_join,
    open_app,
    open_edit_tab,
    open_tab,
    upload_to_editor,
    usage_rows,
    wait_idle,
)
from tests.conftest import RunningApp
from zimage.page.edit import SAMPLES
from zimage.privacy.policy import POLICY_VERSION

# In frames: storage throws, as in a browser that refuses it there; refusals are counted in
# `window.storageRefusals`, uncaught errors kept in `window.uncaughtErrors`.
REFUSE_STORAGE_IN_FRAMES = """
if (window !== window.top) {
  window.storageRefusals = 0;
  window.uncaughtErrors = [];
  window.addEventListener("error", (event) => window.uncaughtErrors.push(event.message));
  window.addEventListener("unhandledrejection", (event) => {
    window.uncaughtErrors.push(String(event.reason));
  });
  Object.defineProperty(window, "localStorage", {
    configurable: true,
    get() {
      window.storageRefusals += 1;
      throw new DOMException("The user denied storage.", "SecurityError");
    },
  });
}
"""
STORAGE_STATE_JS = """() => {
  try { window.localStorage.getItem("probe"); return "usable"; }
  catch (error) { return error.name; }
}"""


@pytest.fixture(scope="module")
def embedding_site(running_app: RunningApp) -> Iterator[int]:
    """A second local web server whose page embeds the app; yields its port."""
    page = (
        "<!doctype html><html lang='en'><title>A page that embeds the Space</title>"
        "<h1>Embedding page</h1>"
        f"<iframe id='space' title='Z-Image Space' src='{running_app.url}/' "
        "style='width: 1200px; height: 1600px; border: 0'></iframe></html>"
    ).encode()

    class EmbeddingPage(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), EmbeddingPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def open_embedded(page: Page, embedding_url: str, app_url: str, idle: bool = True) -> Frame:
    """Open the embedding page; return the app's frame once its page-load event has run."""
    with page.expect_request(is_queue_join):
        page.goto(embedding_url)
    frame = page.frame(url=lambda url: url.startswith(app_url))
    assert frame is not None and frame.parent_frame is page.main_frame
    if idle:
        wait_idle(frame)
    return frame


def test_embedded_on_another_origin(
    page: Page, running_app: RunningApp, embedding_site: int
) -> None:
    embedding_url = f"http://127.0.0.1:{embedding_site}/"
    frame = open_embedded(page, embedding_url, running_app.url)
    assert urlsplit(frame.url).netloc != urlsplit(page.url).netloc  # another origin
    assert frame.evaluate(STORAGE_STATE_JS) == "usable"
    expect(banner_body(frame)).to_be_visible()
    expect(banner_body(frame)).to_contain_text(f"policy version {POLICY_VERSION}")

    rows = usage_rows(running_app)
    generate(frame)
    assert usage_rows(running_app) == rows + 1
    seed_used = frame.get_by_role("tabpanel").get_by_role("textbox", name="Seed used")
    expect(seed_used).to_have_value(re.compile(r"^\d+$"))


def test_embedded_cross_site_with_storage_refused(
    page: Page,
    context: BrowserContext,
    running_app: RunningApp,
    embedding_site: int,
    page_errors: list[str],
) -> None:
    context.add_init_script(REFUSE_STORAGE_IN_FRAMES)
    # localhost and 127.0.0.1 are different sites: the app is a third-party frame here.
    embedding_url = f"http://localhost:{embedding_site}/"
    try:
        frame = open_embedded(page, embedding_url, running_app.url, idle=False)
        # The page settles, or something it could not handle is thrown.
        frame.wait_for_function(f"() => window.uncaughtErrors.length > 0 || ({IDLE_JS})()")
        assert frame.evaluate("() => window.uncaughtErrors") == []
        assert frame.evaluate("() => window.storageRefusals") > 0  # it asked and was refused
        expect(banner_body(frame)).to_be_visible()
        expect(banner_body(frame)).to_contain_text(f"policy version {POLICY_VERSION}")

        # The opt-out holds for the page even though the browser cannot keep it.
        rows = usage_rows(running_app)
        for opt_out, logged in ((True, 0), (False, 1)):
            banner_opt_out(frame).set_checked(opt_out)
            # The toggle in "Your data" follows once the choice is in the page's state.
            privacy = open_tab(frame, "Privacy and your data")
            expect(privacy.get_by_role("checkbox", name=OPT_OUT)).to_be_checked(checked=opt_out)
            generate(frame)
            assert usage_rows(running_app) == rows + logged
        assert page_errors == []
    finally:
        page_errors.clear()  # reported above, not again by the page fixture


def test_page_loads_nothing_from_other_origins(page: Page, running_app: RunningApp) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("websocket", lambda socket: requested.append(socket.url))
    open_app(page, running_app.url)
    generate(page)
    open_edit_tab(page)
    upload_to_editor(page, SAMPLES / "house.png")
    open_tab(page, "Privacy and your data").get_by_role("button", name="Show my data").click()
    expect(page.locator("#my-data")).to_contain_text("usage_rows")
    open_tab(page, "Text to image")
    wait_idle(page)

    origin = running_app.url
    foreign = [
        url
        for url in requested
        if not (url.startswith(f"{origin}/") or url.startswith(("data:", "blob:")))
    ]
    assert len(requested) > 20  # the log saw the page's own scripts, styles and images
    assert foreign == []
    # Fonts are the system's: the page declares no web font.
    assert page.evaluate("() => [...document.fonts].map((font) => font.family)") == []
