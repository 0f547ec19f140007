"""The Permissions-Policy names only features Chromium knows (issue 24, item 12): it used to
list `ambient-light-sensor`, `bluetooth` and `web-share`, and Chromium warned about each in the
console of every page load."""

from __future__ import annotations

from playwright.sync_api import Page

from tests.browser.helpers import open_app
from tests.conftest import RunningApp


def test_the_browser_takes_every_feature_the_permissions_policy_names(
    page: Page, running_app: RunningApp
) -> None:
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    open_app(page, running_app.url)
    assert [text for text in messages if "Permissions-Policy" in text] == []
