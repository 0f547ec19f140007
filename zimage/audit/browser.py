"""The page as a visitor's browser loads it: headless Chromium (through Playwright, when both are
installed) opens it and each of its tabs, recording every request the page makes. A request
to another host is recorded and stopped, never sent."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from zimage.audit.model import AuditError

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = [
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
# The page has settled when it asks for no new file for this long.
SETTLE_S = 2.0
LOAD_TIMEOUT_S = 90.0


class BrowserUnavailable(Exception):
    """No headless browser can run here; the message says why."""


@dataclass(frozen=True)
class PageLoad:
    requested: list[str]
    tabs_opened: int


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def is_local(url: str) -> bool:
    """URLs that reach no host (inline data, the page's own blobs)."""
    return url.startswith(("data:", "blob:", "about:"))


def load_page(url: str) -> PageLoad:
    """Open `url` and each of its tabs; every URL the page requested, in order."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        raise BrowserUnavailable("Playwright is not installed") from None
    origin = origin_of(url)
    # Chromium refuses its sandbox to root (containers, CI); elsewhere the sandbox stays on.
    flags = FLAGS + (["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])
    executable = next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    with sync_playwright() as driver:
        try:
            browser = driver.chromium.launch(executable_path=executable, args=flags)
        except Error as error:
            raise BrowserUnavailable(f"Chromium did not start: {_first_line(error)}") from None
        try:
            context = browser.new_context(service_workers="block")
            page = context.new_page()
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            page.on("websocket", lambda socket: requested.append(socket.url))

            def only_this_host(route: Any) -> None:
                if origin_of(route.request.url) == origin or is_local(route.request.url):
                    route.continue_()
                else:
                    route.abort()

            page.route("**/*", only_this_host)
            page.goto(url, wait_until="load", timeout=LOAD_TIMEOUT_S * 1000)
            _settle(page, requested)
            tabs = page.get_by_role("tab")
            for index in range(1, tabs.count()):  # the first one is open
                tabs.nth(index).click()
                _settle(page, requested)
            return PageLoad(requested, tabs.count())
        except Error as error:
            raise AuditError(f"the page did not load in Chromium: {_first_line(error)}") from None
        finally:
            browser.close()


def _first_line(error: Exception) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


def _settle(page: Any, requested: list[str]) -> None:
    """Wait until the page asks for no new file (its recurring queue events aside)."""

    def files() -> int:
        return sum("/queue/" not in url and "/heartbeat/" not in url for url in requested)

    deadline = time.monotonic() + LOAD_TIMEOUT_S
    seen = files()
    while time.monotonic() < deadline:
        page.wait_for_timeout(SETTLE_S * 1000)
        if files() == seen:
            return
        seen = files()
