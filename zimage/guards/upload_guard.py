"""ASGI middleware: request bodies within a visitor's budget, uploads within the folder's cap.

Gradio 6.31 accepts files from anyone, outside the queue and the rate limit, in several ways:

- `POST /gradio_api/upload`: any number of files (1,000 per request), each up to the size
  limit, kept in the temp folder (RAM with /dev/shm) until something deletes them;
- `POST /gradio_api/component_server` (multipart): the image editor's blobs, read into the
  process's memory and kept there until an edit uses them;
- `POST /gradio_api/process_recording`: a screen-recording helper this app never uses, which
  copies the file into /tmp and the temp folder;
- the JSON body of any event (`/queue/join`, `/call/...`, `/run/...`, `/stream/...`): images
  as `data:` URLs are decoded into the temp folder, and a file "path" that is an http(s) URL
  makes the server download it, whatever its size, into the temp folder.

So every request body counts against the sender's byte budget as it arrives (Content-Length is
checked first but not trusted); reading stops at the limit. Upload files are followed by
`HeldUploads` against a total cap; event bodies are small, parsed, and a remote file URL is
refused (on /queue/join in the form Gradio's clients show: zimage/guards/gradio_calls.py); the
recording route is closed. A full disk gives a readable 507, not Gradio's 500.

A body may name a file of the temp folder only if the sender's address uploaded it or the Space
gave it to that address (an output, a preview frame, a download): otherwise anyone who learnt
another visitor's file address could tie that file to their own output and keep it past its
lifetime and its owner's deletion.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zimage.guards.asgi import AnsweredOutside, parse_json, read_body, replay, send_detail
from zimage.guards.client_address import address_key, client_address
from zimage.guards.gradio_calls import KnownEndpoints, value_refusal
from zimage.guards.uploads import OUT_OF_SPACE_MESSAGE, HeldUploads, UploadBudget, is_out_of_space

logger = logging.getLogger(__name__)

UPLOAD_ROUTE = "/gradio_api/upload"
# Gradio routes that take files and that this app never uses: refused before any byte is read.
CLOSED_ROUTES = ("/gradio_api/process_recording",)
# Event bodies name files by path; files themselves travel through the upload route.
EVENT_BODY_SLACK = 64 * 1024
# How many file paths one event body may name (Gradio events have a few inputs; a visitor
# keeps at most 32 outputs).
MAX_PATHS_PER_BODY = 64
MB = 1024 * 1024
REMOTE_FILE = (
    "This Space does not fetch files from other sites. Upload the file "
    "(POST /gradio_api/upload) and pass the returned path."
)
NOT_YOURS = (
    "This request names a file that was neither uploaded from your address nor made for you "
    "by this Space. Upload the file (POST /gradio_api/upload) and pass the returned path."
)
TOO_MANY_PATHS = f"A request may name at most {MAX_PATHS_PER_BODY} files."


class Refused(AnsweredOutside):
    """A request the guard answers itself, with a status and a readable detail (a sentence,
    or Gradio's validator list for a refused value on the queue)."""

    def __init__(self, status: int, detail: object, retry_after_s: int | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.retry_after_s = retry_after_s

    async def answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        retry = {"Retry-After": str(self.retry_after_s)} if self.retry_after_s is not None else None
        await send_detail(scope, receive, send, self.status, self.detail, headers=retry)


class UploadGuard:
    """Pure ASGI middleware; see the module docstring for what it bounds and why."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        budget: UploadBudget,
        held: HeldUploads,
        endpoints: KnownEndpoints,
        trusted_proxy_hops: int,
        max_upload_bytes: int,
        files_given: Callable[[str, str], bool] = lambda path, address: False,
    ) -> None:
        self.app = app
        self.budget = budget
        self.held = held
        self.endpoints = endpoints
        self.files_given = files_given
        self.trusted_proxy_hops = trusted_proxy_hops
        # Room for one image of the largest allowed size as a base64 `data:` URL.
        self.max_event_body_bytes = max_upload_bytes * 4 // 3 + EVENT_BODY_SLACK
        self._visitor_key = address_key
        self.multipart_running = 0
        self.multipart_bytes_arriving = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if path.endswith(CLOSED_ROUTES):
            await Refused(404, "Not found.").answer(scope, receive, send)
            return
        headers = Headers(scope=scope)
        peer = scope.get("client")
        address = client_address(peer[0] if peer else "", headers, self.trusted_proxy_hops)
        request = _Request(self, self._visitor_key(address), headers, path)
        try:
            request.check_declared_length()
        except Refused as refusal:
            await refusal.answer(scope, receive, send)
            return
        await request.run(scope, receive, send)

    def may_name(self, path: str, visitor: str) -> bool:
        """Whether a body from the visitor with keyed address ``visitor`` may name ``path``:
        any file outside the temp folder (Gradio decides), else one they uploaded or were
        given."""
        if not self.held.is_inside(path):
            return True
        return self.held.uploaded_by(path, visitor) or self.files_given(path, visitor)

    def room_for_upload(self, nbytes: int) -> bool:
        return self.held.room_for(self.multipart_bytes_arriving + nbytes)

    def out_of_room(self) -> Refused:
        return Refused(507, OUT_OF_SPACE_MESSAGE, int(self.held.unused_s))


class _Request:
    """One request body on its way through the guard."""

    def __init__(self, guard: UploadGuard, visitor: str, headers: Headers, path: str) -> None:
        self.guard = guard
        self.visitor = visitor
        self.path = path
        self.upload = path.endswith(UPLOAD_ROUTE)
        content_type = headers.get("content-type", "").lower()
        self.multipart = content_type.startswith("multipart/form-data")
        try:
            self.declared: int | None = int(headers.get("content-length", ""))
        except ValueError:
            self.declared = None
        self.received = 0
        self.started = False
        self.finished = False

    def check_declared_length(self) -> None:
        """Refuse at once what the declared length already rules out."""
        if self.declared is None or self.declared <= 0:
            return
        self._check_size(self.declared)
        if self.declared > self.guard.budget.remaining(self.visitor):
            raise self._over_budget(self.declared)
        if self.multipart and not self.guard.room_for_upload(self.declared):
            raise self.guard.out_of_room()

    async def run(self, scope: Scope, receive: Receive, send: Send) -> None:
        guard = self.guard
        if self.multipart:
            guard.multipart_running += 1
        response_body = bytearray()
        status = 0

        async def counted_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                self.started = True
                status = message["status"]
            elif message["type"] == "http.response.body" and self.upload and status == 200:
                response_body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    # Before the client has the paths, so a request naming one finds it.
                    self._follow_uploaded(bytes(response_body))
            await send(message)

        try:
            if self.multipart:
                await guard.app(scope, self._counted(receive), counted_send)
            else:
                try:
                    body = await self._read_event_body(receive)
                except ClientDisconnect:
                    return  # nobody left to answer
                await guard.app(scope, replay(body, receive), counted_send)
        except Refused as refusal:
            self._finish(succeeded=False)
            await self._answer(scope, receive, send, refusal)
        except OSError as error:
            if not is_out_of_space(error):
                raise
            logger.warning("temp folder full while receiving a request: %s", error)
            self._finish(succeeded=False)
            await self._answer(scope, receive, send, guard.out_of_room())
        finally:
            self._finish(succeeded=status == 200)

    def _finish(self, succeeded: bool) -> None:
        """Once: stop counting this body as arriving; clear what a failed upload left.

        Before the refusal is answered, so the client never sees its partial file.
        """
        if not self.multipart or self.finished:
            return
        self.finished = True
        guard = self.guard
        guard.multipart_running -= 1
        guard.multipart_bytes_arriving -= self.received
        if not succeeded and guard.multipart_running == 0:
            guard.held.delete_partial_files()

    def _counted(self, receive: Receive) -> Receive:
        async def counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self._count(len(message.get("body", b"")))
            return message

        return counted

    def _count(self, nbytes: int) -> None:
        """Charge bytes as they arrive; stop the request once past a limit."""
        if not nbytes:
            return
        self.received += nbytes
        if self.multipart:
            self.guard.multipart_bytes_arriving += nbytes
        self._check_size(self.received)
        if not self.guard.budget.charge(self.visitor, nbytes):
            raise self._over_budget(0)
        if self.multipart and not self.guard.room_for_upload(0):
            raise self.guard.out_of_room()

    def _check_size(self, nbytes: int) -> None:
        budget = self.guard.budget
        if nbytes > budget.max_bytes:
            raise Refused(
                413,
                f"This request is larger than the {budget.max_bytes // MB} MB a visitor may "
                f"send in {_duration(budget.window_s)}.",
            )
        if not self.multipart and nbytes > self.guard.max_event_body_bytes:
            raise Refused(
                413,
                "This request body is too large. Send files through POST /gradio_api/upload "
                "and pass the returned path.",
            )

    def _over_budget(self, nbytes: int) -> Refused:
        budget = self.guard.budget
        wait = budget.seconds_until(self.visitor, nbytes)
        return Refused(
            429,
            f"Upload limit reached: {budget.max_bytes // MB} MB per visitor in "
            f"{_duration(budget.window_s)}. Try again in {wait} s.",
            wait,
        )

    async def _read_event_body(self, receive: Receive) -> bytes:
        """The whole (small) body of an event; remote file URLs refused, uploads marked used."""
        body = await read_body(self._counted(receive))
        try:
            document = parse_json(body) if body else None
        except ValueError:
            document = None  # Gradio cannot read it either
        paths = file_paths_in(document)
        if len(paths) > MAX_PATHS_PER_BODY:
            raise Refused(400, TOO_MANY_PATHS)
        for refused, message in (
            (_is_remote, REMOTE_FILE),
            (lambda path: not self.guard.may_name(path, self.visitor), NOT_YOURS),
        ):
            if any(refused(path) for path in paths):
                status, detail = value_refusal(
                    self.path,
                    document,
                    self.guard.endpoints,
                    lambda value, refused=refused: any(map(refused, file_paths_in(value))),
                    message,
                )
                raise Refused(status, detail)
        self.guard.held.mark_used(paths)
        return body

    async def _answer(self, scope: Scope, receive: Receive, send: Send, refusal: Refused) -> None:
        if self.started:  # too late for our own answer: end the connection instead
            raise refusal
        await refusal.answer(scope, receive, send)

    def _follow_uploaded(self, response_body: bytes) -> None:
        """Follow the files the upload route wrote (its answer lists their paths)."""
        try:
            written = parse_json(response_body)
        except ValueError:
            return
        if isinstance(written, list):
            self.guard.held.add((p for p in written if isinstance(p, str)), self.visitor)


def file_paths_in(document: object) -> list[str]:
    """The string values of every "path" key in a JSON document."""
    paths: list[str] = []
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            value = node.get("path")
            if isinstance(value, str):
                paths.append(value)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return paths


def _is_remote(path: str) -> bool:
    return path.lower().startswith(("http://", "https://"))


def _duration(seconds: float) -> str:
    if seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute" + ("" if minutes == 1 else "s")
    return f"{int(seconds)} s"
