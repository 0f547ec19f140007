"""Browser tests: Debian's Chromium, driven by Playwright, against the app on 127.0.0.1.

One browser serves the whole session; every test gets a fresh context (empty storage, so a
first visit) and page. A test that fails saves a full-page screenshot in `test-artifacts/`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from tests.conftest import RunningApp, serve

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
AXE_SCRIPT = ROOT / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
# Generous for a loaded 2-core machine; every wait ends as soon as its condition holds.
TIMEOUT_MS = 30_000

expect.set_options(timeout=TIMEOUT_MS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the browser tests after the others: they are the slowest, and they start the
    shared app (with its timer threads) that some unit tests expect not to be running yet."""
    here = Path(__file__).parent
    items.sort(key=lambda item: item.path.is_relative_to(here))  # stable: order kept otherwise


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.skip(
            f"browser tests need Debian's Chromium at {CHROMIUM} "
            "(apt-get install chromium; .ci/run installs it)"
        )
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def context(browser: Browser, request: pytest.FixtureRequest) -> Iterator[BrowserContext]:
    """A fresh browser profile; a test changes its options (say, `locale`) with
    `@pytest.mark.parametrize("context", [{...}], indirect=True)`."""
    options = {
        "viewport": {"width": 1280, "height": 1000},
        "accept_downloads": True,
        "locale": "en-US",
        **getattr(request, "param", {}),
    }
    context = browser.new_context(**options)
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    context.close()


@pytest.fixture(scope="session")
def roomy_app() -> Iterator[RunningApp]:
    """An app whose time limit no long run reaches: the engine predicts a run's time from the
    speeds it measured, which a loaded machine inflates enough to refuse a long run up front
    (768x768, 50 steps: "would take about ... s")."""
    yield from serve({"ZIMAGE_TIME_LIMIT_S": "3600"})


@pytest.fixture(scope="session")
def axe_script() -> Path:
    """axe-core's browser bundle, installed by `npm ci` (package.json; .ci/run runs it)."""
    if not AXE_SCRIPT.exists():
        message = f"the accessibility checks need axe-core at {AXE_SCRIPT}: run `npm ci`"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it: never skip there
        pytest.skip(message)
    return AXE_SCRIPT


@pytest.fixture
def page_errors() -> list[str]:
    """Uncaught exceptions in the page or its frames; the `page` fixture fails on any."""
    return []


@pytest.fixture
def page(context: BrowserContext, page_errors: list[str]) -> Iterator[Page]:
    page = context.new_page()
    page.on("pageerror", lambda error: page_errors.append(f"{error.name}: {error.message}"))
    yield page
    assert page_errors == [], "uncaught errors in the page"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call" and report.failed:
        page = getattr(item, "funcargs", {}).get("page")
        if page is not None and not page.is_closed():
            ARTIFACTS.mkdir(exist_ok=True)
            path = ARTIFACTS / (re.sub(r"[^\w.-]+", "_", item.nodeid).strip("_") + ".png")
            try:
                page.screenshot(path=str(path), full_page=True)
            except Exception as error:  # a crashed page must not hide the real failure
                report.sections.append(("screenshot", f"not saved: {error}"))
            else:
                report.sections.append(("screenshot", str(path)))
    return report
