"""The page's words in both languages, and how the page's language is chosen."""

from __future__ import annotations

import re
import string

import pytest

from zimage.page.edit import SAMPLES
from zimage.translations import (
    CHINESE,
    ENGLISH,
    EXAMPLE_EDITS,
    EXAMPLE_PROMPTS,
    PAGE_TEXT,
    TEMPLATES,
    accepted_languages,
    duration,
    lifetime,
    method_name,
    page_language,
    words,
)

CJK = re.compile(r"[\u4e00-\u9fff]")


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("key", [*PAGE_TEXT, *TEMPLATES])
def test_every_text_has_both_languages_with_the_same_fields(key: str) -> None:
    english, chinese = {**PAGE_TEXT, **TEMPLATES}[key]
    assert english.strip() and chinese.strip()
    assert fields(english) <= fields(chinese) | {"methods", "description"}, key
    assert fields(chinese) <= fields(english) | {"methods", "description"}, key
    assert not CJK.search(english), key


@pytest.mark.parametrize("key", list(PAGE_TEXT))
def test_page_text_is_translated(key: str) -> None:
    english, chinese = PAGE_TEXT[key]
    assert english != chinese
    assert CJK.search(chinese), key


def test_words_fill_in_values_in_the_language_asked() -> None:
    assert words("message.deleted", ENGLISH, rows=3, images=2) == (
        "Deleted 3 usage rows and 2 images linked to this browser."
    )
    assert words("message.deleted", CHINESE, rows=3, images=2) == (
        "已删除与此浏览器关联的 3 条使用记录和 2 张图像。"
    )
    assert words("generate.run", "fr") == "Generate"  # any other language: English
    assert duration(1, "day", ENGLISH) == "1 day"
    assert duration(90, "day", ENGLISH) == "90 days"
    assert duration(90, "day", CHINESE) == "90 天"
    assert lifetime(600, ENGLISH) == "10 minutes"
    assert lifetime(90, CHINESE) == "90 秒"
    assert method_name("text-to-image", CHINESE) == "文生图"
    assert method_name("img2img", CHINESE) == "img2img"


def test_examples_in_both_languages_write_text_in_both_scripts() -> None:
    assert len(EXAMPLE_PROMPTS[ENGLISH]) == len(EXAMPLE_PROMPTS[CHINESE]) >= 3
    for prompts in EXAMPLE_PROMPTS.values():
        quoted = [text for prompt in prompts for text in re.findall(r"[\"“]([^\"”]+)[\"”]", prompt)]
        assert any(CJK.search(text) for text in quoted), "no Chinese text to render"
        assert any(re.fullmatch(r"[A-Z ]+", text) for text in quoted), "no English text to render"
    assert [name for name, _ in EXAMPLE_EDITS[ENGLISH]] == [
        name for name, _ in EXAMPLE_EDITS[CHINESE]
    ]
    for name, _ in EXAMPLE_EDITS[ENGLISH]:
        assert (SAMPLES / name).is_file()


@pytest.mark.parametrize(
    ("picks", "accept_language", "expected"),
    [
        ([None, None], "", ENGLISH),
        ([None, None], "zh-CN,zh;q=0.9,en;q=0.8", CHINESE),
        ([None, None], "zh", CHINESE),
        ([None, None], "zh-TW", CHINESE),  # the page's Chinese is Simplified
        ([None, None], "fr-FR,fr;q=0.9,zh-CN;q=0.8,en;q=0.7", CHINESE),  # first it speaks
        ([None, None], "en;q=0.5,zh;q=0.9", CHINESE),  # by weight, not by place
        ([None, None], "de,fr", ENGLISH),
        ([None, None], "zh;q=0", ENGLISH),
        ([None, CHINESE], "en-US", CHINESE),  # the cookie beats the browser
        ([ENGLISH, CHINESE], "zh-CN", ENGLISH),  # the address beats the cookie
        (["klingon", "<script>"], "zh-CN", CHINESE),  # invalid picks are ignored
    ],
)
def test_the_page_language(picks: list, accept_language: str, expected: str) -> None:
    assert page_language(picks, accept_language) == expected


def test_accept_language_is_read_by_weight() -> None:
    assert accepted_languages("fr;q=0.2, en-GB , de;q=0.7, *;q=0.1, xx;q=bad") == [
        "en-GB",
        "de",
        "fr",
    ]
    assert accepted_languages("") == []
