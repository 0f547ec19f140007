"""Serving the page in its visitor's language, from the first byte.

Gradio picks the page's language once, as the page starts, from `navigator.language`, and offers
no way to change it afterwards that the whole page follows (its own switch leaves the labels of
the tabs not shown in the old language). So the server decides: `PageLanguage`, an ASGI
middleware, puts a one-line script at the top of the page that sets `navigator.language` to the
page's language (zimage/translations.py, `page_language`) before Gradio's code reads it. The
language selector sets the cookie and loads the page again.
"""

from __future__ import annotations

from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zimage.translations import LANGUAGE_COOKIE, LANGUAGE_PARAMETER, page_language

# Gradio's page is far smaller; a larger body is passed on untouched.
MAX_PAGE_BYTES = 8 * 1024 * 1024


def language_of_request(query: str, cookie_header: str, accept_language: str) -> str:
    """The page language of an HTTP request: its address's `lang`, cookie, or Accept-Language."""
    address_pick = (parse_qs(query).get(LANGUAGE_PARAMETER) or [None])[0]
    return page_language([address_pick, cookie_value(cookie_header)], accept_language)


def cookie_value(cookie_header: str) -> str | None:
    try:
        cookies = SimpleCookie(cookie_header)
    except CookieError:
        return None
    morsel = cookies.get(LANGUAGE_COOKIE)
    return morsel.value if morsel is not None else None


def language_script(language: str) -> bytes:
    # `language` is one of translations.LANGUAGES: nothing from the request reaches the page.
    return (
        f'<script>Object.defineProperty(navigator, "language", '
        f'{{ configurable: true, get: () => "{language}" }});</script>'
    ).encode()


class PageLanguage:
    """ASGI middleware: the page (GET /) starts with `navigator.language` set to its language."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (
            scope.get("type") == "http"
            and scope.get("method") == "GET"
            and scope.get("path") in ("", "/")
        ):
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1").lower(): value for name, value in scope["headers"]}
        language = language_of_request(
            scope.get("query_string", b"").decode("latin-1"),
            headers.get("cookie", b"").decode("latin-1"),
            headers.get("accept-language", b"").decode("latin-1"),
        )
        await self.app(scope, receive, _ScriptInserter(send, language_script(language)).send)


class _ScriptInserter:
    """Holds back an HTML response until its body is complete, then sends it with the script
    right after <head>; other responses pass unchanged."""

    def __init__(self, send: Send, script: bytes) -> None:
        self._send = send
        self._script = script
        self._start: Message | None = None
        self._body: list[bytes] = []
        self._size = 0

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            content_type = dict(message.get("headers", [])).get(b"content-type", b"")
            if content_type.startswith(b"text/html"):
                self._start = message
                return
        elif message["type"] == "http.response.body" and self._start is not None:
            self._body.append(message.get("body", b""))
            self._size += len(self._body[-1])
            if self._size > MAX_PAGE_BYTES:
                await self._flush(
                    self._start, b"".join(self._body), message.get("more_body", False)
                )
                return
            if not message.get("more_body", False):
                page = b"".join(self._body).replace(b"<head>", b"<head>" + self._script, 1)
                await self._flush(self._start, page, False)
            return
        await self._send(message)

    async def _flush(self, start: Message, body: bytes, more_body: bool) -> None:
        self._start, self._body = None, []
        headers = [
            (name, value)
            for name, value in start.get("headers", [])
            if name.lower() not in (b"content-length", b"vary")
        ]
        vary = [value for name, value in start.get("headers", []) if name.lower() == b"vary"]
        headers.append((b"vary", b", ".join([*vary, b"Cookie, Accept-Language"])))
        if not more_body:
            headers.append((b"content-length", str(len(body)).encode()))
        await self._send({**start, "headers": headers})
        await self._send({"type": "http.response.body", "body": body, "more_body": more_body})
