"""The page in English and Simplified Chinese: chosen from the browser, switched on the page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.helpers import (
    banner,
    banner_body,
    fill_in,
    is_queue_join,
    open_app,
    open_tab,
    reload,
    set_small_size,
    wait_idle,
)
from tests.conftest import RunningApp
from zimage.privacy.policy import POLICY_VERSION
from zimage.translations import EXAMPLE_SETTINGS, LANGUAGE_COOKIE, example_card, words

ZH = "zh-CN"


def history_captions(page: Page):
    return page.locator("#history img")


def example(page: Page, language: str):
    """The card of the second example prompt of `language` (named by its title)."""
    return page.get_by_role("button", name=example_card(EXAMPLE_SETTINGS[1], language))


def pick_language(page: Page, name: str) -> None:
    """Click a language on the selector; the page loads again in it."""
    with page.expect_request(is_queue_join):
        page.locator("#language").get_by_role("radio", name=name).click()
    wait_idle(page)
    expect(banner(page)).to_be_visible()


def language_cookies(context: BrowserContext) -> list[str]:
    return [f"{c['name']}={c['value']}" for c in context.cookies() if c["name"] == LANGUAGE_COOKIE]


@pytest.mark.parametrize("context", [{"locale": ZH}], indirect=True)
def test_a_chinese_browser_gets_chinese_and_switches_to_english(
    page: Page, context: BrowserContext, running_app: RunningApp
) -> None:
    open_app(page, running_app.url)
    expect(page.locator("html")).to_have_attribute("lang", ZH)
    selector = page.locator("#language")
    expect(selector.get_by_role("radio", name="简体中文")).to_be_checked()
    # Labels, the privacy notice, the engine line and the examples are Chinese.
    expect(page.get_by_role("tab", name=words("tab.generate", ZH))).to_be_visible()
    expect(page.get_by_role("button", name=words("generate.run", ZH), exact=True)).to_be_visible()
    expect(banner_body(page)).to_contain_text("不面向 13 岁以下儿童")
    expect(banner_body(page)).to_contain_text(f"政策版本 {POLICY_VERSION}")
    expect(page.locator("#engine-status")).to_contain_text("预览引擎")
    expect(example(page, ZH)).to_be_visible()
    expect(example(page, "en")).to_be_hidden()
    # The policy is the Chinese translation, which says that the English text is authoritative.
    policy = open_tab(page, words("tab.privacy", ZH))
    expect(policy.get_by_role("heading", name="隐私政策", level=1)).to_be_visible()
    expect(policy).to_contain_text("以英文原文为准")
    expect(policy).to_contain_text(f"政策版本：{POLICY_VERSION}")
    assert context.cookies() == []  # no cookie at all until the visitor picks a language

    # The server writes the history's captions in the page's language.
    open_tab(page, words("tab.generate", ZH))
    fill_in(page.get_by_role("textbox", name=words("generate.prompt", ZH)), "一只红色的风筝")
    set_small_size(page, ZH)
    page.get_by_role("button", name=words("generate.run", ZH), exact=True).click()
    expect(history_captions(page)).to_have_attribute(
        "alt", re.compile(r"^文生图 · 种子 \d+ · \d+:\d\d 后删除$")
    )

    pick_language(page, "English")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    for tab in ("Text to image", "Edit", "Privacy and your data"):
        expect(page.get_by_role("tab", name=tab, exact=True)).to_be_visible()
    expect(banner_body(page)).to_contain_text("Not for children under 13.")
    expect(page.locator("#engine-status")).to_contain_text("Preview engine")
    expect(example(page, "en")).to_be_visible()
    expect(example(page, ZH)).to_be_hidden()
    expect(history_captions(page)).to_have_attribute("alt", re.compile(r"seed \d+ · deleted in"))
    assert language_cookies(context) == [f"{LANGUAGE_COOKIE}=en"]

    # The choice outlasts the page; the policy is the English one now.
    reload(page)
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(selector.get_by_role("radio", name="English")).to_be_checked()
    policy = open_tab(page, "Privacy and your data")
    expect(policy.get_by_role("heading", name="Privacy policy", level=1)).to_be_visible()


def test_an_english_browser_stays_english_until_chinese_is_picked(
    page: Page, context: BrowserContext, running_app: RunningApp
) -> None:
    open_app(page, running_app.url)
    expect(page.locator("html")).to_have_attribute("lang", "en")
    selector = page.locator("#language")
    expect(selector.get_by_role("radio", name="English")).to_be_checked()
    expect(page.get_by_role("button", name="Generate", exact=True)).to_be_visible()

    pick_language(page, "简体中文")
    expect(page.get_by_role("button", name=words("generate.run", ZH), exact=True)).to_be_visible()
    for key in ("tab.generate", "tab.edit", "tab.privacy"):
        expect(page.get_by_role("tab", name=words(key, ZH), exact=True)).to_be_visible()
    expect(banner_body(page)).to_contain_text("不面向 13 岁以下儿童")
    assert language_cookies(context) == [f"{LANGUAGE_COOKIE}={ZH}"]
    reload(page)
    expect(page.get_by_role("button", name=words("generate.run", ZH), exact=True)).to_be_visible()
    expect(selector.get_by_role("radio", name="简体中文")).to_be_checked()
