"""The page loads nothing from another host: seen in headless Chromium where one can run, else
read from the HTML, the head and the style sheets the copy serves (a static scan cannot see
what the page's scripts load as they run; the report says which was done)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin

from zimage.audit.browser import BrowserUnavailable, PageLoad, is_local, load_page, origin_of
from zimage.audit.events import GradioCopy
from zimage.audit.model import Promise, Result

THIRD_PARTY = Promise(
    "page.third_party",
    "The page loads nothing (script, style, font, image, connection) from another host",
    "PRIVACY.md §1.1, §1.5",
)
PROMISES = (THIRD_PARTY,)

# Attributes that make a browser fetch something as the page loads.
FETCHED = {
    "script": ("src",),
    "img": ("src", "srcset"),
    "iframe": ("src",),
    "frame": ("src",),
    "source": ("src", "srcset"),
    "video": ("src", "poster"),
    "audio": ("src",),
    "track": ("src",),
    "embed": ("src",),
    "object": ("data",),
    "input": ("src",),
}
# <link> relations that only describe the page; every other one fetches or connects.
DESCRIPTIVE_LINKS = {
    "canonical",
    "alternate",
    "author",
    "license",
    "help",
    "next",
    "prev",
    "search",
}
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)|@import\s+['"]([^'"]+)""")
SHOWN = 5


class _References(HTMLParser):
    """The URLs an HTML text makes a browser fetch, and the CSS written into it."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.css: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "link" and not set(values.get("rel", "").lower().split()) <= DESCRIPTIVE_LINKS:
            self.urls.append(values.get("href", ""))
        for attribute in FETCHED.get(tag, ()):
            if attribute.endswith("srcset"):
                self.urls += [
                    part.split()[0] for part in values.get(attribute, "").split(",") if part.strip()
                ]
            elif values.get(attribute):
                self.urls.append(values[attribute])
        if values.get("style"):
            self.css.append(values["style"])
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.css.append(data)


def references(html: str) -> tuple[list[str], list[str]]:
    """(URLs fetched, CSS texts) of an HTML text."""
    parser = _References()
    parser.feed(html)
    parser.close()
    return [url for url in parser.urls if url], parser.css


def css_references(css: str) -> list[str]:
    return [first or second for first, second in CSS_URL.findall(css)]


def check_page(copy: GradioCopy, use_browser: bool) -> tuple[Result, int]:
    """The result, and how many requests the browser made (0 for a static scan)."""
    reason = "--no-browser"
    if use_browser:
        try:
            load = load_page(copy.client.url)
        except BrowserUnavailable as unavailable:
            reason = f"no headless browser: {unavailable}"
        else:
            return _judged_load(load, copy.client.origin), len(load.requested)
    return _static_scan(copy, reason), 0


def _judged_load(load: PageLoad, origin: str) -> Result:
    foreign = _foreign(load.requested, origin, origin)
    how = f"headless Chromium, the page and its {load.tabs_opened} tabs: {len(load.requested)} requests"
    if foreign:
        return THIRD_PARTY.broken(f"{how}; to other hosts (stopped, not sent): {_listed(foreign)}")
    return THIRD_PARTY.kept(f"{how}, all to {origin}")


def _static_scan(copy: GradioCopy, reason: str) -> Result:
    origin = copy.client.origin
    page = copy.client.get("/")
    urls, css = references(page.text)
    config = copy.config()
    head_urls, head_css = references(str(config.get("head") or ""))
    urls += head_urls + [str(url) for url in config.get("stylesheets") or []]
    css += head_css + [str(config.get("css") or "")]
    base = f"{copy.client.url}/"
    # The page's own style sheets (and the theme's, which Gradio's script loads) may import more.
    sheets = [url for url in urls if url.split("?")[0].endswith(".css")] + ["theme.css"]
    for sheet in sheets:
        if origin_of(urljoin(base, sheet)) == origin:
            answer = copy.client.get(urljoin(base, sheet))
            if answer.status_code == 200:
                css.append(answer.text)
    urls += [url for text in css for url in css_references(text)]
    foreign = _foreign(urls, origin, base)
    how = (
        f"static scan ({reason}): {len(urls)} references in the HTML, its head and style "
        "sheets; what the page's scripts load as they run is not seen without a browser"
    )
    if foreign:
        return THIRD_PARTY.broken(f"{how}; other hosts: {_listed(foreign)}")
    return THIRD_PARTY.kept(f"{how}; all on {origin}")


def _foreign(urls: list[str], origin: str, base: str) -> list[str]:
    absolute = (urljoin(base, url) for url in urls if not is_local(url))
    return list(dict.fromkeys(url for url in absolute if origin_of(url) != origin))


def _listed(urls: list[str]) -> str:
    more = f" and {len(urls) - SHOWN} more" if len(urls) > SHOWN else ""
    return ", ".join(urls[:SHOWN]) + more
