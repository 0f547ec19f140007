"""The page is served in its visitor's language (PageLanguage middleware), over real HTTP."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import RunningApp
from zimage.guards.page_language import language_script
from zimage.translations import CHINESE, ENGLISH, LANGUAGE_COOKIE


def page(url: str, **options) -> httpx.Response:
    response = httpx.get(url, **options)
    response.raise_for_status()
    return response


@pytest.mark.parametrize(
    ("query", "cookie", "accept_language", "expected"),
    [
        ("", None, "", ENGLISH),
        ("", None, "zh-CN,zh;q=0.9", CHINESE),
        ("", None, "zh-TW", CHINESE),
        ("", ENGLISH, "zh-CN", ENGLISH),
        ("?lang=zh-CN", ENGLISH, "en", CHINESE),
        ("?lang=%22%3E%3Cscript%3E", "<b>", "zh", CHINESE),  # nothing of the request is echoed
    ],
)
def test_the_page_starts_in_its_language(
    running_app: RunningApp, query: str, cookie: str | None, accept_language: str, expected: str
) -> None:
    headers = {"Accept-Language": accept_language} if accept_language else {}
    cookies = {LANGUAGE_COOKIE: cookie} if cookie else {}
    response = page(f"{running_app.url}/{query}", headers=headers, cookies=cookies)
    html = response.content
    # The script comes first in <head>, before any of Gradio's scripts could read the language.
    assert html.index(b"<head>" + language_script(expected)) < html.index(b"<script")
    assert html.count(b"Object.defineProperty(navigator") == 1
    assert b"<b>" not in html and b'"><script>' not in html
    assert int(response.headers["content-length"]) == len(html)
    vary = response.headers["vary"].lower()
    assert "cookie" in vary and "accept-language" in vary


def test_only_the_page_is_touched(running_app: RunningApp) -> None:
    config = page(f"{running_app.url}/config", headers={"Accept-Language": "zh-CN"})
    assert b"defineProperty(navigator" not in config.content
    assert "cookie" not in config.headers.get("vary", "").lower()
