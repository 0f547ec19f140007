"""PRIVACY.zh.md stays a faithful translation of PRIVACY.md, and the page shows each where due."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import httpx

from zimage.privacy.policy import POLICY_VERSION
from zimage.translations import CHINESE, ENGLISH, PAGE_TEXT, words

ROOT = Path(__file__).resolve().parents[2]
ENGLISH_POLICY = (ROOT / "PRIVACY.md").read_text(encoding="utf-8")
CHINESE_FILE = (ROOT / "PRIVACY.zh.md").read_text(encoding="utf-8")
NOTE, CHINESE_POLICY = CHINESE_FILE.split("\n", 1)


def test_the_translation_says_first_that_the_english_text_is_authoritative() -> None:
    assert "PRIVACY.md" in NOTE and "以英文原文为准" in NOTE
    assert "this English text is authoritative" in ENGLISH_POLICY


def test_the_same_sections_in_the_same_order() -> None:
    def numbered(text: str) -> list[str]:
        return re.findall(r"^#{2,3} (\d+(?:\.\d+)?)", text, re.MULTILINE)

    assert numbered(CHINESE_POLICY) == numbered(ENGLISH_POLICY)
    assert len(numbered(ENGLISH_POLICY)) == 19
    assert len(re.findall(r"^## ", CHINESE_POLICY, re.MULTILINE)) == len(
        re.findall(r"^## ", ENGLISH_POLICY, re.MULTILINE)
    )


def test_the_same_numbers_settings_and_code() -> None:
    """Every figure (days, minutes, MB, ages, the version) and every `setting` or code span
    appears as often in the translation as in the English text."""

    def figures(text: str) -> Counter:
        return Counter(re.findall(r"\d+(?:\.\d+)*", text))

    def code(text: str) -> Counter:
        return Counter(re.findall(r"`([^`]+)`", text))

    assert figures(CHINESE_POLICY) == figures(ENGLISH_POLICY)
    assert code(CHINESE_POLICY) == code(ENGLISH_POLICY)
    assert f"政策版本：{POLICY_VERSION}" in CHINESE_POLICY
    assert f"Policy version: {POLICY_VERSION}" in ENGLISH_POLICY


def test_the_translation_names_the_page_as_the_chinese_page_does() -> None:
    """A button or tab the English policy names in quotes is named as the Chinese page names it."""
    named = 0
    for key, (english, chinese) in PAGE_TEXT.items():
        if re.search(rf'["*]{re.escape(english)}["*]', ENGLISH_POLICY):
            assert chinese in CHINESE_POLICY, key
            named += 1
    assert named >= 4


def test_the_privacy_tab_shows_each_language_its_policy(running_app) -> None:
    config = httpx.get(f"{running_app.url}/config").json()
    policies = {
        language: config["i18n_translations"][language]["privacy.policy"]
        for language in (ENGLISH, CHINESE)
    }
    assert policies == {ENGLISH: ENGLISH_POLICY, CHINESE: CHINESE_FILE}
    assert words("tab.privacy", CHINESE) in CHINESE_POLICY
