"""A stand-in for the Hugging Face Hub over real HTTP on 127.0.0.1, for huggingface_hub's own
client (the app is pointed at it with HF_ENDPOINT): the two calls a visitor-named adapter needs,
a model's listing with file sizes (`/api/models/{id}`) and a file's bytes
(`/{id}/resolve/{revision}/{file}`), with the Hub's error headers for a missing repo. It records
every request, so tests can say what the Space asked the Hub for.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


@dataclass
class FakeRepo:
    files: dict[str, bytes]
    # What the listing says of each file's size, where it lies.
    listed_sizes: dict[str, int] = field(default_factory=dict)

    @property
    def sha(self) -> str:
        digest = hashlib.sha1()
        for name, data in sorted(self.files.items()):
            digest.update(name.encode() + data)
        return digest.hexdigest()


@dataclass
class FakeHub:
    repos: dict[str, FakeRepo]
    url: str = ""
    requests: list[str] = field(default_factory=list)  # "GET /path", in order

    def asked(self, fragment: str) -> list[str]:
        return [request for request in self.requests if fragment in request]


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return None

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = unquote(urlsplit(self.path).path)
            hub.requests.append(f"GET {path}")
            if path.startswith("/api/models/"):
                self._listing(path.removeprefix("/api/models/"))
            elif "/resolve/" in path:
                repo_id, _, rest = path.lstrip("/").partition("/resolve/")
                _, _, filename = rest.partition("/")
                self._file(repo_id, filename)
            else:
                self._missing("EntryNotFound")

        def _listing(self, repo_id: str) -> None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                return self._missing("RepoNotFound")
            siblings = [
                {"rfilename": name, "size": repo.listed_sizes.get(name, len(data))}
                for name, data in repo.files.items()
            ]
            self._send(
                200, json.dumps({"id": repo_id, "sha": repo.sha, "siblings": siblings}).encode()
            )

        def _file(self, repo_id: str, filename: str) -> None:
            repo = hub.repos.get(repo_id)
            if repo is None or filename not in repo.files:
                return self._missing("EntryNotFound")
            self._send(200, repo.files[filename], "application/octet-stream")

        def _missing(self, code: str) -> None:
            self._send(404, b'{"error": "not found"}', headers={"X-Error-Code": code})

        def _send(
            self,
            status: int,
            body: bytes,
            kind: str = "application/json",
            headers: dict[str, str] | None = None,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler


@contextmanager
def fake_hub(repos: dict[str, FakeRepo]) -> Iterator[FakeHub]:
    hub = FakeHub(repos)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
