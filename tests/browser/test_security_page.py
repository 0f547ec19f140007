"""The page as a browser sees it: the key stays on the server, our error messages show word
for word, only the camera and clipboard may be used, and framing can be restricted."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, Response, expect

from tests.browser.helpers import generate, open_app, open_tab
from tests.conftest import RunningApp, serve

FEATURES_JS = """(features) => features.map(
    (feature) => [feature, document.featurePolicy.allowsFeature(feature)])"""


def test_nothing_the_page_loads_holds_the_key(page: Page, running_app: RunningApp) -> None:
    key = (Path(running_app.settings.data_dir) / "browser-state.key").read_text()
    responses: list[Response] = []
    page.on("response", lambda response: responses.append(response))
    open_app(page, running_app.url)
    generate(page)
    open_tab(page, "Privacy and your data").get_by_role("button", name="Show my data").click()
    expect(page.locator("#my-data")).to_contain_text("usage_rows")
    finished = [
        response
        for response in responses
        # The heartbeat stream stays open as long as the page: its body never ends.
        if "/heartbeat/" not in response.url
    ]
    bodies = {}
    for response in finished:
        try:
            bodies[response.url] = response.body()
        except PlaywrightError:  # a body the browser did not keep (a redirect, say)
            continue
    assert len(bodies) >= 10, "the page, its scripts, config and answers"
    assert [url for url, body in bodies.items() if key.encode() in body] == []


def test_our_error_message_shows_word_for_word(page: Page, running_app: RunningApp) -> None:
    open_app(page, running_app.url)
    open_tab(page, "Text to image")
    page.get_by_role("button", name="Generate", exact=True).click()
    expect(page.get_by_text("The prompt is empty: please write one.")).to_be_visible()


def test_the_page_may_use_only_camera_clipboard_and_fullscreen(
    page: Page, running_app: RunningApp
) -> None:
    open_app(page, running_app.url)
    allowed = dict(
        page.evaluate(
            FEATURES_JS,
            [
                "camera",
                "clipboard-read",
                "clipboard-write",
                "fullscreen",
                "geolocation",
                "microphone",
                "payment",
                "usb",
                "display-capture",
            ],
        )
    )
    assert allowed == {
        "camera": True,
        "clipboard-read": True,
        "clipboard-write": True,
        "fullscreen": True,
        "geolocation": False,
        "microphone": False,
        "payment": False,
        "usb": False,
        "display-capture": False,
    }


def embedding_page(app_url: str) -> Iterator[str]:
    """A page on another origin that frames ``app_url``; yields its URL."""
    html = (
        "<!doctype html><html lang='en'><title>Embedding page</title>"
        f"<iframe id='space' title='Z-Image Space' src='{app_url}/'></iframe></html>"
    ).encode()

    class EmbeddingPage(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), EmbeddingPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_operator_restricted_framing_is_refused_by_the_browser(page: Page) -> None:
    app = serve({"ZIMAGE_FRAME_ANCESTORS": "'self'"})
    running = next(app)
    site = embedding_page(running.url)
    try:
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        with page.expect_event("framenavigated", lambda frame: frame.parent_frame is not None):
            page.goto(next(site))
        page.wait_for_load_state("load")
        assert [frame.url for frame in page.frames if frame.url.startswith(running.url)] == []
        assert not [url for url in requested if url.startswith(f"{running.url}/config")]
    finally:
        site.close()
        app.close()
