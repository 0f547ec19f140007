"""The audit's HTTP connection to a copy: no credentials, every request counted, every answer's
status and headers kept for the header check."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

USER_AGENT = "zimage-audit/1 (a privacy check of a Z-Image Space, python-httpx)"
# Sent with every request that is not about consent: the audit asks not to be logged.
OPTED_OUT = {"Sec-GPC": "1"}
# A generation on a cold GPU or a busy queue can take minutes; connecting should not.
TIMEOUT = httpx.Timeout(300, connect=20)


@dataclass(frozen=True)
class Answer:
    """What the copy answered to one request (the body is not kept)."""

    method: str
    path: str
    status: int
    headers: httpx.Headers

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.status})"


class CopyClient:
    """Requests to one copy, counted; `answers` holds one entry per answer received."""

    def __init__(self, url: str, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.answers: list[Answer] = []
        self.requests_sent = 0
        self._client = httpx.Client(
            base_url=self.url,
            timeout=TIMEOUT,
            transport=transport,
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
            event_hooks={"request": [self._count], "response": [self._keep]},
        )

    @property
    def origin(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        return self._client.request(method, path, **options)

    def get(self, path: str, **options: Any) -> httpx.Response:
        return self.request("GET", path, **options)

    def post(self, path: str, **options: Any) -> httpx.Response:
        return self.request("POST", path, **options)

    @contextmanager
    def stream(self, method: str, path: str, **options: Any) -> Iterator[httpx.Response]:
        with self._client.stream(method, path, **options) as response:
            yield response

    def close(self) -> None:
        self._client.close()

    def _count(self, request: httpx.Request) -> None:
        self.requests_sent += 1

    def _keep(self, response: httpx.Response) -> None:
        request = response.request
        path = request.url.raw_path.decode(errors="replace")
        self.answers.append(Answer(request.method, path, response.status_code, response.headers))
