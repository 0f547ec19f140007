"""An open page that nobody uses asks the server nothing: the history's countdown runs in the
browser, and the server is asked only when the history changes (a run ends, images are deleted,
the next image expires). Counted, never timed: the page's own clock is Playwright's fake one
where only the browser's timers matter, and the real one (with generous bounds) where the
server's expiry must happen. And a page whose server session was forgotten (idle for an hour)
still works."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from playwright.sync_api import Page, Request, expect

from tests.browser.helpers import (
    IDLE_TIMEOUT_MS,
    generate,
    history_thumbnails,
    is_queue_join,
    open_app,
    result_image,
    wait_idle,
)
from tests.conftest import RunningApp, serve

pytestmark = pytest.mark.xdist_group("idle_page")  # its fixtures built once, on one worker

# Long enough for a run on a loaded machine to be listed before its image expires.
SHORT_TTL_S = 30


@pytest.fixture(scope="module")
def short_lived_app() -> Iterator[RunningApp]:
    yield from serve({"ZIMAGE_OUTPUT_TTL_S": str(SHORT_TTL_S)})


def count_joins(page: Page) -> list[str]:
    """Every event the page sends to the server's queue from now on."""
    joins: list[str] = []

    def seen(request: Request) -> None:
        if is_queue_join(request):
            joins.append(request.post_data or "")

    page.on("request", seen)
    return joins


def captions(page: Page) -> list[str]:
    return page.locator("#history .caption-label").all_inner_texts()


def test_an_idle_page_asks_nothing_with_or_without_images(
    page: Page, running_app: RunningApp
) -> None:
    page.clock.install()
    open_app(page, running_app.url)
    wait_idle(page)  # the page load's history
    joins = count_joins(page)
    page.clock.run_for("05:00")  # five idle minutes of the page's timers
    assert joins == []  # was one every 5 s (a timer polling the history): 60

    generate(page)
    expect(history_thumbnails(page)).to_have_count(1)
    wait_idle(page)
    before = captions(page)
    joins.clear()
    page.clock.run_for("02:00")  # two of the image's ten minutes
    assert joins == []
    expect(page.locator("#history .caption-label")).not_to_have_text(before)  # it counts down
    (left,) = [re.search(r"(\d+):(\d\d)$", caption) for caption in captions(page)]
    assert left is not None and 7 * 60 <= int(left[1]) * 60 + int(left[2]) < 8 * 60 + 1


def test_the_page_learns_of_an_expired_image_when_it_expires(
    page: Page, short_lived_app: RunningApp
) -> None:
    open_app(page, short_lived_app.url)
    generate(page)
    expect(history_thumbnails(page)).to_have_count(1)
    wait_idle(page)
    joins = count_joins(page)
    # Gone from the page after it expires on the server: asked once, when it was due.
    expect(history_thumbnails(page)).to_have_count(0, timeout=(SHORT_TTL_S + 60) * 1000)
    assert 1 <= len(joins) <= 2, joins  # the refresh at expiry (one more if it came early)
    wait_idle(page)
    joins.clear()
    page.wait_for_timeout(3_000)  # not a synchronisation: a window in which nothing may come
    assert joins == []


def test_a_page_whose_server_session_was_forgotten_still_works(
    page: Page, running_app: RunningApp
) -> None:
    holder = running_app.space.gradio_state.blocks.state_holder
    earlier = set(holder.time_last_used)  # other tests' sessions of the shared app
    open_app(page, running_app.url)
    generate(page, "a kite to reuse")
    expect(history_thumbnails(page)).to_have_count(1)
    wait_idle(page)

    # An hour idle, as the server's sweeper sees it: this page's session is forgotten. (Only
    # its own: a page an earlier test closed with an answer unread keeps its session until
    # Gradio drops that answer, which the sweeper waits for.)
    aged = [session for session in list(holder.time_last_used) if session not in earlier]
    assert aged, "the page made no session"
    for session in aged:
        holder.time_last_used[session] = datetime.now() - timedelta(hours=2)
    deadline = time.monotonic() + 600  # a hang bound: the sweeper runs every few seconds
    while any(session in holder.session_data for session in aged):
        assert time.monotonic() < deadline, "the sweeper never forgot the idle sessions"
        time.sleep(0.2)

    # The history still reuses its image's settings, and the tab still makes images.
    prompt = page.get_by_role("textbox", name="Prompt", exact=True)
    prompt.fill("")
    history_thumbnails(page).first.click()
    expect(prompt).to_have_value("a kite to reuse")
    before = result_image(page).get_attribute("src")
    page.get_by_role("button", name="Generate", exact=True).click()
    # A run's end, however loaded the machine: hang bounds, not speeds.
    expect(result_image(page)).not_to_have_attribute("src", before or "", timeout=IDLE_TIMEOUT_MS)
    expect(history_thumbnails(page)).to_have_count(2, timeout=IDLE_TIMEOUT_MS)
