"""Issue 12 item 3: uploads are not a free RAM disk, through every route Gradio offers.

Against the launched app: a flood from one client is cut at its byte budget (declared and
undeclared lengths), all uploads together stop at the total cap, uploads nobody uses are
deleted, image-editor blobs expire, the unused recording route is closed, a remote file URL is
not fetched, and the output cache's byte cap counts the uploads an output keeps.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.conftest import RunningApp, serve
from tests.forwarding_proxy import client_from
from tests.launcher import WAIT_S, wait_until
from zimage.tools.edit import Edit

pytestmark = pytest.mark.xdist_group("upload_guard")  # its fixtures built once, on one worker

MB = 1024 * 1024
UNUSED_S = 4
FILE_SIZE = int(1.5 * MB)
# /edit's inputs in order: image, instruction, mask, strength, seed, randomize_seed, steps.


def edit_data(image: dict, strength: float = 0.6) -> list:
    """/edit's data for a plain HTTP call: `image` and the rest as a small edit."""
    return Edit.endpoint_values(image=image, instruction="snow", strength=strength, seed=1, steps=1)


@pytest.fixture(scope="module")
def app() -> Iterator[RunningApp]:
    yield from serve(
        {
            "ZIMAGE_MAX_UPLOAD_MB": "2",
            "ZIMAGE_UPLOAD_VISITOR_MB": "6",
            "ZIMAGE_UPLOAD_WINDOW_S": "60",
            "ZIMAGE_UPLOAD_TOTAL_MB": "8",
            "ZIMAGE_UPLOAD_UNUSED_S": str(UNUSED_S),
            "ZIMAGE_CACHE_MAX_MB": "16",
            "ZIMAGE_EDIT_MAX_MP": "0.0625",
        }
    )


@pytest.fixture
def nothing_held(app: RunningApp) -> RunningApp:
    """Start each test with no upload held (the previous test's expire within seconds)."""
    held = app.space.held_uploads
    wait_until(lambda: held.held_bytes() == 0, WAIT_S, "uploads still held")
    return app


def upload(http: httpx.Client, app: RunningApp, *files: bytes) -> httpx.Response:
    form = [("files", (f"f{n}.bin", data)) for n, data in enumerate(files)]
    return http.post(f"{app.url}/gradio_api/upload", files=form)


def random_bytes(size: int) -> bytes:
    return os.urandom(size)


def partial_files(folder: Path) -> list[Path]:
    """Files at the top of the temp folder: Gradio's temporary files of unfinished uploads."""
    return [p for p in folder.iterdir() if p.is_file()]


def test_flood_from_one_client_stops_at_its_budget(nothing_held: RunningApp) -> None:
    app = nothing_held
    with client_from("127.0.0.10") as http:
        answers = [upload(http, app, random_bytes(FILE_SIZE)) for _ in range(10)]
    statuses = [answer.status_code for answer in answers]
    assert statuses == [200] * 3 + [429] * 7  # 6 MB a visitor: three files and their forms
    refused = answers[-1]
    assert refused.headers["content-type"] == "application/json"
    assert refused.json()["detail"].startswith("Upload limit reached: 6 MB per visitor in 1 ")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    stored = [Path(answer.json()[0]) for answer in answers[:3]]
    assert all(path.stat().st_size == FILE_SIZE for path in stored)
    assert app.space.held_uploads.held_bytes() == 3 * FILE_SIZE
    with client_from("127.0.0.11") as other:  # others are not affected
        assert upload(other, app, random_bytes(FILE_SIZE)).status_code == 200
    # Nobody used them: deleted by the server within the unused time (plus a sweep).
    wait_until(lambda: not any(p.exists() for p in stored), WAIT_S, "unused uploads kept")


