"""The page in English and Simplified Chinese: Gradio's I18n, the language selector, and the
language of a request.

Every label, placeholder, button and text block of the page is a key (`t("generate.prompt")`):
Gradio sends the translations of every key once, with the page, and the browser shows each in the
page's language (set as the page starts: zimage/guards/page_language.py). The words are in
zimage/translations.py. Text made per request (history captions, messages) is written by the
server in `language_of(request)`.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import gradio as gr
from gradio.i18n import I18nData

from zimage.guards.page_language import language_of_request
from zimage.privacy import policy
from zimage.service.service import EngineFacts
from zimage.settings import Settings
from zimage.translations import (
    CHINESE,
    ENGLISH,
    LANGUAGE_NAMES,
    LANGUAGES,
    PAGE_TEXT,
    lifetime,
    words,
)

ROOT = Path(__file__).resolve().parent.parent.parent
POLICY_FILES = {ENGLISH: ROOT / "PRIVACY.md", CHINESE: ROOT / "PRIVACY.zh.md"}

# Page text whose words depend on the settings or the engine (made by `page_translations`).
BUILT_KEYS = (
    "engine.status",
    "edit.note",
    "history.note",
    "privacy.banner",
    "privacy.banner_updated",
    "privacy.policy",
)

# The selector shows the page's language; a pick loads the page again in it (language.js).
CURRENT_LANGUAGE_JS = "() => window.zimageLanguage?.current() ?? 'en'"
CHOOSE_LANGUAGE_JS = "(language) => { window.zimageLanguage?.choose(language); }"


def t(key: str) -> I18nData:
    """The page text `key`, shown in the visitor's language."""
    if key not in PAGE_TEXT and key not in BUILT_KEYS:
        raise KeyError(f"no page text {key!r} in zimage/translations.py")
    return I18nData(key)


def language_selector() -> gr.Radio:
    # Labelled in both languages, so that a visitor who reads only one of them finds it.
    return gr.Radio(
        [(name, language) for language, name in LANGUAGE_NAMES.items()],
        value=ENGLISH,
        label="Language / 语言",
        container=False,
        scale=0,
        min_width=220,
        elem_id="language",
    )


def language_of(request: gr.Request | None) -> str:
    """The language of the page that sent `request` (see zimage/guards/page_language.py): its
    address's `lang` (the request's Referer), its language cookie, else its browser's."""
    if request is None:
        return ENGLISH
    headers = {name.lower(): value for name, value in dict(getattr(request, "headers", {})).items()}
    return language_of_request(
        urlsplit(headers.get("referer", "")).query,
        headers.get("cookie", ""),
        headers.get("accept-language", ""),
    )


def page_translations(settings: Settings, engine: EngineFacts) -> gr.I18n:
    """Gradio's I18n with every key of the page, in each language (pass it to `launch`)."""
    return gr.I18n(
        **{
            language: {
                **{key: words(key, language) for key in PAGE_TEXT},
                **_built_text(settings, engine, language),
            }
            for language in LANGUAGES
        }
    )


def _built_text(settings: Settings, engine: EngineFacts, language: str) -> dict[str, str]:
    def notice(updated: bool) -> str:
        text = policy.banner_markdown(
            output_ttl_s=settings.output_ttl_s,
            retention_days=settings.log_retention_days,
            analytics_enabled=settings.analytics,
            policy_updated=updated,
            log_prompts=settings.log_prompts,
            language=language,
        )
        # Gradio translates one key per string: the key holds the notice up to the policy
        # version, and the page puts the version after it (PageHandlers.banner_text).
        return text.removesuffix(policy.POLICY_VERSION)

    return {
        "engine.status": _engine_status(engine, language),
        "edit.note": words("edit.note", language, methods=_edit_methods(engine, language)),
        "history.note": words(
            "history.note", language, lifetime=lifetime(settings.output_ttl_s, language)
        ),
        "privacy.banner": notice(updated=False),
        "privacy.banner_updated": notice(updated=True),
        "privacy.policy": POLICY_FILES[language].read_text(encoding="utf-8"),
    }


def _engine_status(engine: EngineFacts, language: str) -> str:
    if engine.kind == "unavailable":
        return words("engine.unavailable", language, reason=engine.description)
    if engine.is_preview:
        return words("engine.preview", language, description=engine.description)
    return words("engine.running", language, description=engine.description)


def _edit_methods(engine: EngineFacts, language: str) -> str:
    """The engine's own words in English; in Chinese, the same facts."""
    if engine.kind == "unavailable":
        kind = "none"
    elif engine.edits_with_omni:
        kind = "omni"
    else:
        kind = "img2img"
    return words(f"edit.methods.{kind}", language, methods=engine.edit_methods)