def test_many_files_in_one_request_are_cut_at_the_budget_without_a_length(
    nothing_held: RunningApp, gradio_temp_dir: Path
) -> None:
    app = nothing_held
    boundary = "zimage-test-boundary"
    part = random_bytes(FILE_SIZE)
    sent = {"bytes": 0}

    def body() -> Iterator[bytes]:  # five files in one form, streamed: no Content-Length
        for n in range(5):
            head = (
                f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
                f'filename="p{n}.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
            for chunk in (head, part, b"\r\n"):
                sent["bytes"] += len(chunk)
                yield chunk
        yield f"--{boundary}--\r\n".encode()

    with client_from("127.0.0.12") as http:
        answer = http.post(
            f"{app.url}/gradio_api/upload",
            content=body(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    assert answer.status_code == 413
    assert "larger than the 6 MB a visitor may send" in answer.json()["detail"]
    # Nothing of it is kept: no upload followed, no partial file left behind.
    assert app.space.held_uploads.held_bytes() == 0
    assert partial_files(gradio_temp_dir) == []
    assert httpx.get(app.url).status_code == 200


def test_a_declared_length_over_the_budget_is_refused_before_reading(
    nothing_held: RunningApp,
) -> None:
    app = nothing_held
    with client_from("127.0.0.13") as http:
        assert upload(http, app, random_bytes(FILE_SIZE)).status_code == 200
        answer = upload(http, app, *(random_bytes(FILE_SIZE) for _ in range(3)))
    assert answer.status_code == 429
    assert app.space.held_uploads.held_bytes() == FILE_SIZE


def test_all_uploads_together_stop_at_the_total_cap(
    nothing_held: RunningApp, gradio_temp_dir: Path
) -> None:
    app = nothing_held
    statuses = []
    for n in range(3):  # three visitors, each within their own budget: 8 MB cap in total
        with client_from(f"127.0.0.{20 + n}") as http:
            for _ in range(2):
                statuses.append(upload(http, app, random_bytes(FILE_SIZE)).status_code)
    assert statuses == [200] * 5 + [507]
    with client_from("127.0.0.23") as http:
        refused = upload(http, app, random_bytes(FILE_SIZE))
    assert refused.status_code == 507
    assert "out of temporary space" in refused.json()["detail"]
    assert int(refused.headers["retry-after"]) == UNUSED_S
    assert partial_files(gradio_temp_dir) == []
    # The Space recovers on its own once the unused uploads are deleted.
    wait_until(lambda: app.space.held_uploads.held_bytes() == 0, WAIT_S, "never freed")
    with client_from("127.0.0.23") as http:
        assert upload(http, app, random_bytes(FILE_SIZE)).status_code == 200


def png(size: int, seed: int) -> bytes:
    """A PNG of noise: about 3 x size^2 bytes, distinct for each seed."""
    image = Image.frombytes("RGB", (size, size), random_bytes(3 * size * size))
    image.putpixel((0, 0), (seed % 256, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def call_edit(http: httpx.Client, app: RunningApp, path: str, strength: float = 0.6) -> str:
    """One /edit over the plain HTTP API naming an uploaded file: "ok" or the error."""
    image = {"path": path, "meta": {"_type": "gradio.FileData"}}
    data = edit_data(image, strength)
    started = http.post(f"{app.url}/gradio_api/call/edit", json={"data": data})
    assert started.status_code == 200, started.text
    stream = http.get(f"{app.url}/gradio_api/call/edit/{started.json()['event_id']}")
    kind, _, answer = stream.text.strip().rsplit("event: ", 1)[-1].partition("\n")
    return "ok" if kind == "complete" else answer


def test_uploads_a_request_named_are_kept_and_the_rest_deleted(nothing_held: RunningApp) -> None:
    app = nothing_held
    with client_from("127.0.0.30") as http:
        # Named by a request that failed (a bad strength): kept for the output lifetime, as
        # for a request still waiting in the queue. Each upload is named at once: the unused
        # time here is 4 s.
        refused = Path(upload(http, app, png(256, 1)).json()[0])
        assert "Strength" in call_edit(http, app, str(refused), strength=7)
        used = Path(upload(http, app, png(256, 2)).json()[0])
        assert call_edit(http, app, str(used)) == "ok"
        unused = Path(upload(http, app, png(256, 3)).json()[0])
    wait_until(lambda: not unused.exists(), WAIT_S, "the unused upload was kept")
    assert used.exists() and refused.exists()
    refused.unlink()  # else held until the output lifetime, into the next tests


def test_the_cache_cap_counts_the_uploads_outputs_keep(nothing_held: RunningApp) -> None:
    app = nothing_held
    cache = app.space.service.cache
    cache.purge_all()
    kept = []
    for seed in range(12):  # 12 x ~1.5 MB of uploads against a 16 MB cap
        with client_from(f"127.0.1.{seed}") as http:  # each within its own upload budget
            path = Path(upload(http, app, png(700, seed)).json()[0])
            assert call_edit(http, app, str(path)) == "ok"
        kept.append(path)
    assert cache.total_bytes <= 16 * MB
    assert not kept[0].exists(), "the oldest output and its upload should have been evicted"
    assert kept[-1].exists()


def test_image_editor_blobs_expire(nothing_held: RunningApp) -> None:
    app = nothing_held
    config = httpx.get(f"{app.url}/config").json()
    editor_id = next(c["id"] for c in config["components"] if c.get("type") == "imageeditor")
    store = app.space.demo.blocks[editor_id].blob_storage
    with client_from("127.0.0.40") as http:
        for n in range(3):  # blobs an edit would use; no edit follows
            answer = http.post(
                f"{app.url}/gradio_api/component_server",
                data={
                    "component_id": str(editor_id),
                    "session_hash": "blob-test",
                    "fn_name": "accept_blobs",
                    "type": "background",
                    "index": "null",
                    "id": f"blob-{n}",
                },
                files={"files": ("blob.png", random_bytes(FILE_SIZE))},
            )
            assert answer.status_code == 200, answer.text
    assert len(store) == 3
    assert app.space.held_uploads.held_bytes() >= 3 * FILE_SIZE
    wait_until(lambda: len(store) == 0, WAIT_S, "editor blobs kept in memory")


def test_the_unused_recording_route_is_closed(nothing_held: RunningApp) -> None:
    answer = httpx.post(
        f"{nothing_held.url}/gradio_api/process_recording",
        files={"video": ("clip.mp4", random_bytes(100_000))},
    )
    assert answer.status_code == 404


def test_a_remote_file_url_is_not_fetched(nothing_held: RunningApp) -> None:
    app = nothing_held
    for url in ("https://example.invalid/big.png", "HTTP://example.invalid/big.png"):
        data = edit_data({"path": url, "meta": {"_type": "gradio.FileData"}})
        answer = httpx.post(f"{app.url}/gradio_api/call/edit", json={"data": data})
        assert answer.status_code == 400
        assert "does not fetch files from other sites" in answer.json()["detail"]


def test_an_oversized_event_body_is_refused(nothing_held: RunningApp) -> None:
    app = nothing_held
    inline = "data:image/png;base64," + "A" * (3 * MB)  # over 4/3 of the 2 MB upload limit
    data = edit_data({"path": "x.png", "url": inline, "meta": {"_type": "gradio.FileData"}})
    with client_from("127.0.0.41") as http:
        answer = http.post(f"{app.url}/gradio_api/call/edit", json={"data": data})
    assert answer.status_code == 413
    assert "POST /gradio_api/upload" in answer.json()["detail"]
