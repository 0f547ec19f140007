"""What one stranger can do to everyone else (issue 24): each attack of the audit, made over
HTTP against the launched app, as the audit made it; each test failed while the attack worked.

Visitors at different addresses are told apart as on a Space: the app trusts one proxy hop
(ZIMAGE_TRUSTED_PROXY_HOPS=1) and each client here writes the address that proxy would have
seen as its X-Forwarded-For.
"""

from __future__ import annotations

import io
import itertools
import json
import random
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.gradio_http import TIMEOUT, completed, fn_index, join, page_run_data, run
from tests.launcher import ROOT, AppProcess, launched_app, wait_until
from zimage.guards.upload_guard import NOT_YOURS
from zimage.tools.text_to_image import TextToImage

pytestmark = pytest.mark.xdist_group("strangers")  # its apps launched once, on one worker

TTL_S = 20
ALICE, BOB, MALLORY = "203.0.113.10", "198.51.100.20", "192.0.2.30"
SETTINGS = {
    "ZIMAGE_TRUSTED_PROXY_HOPS": "1",
    "ZIMAGE_OUTPUT_TTL_S": str(TTL_S),
    "ZIMAGE_MCP_MAX_SESSIONS": "12",
    "ZIMAGE_MCP_SESSIONS_PER_ADDRESS": "4",
}
# A run long enough on a loaded 2-core machine to act on while it goes (tens of seconds).
LONG_RUN = {
    "generate.prompt": "a lighthouse at dusk",
    "generate.resolution": "512x512",
    "controls.steps": 12,
}
SEEDS = itertools.count(random.randrange(10**6))
PREVIEW = re.compile(r'"path": ?"([^"]+/preview\.png)"')


def at(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    with launched_app(tmp_path_factory.mktemp("strangers"), SETTINGS) as launched:
        yield launched


# -- helpers ------------------------------------------------------------------------------------


def served(app: AppProcess, path: str) -> bool:
    """Whether the app serves the file at `path` (a missing file is answered 403 or 404)."""
    status = httpx.get(f"{app.url}/gradio_api/file={path}", timeout=TIMEOUT).status_code
    assert status in (200, 403, 404), status
    return status == 200


def upload(app: AppProcess, address: str, data: bytes) -> str:
    answer = httpx.post(
        f"{app.url}/gradio_api/upload",
        files=[("files", ("picture.png", data, "image/png"))],
        headers=at(address),
        timeout=TIMEOUT,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()[0]


def png(side: int, seed: int) -> bytes:
    """A PNG of noise (it does not compress): about 3 * side**2 bytes."""
    rng = random.Random(seed)
    image = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def gallery(*paths: str) -> list[dict[str, Any]]:
    return [
        {"image": {"path": p, "meta": {"_type": "gradio.FileData"}}, "caption": None} for p in paths
    ]


def generate(app: AppProcess, address: str, earlier: list[dict] | None = None, session=None):
    """/generate as the official Space's scripts call it, each time with a seed of its own (the
    same image would be the same file, which both makers hold); the raw answer (a refusal's
    text, or the event stream)."""
    data = ["a red kite", "256x256", next(SEEDS), 2, 3.0, False, earlier]
    return join(app.url, fn_index(app.url, "generate"), data, session, at(address))


def first_output(stream: str) -> str:
    message = completed(stream)
    assert message["success"], message
    return message["output"]["data"][0][0]["image"]["path"]


def page_load(app: AppProcess, address: str) -> dict[str, Any]:
    """A new browser's state (its signed pseudonym), as the page gets it."""
    return run(app.url, "on_page_load", [None], headers=at(address))[0]


def pseudonym_id(browser: dict[str, Any]) -> str:
    return browser["pseudonym"].split(".")[0]


def rows_of(app: AppProcess, pseudonym: str) -> int:
    with sqlite3.connect(app.data_dir / "usage.sqlite3") as connection:
        return connection.execute(
            "SELECT COUNT(*) FROM usage WHERE pseudonym = ?", (pseudonym,)
        ).fetchone()[0]


def all_rows_written(app: AppProcess) -> None:
    """Wait until every row recorded so far is stored: one more request's row (rows are
    written in order, by one thread) is there."""
    with sqlite3.connect(app.data_dir / "usage.sqlite3") as connection:
        before = connection.execute("SELECT MAX(id) FROM usage").fetchone()[0] or 0
    marker = TextToImage.endpoint_values(prompt="a marker", resolution="256x256", seed=1, steps=1)
    run(app.url, "text_to_image", marker)

    def written() -> bool:
        with sqlite3.connect(app.data_dir / "usage.sqlite3") as connection:
            return (connection.execute("SELECT MAX(id) FROM usage").fetchone()[0] or 0) > before

    wait_until(written, 60, "the marker row was never written")


def run_while(
    app: AppProcess,
    data: list[Any],
    address: str,
    session: str,
    when_forming: Callable[[list[str]], object],
) -> tuple[dict[str, Any], list[str]]:
    """Run the page's Generate with `data`; once its first preview frames arrive, call
    `when_forming(frame paths)`. The completion message and every frame path seen."""
    index = fn_index(app.url, "generate_in_browser")
    body = {"data": data, "fn_index": index, "session_hash": session, "trigger_id": None}
    frames: list[str] = []
    with httpx.Client(timeout=httpx.Timeout(600, connect=10), headers=at(address)) as client:
        joined = client.post(f"{app.url}/gradio_api/queue/join", json=body)
        assert joined.status_code == 200, joined.text
        event_id = joined.json()["event_id"]
        params = {"session_hash": session}
        with client.stream("GET", f"{app.url}/gradio_api/queue/data", params=params) as events:
            for line in events.iter_lines():
                found = PREVIEW.findall(line)
                if found and not frames:
                    when_forming(found)
                frames += found
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed" and message["event_id"] == event_id:
                    return message, frames
    raise AssertionError("the run never completed")


# -- 1. another visitor's image, tied to a stranger's output -------------------------------------


def test_a_stranger_cannot_keep_anothers_image_past_its_lifetime_or_deletion(app) -> None:
    browser = page_load(app, ALICE)
    stream = join(
        app.url,
        fn_index(app.url, "generate_in_browser"),
        page_run_data(app.url, browser),
        headers=at(ALICE),
    )
    alices = completed(stream)["output"]["data"][0][0]["image"]["path"]
    by_script = first_output(generate(app, ALICE))
    for path in (alices, by_script):
        refused = generate(app, BOB, gallery(path))
        assert NOT_YOURS in refused, refused
    # What is one's own may be named again: one's earlier output, one's upload.
    own_upload = upload(app, BOB, png(64, seed=1))
    bobs = first_output(generate(app, BOB, gallery(own_upload)))
    assert first_output(generate(app, BOB, gallery(bobs, own_upload)))
    assert NOT_YOURS in generate(app, ALICE, gallery(own_upload)), "an upload is its sender's"
    # Alice's images go when she deletes her data, and at the end of their lifetime.
    run(app.url, "delete_my_data", [browser], headers=at(ALICE))
    assert not served(app, alices)
    wait_until(lambda: not served(app, by_script), TTL_S + 30, "outlived its lifetime")


# -- 4. MCP sessions: one address cannot take every place ---------------------------------------


MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "attack", "version": "1"},
    },
}


def open_mcp_session(app: AppProcess, address: str) -> httpx.Response:
    headers = {**MCP_HEADERS, **at(address)}
    return httpx.post(f"{app.url}/gradio_api/mcp", json=INITIALIZE, headers=headers, timeout=60)


def test_one_address_cannot_lock_other_agents_out_of_mcp(app) -> None:
    answers = [open_mcp_session(app, MALLORY) for _ in range(15)]  # more than the 12 places
    opened = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code != 200]
    assert len(opened) == 4
    assert {a.status_code for a in refused} == {429}
    message = refused[0].json()["error"]["message"]
    assert "4 open MCP sessions" in message and "DELETE" in message, message
    assert refused[0].headers["retry-after"].isdigit()
    for address in (ALICE, BOB):
        assert open_mcp_session(app, address).status_code == 200, "another agent got in"
    session = opened[0].headers["mcp-session-id"]
    ended = httpx.delete(
        f"{app.url}/gradio_api/mcp",
        headers={**MCP_HEADERS, **at(MALLORY), "mcp-session-id": session},
        timeout=60,
    )
    assert ended.status_code == 200
    assert open_mcp_session(app, MALLORY).status_code == 200, "an ended session frees a place"


# -- 5, 6. consent and deletion reach the runs in flight ----------------------------------------


def test_opting_out_during_a_run_keeps_its_row_out_of_the_log(app) -> None:
    browser = page_load(app, ALICE)

    def opt_out(_frames: list[str]) -> None:
        run(app.url, "set_opt_out", [True, browser], headers=at(ALICE))

    message, _ = run_while(
        app, page_run_data(app.url, browser, **LONG_RUN), ALICE, uuid.uuid4().hex, opt_out
    )
    assert message["success"], message
    all_rows_written(app)
    assert rows_of(app, pseudonym_id(browser)) == 0


def test_deleting_my_data_during_a_run_stops_it_and_keeps_nothing_of_it(app) -> None:
    browser = page_load(app, ALICE)
    answers: list[Any] = []

    def delete(_frames: list[str]) -> None:
        answers.append(run(app.url, "delete_my_data", [browser], headers=at(ALICE)))

    message, frames = run_while(
        app, page_run_data(app.url, browser, **LONG_RUN), ALICE, uuid.uuid4().hex, delete
    )
    assert answers and frames
    assert "zimage.png" not in json.dumps(message), "the run was stopped before its image"
    assert not any(served(app, frame) for frame in set(frames))
    all_rows_written(app)
    assert rows_of(app, pseudonym_id(browser)) == 0, "no row under the deleted pseudonym"
    history = run(app.url, "history", [browser], headers=at(ALICE))
    assert history[0] == [], "no image kept under the deleted pseudonym"


# -- 7. Stop ends the preview frames ------------------------------------------------------------


def test_stop_deletes_the_runs_preview_frames(app) -> None:
    browser = page_load(app, BOB)
    session = uuid.uuid4().hex
    stop = fn_index(app.url, "stop")

    def press_stop(_frames: list[str]) -> None:
        body = {"data": [], "fn_index": stop, "session_hash": session, "trigger_id": None}
        joined = httpx.post(
            f"{app.url}/gradio_api/queue/join", json=body, headers=at(BOB), timeout=TIMEOUT
        )
        assert joined.status_code == 200, joined.text

    long_run = page_run_data(app.url, browser, **LONG_RUN)
    _, frames = run_while(app, long_run, BOB, session, press_stop)
    assert frames
    assert not any(served(app, frame) for frame in set(frames))


def test_a_finished_runs_preview_frames_are_deleted_and_its_image_kept(app) -> None:
    browser = page_load(app, BOB)
    short = page_run_data(app.url, browser, **{"controls.steps": 3})
    message, frames = run_while(app, short, BOB, uuid.uuid4().hex, lambda _frames: None)
    assert message["success"] and frames
    assert not any(served(app, frame) for frame in set(frames))
    assert served(app, message["output"]["data"][0][0]["image"]["path"])


# -- 8, 13. the data download: one per visitor, deleted with the data ---------------------------


def downloads_in(app: AppProcess) -> list[Path]:
    return [path for path in app.temp_dir.rglob("my-usage-data.json")]


def test_the_data_download_goes_with_the_data_and_is_kept_once(app) -> None:
    browser = page_load(app, ALICE)
    before = len(downloads_in(app))
    for _ in range(12):  # the audit's 600 calls made 603 files
        run(app.url, "show_my_data", [browser], headers=at(ALICE))
    assert len(downloads_in(app)) <= before + 1, "a new download replaces the last one"
    path = run(app.url, "show_my_data", [browser], headers=at(ALICE))[1]["value"]["path"]
    assert served(app, path)
    run(app.url, "delete_my_data", [browser], headers=at(ALICE))
    assert not served(app, path)


# -- 9. a session id leads to nothing else ------------------------------------------------------


def test_a_session_id_gives_no_deep_link_and_a_huge_one_is_refused(app) -> None:
    session = uuid.uuid4().hex
    browser = page_load(app, ALICE)
    run(app.url, "set_opt_out", [False, browser], session_hash=session, headers=at(ALICE))
    deep = httpx.get(
        f"{app.url}/gradio_api/deep_link", params={"session_hash": session}, timeout=TIMEOUT
    )
    assert deep.status_code == 404 and browser["pseudonym"] not in deep.text
    huge = "a" * 1_000_000
    for answer in (
        httpx.post(
            f"{app.url}/gradio_api/queue/join",
            json={
                "data": [None],
                "fn_index": fn_index(app.url, "on_page_load"),
                "session_hash": huge,
            },
            timeout=TIMEOUT,
        ),
        httpx.get(f"{app.url}/gradio_api/heartbeat/{'b' * 5000}", timeout=TIMEOUT),
        httpx.get(
            f"{app.url}/gradio_api/queue/data", params={"session_hash": "c" * 5000}, timeout=TIMEOUT
        ),
    ):
        assert answer.status_code == 400, answer.text
        assert "session_hash must be 1 to 128" in answer.json()["detail"]


# -- 11. MCP answers name no library internals --------------------------------------------------


def test_mcp_answers_a_batch_and_bad_json_readably(app) -> None:
    headers = {**MCP_HEADERS, **at(BOB)}
    for body in (json.dumps([INITIALIZE]).encode(), b"{nope", b'{"jsonrpc": "2.0", "id": 1}'):
        answer = httpx.post(f"{app.url}/gradio_api/mcp", content=body, headers=headers, timeout=60)
        assert answer.status_code == 400
        message = answer.json()["error"]["message"]
        assert message.startswith(
            ("Invalid request:", "Parse error: the body is not valid JSON")
        ), message
        for internal in ("pydantic", "validation error for", "JSONRPC", "input_value", "char 1"):
            assert internal not in answer.text, answer.text


# -- 12. headers on every answer; only the sample images served from examples/ ------------------


def test_a_cors_preflight_carries_the_security_headers(app) -> None:
    answer = httpx.options(
        f"{app.url}/gradio_api/queue/join",
        headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"},
        timeout=TIMEOUT,
    )
    assert answer.status_code == 200
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert "camera=(self)" in answer.headers["permissions-policy"]


def test_only_the_sample_images_are_served_from_the_examples_folder(app) -> None:
    assert served(app, str(ROOT / "examples" / "house.png"))
    assert not served(app, str(ROOT / "examples" / "make_samples.py"))


# -- 2. the same files named by many sessions count once ----------------------------------------


@pytest.fixture(scope="module")
def small_cache_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    settings = {"ZIMAGE_TRUSTED_PROXY_HOPS": "1", "ZIMAGE_CACHE_MAX_MB": "16"}
    with launched_app(tmp_path_factory.mktemp("small-cache"), settings) as launched:
        yield launched


def test_files_named_by_many_sessions_count_once_and_evict_no_one(small_cache_app) -> None:
    app = small_cache_app
    victims = first_output(generate(app, ALICE))
    # Three 2.4 MB uploads (7 MB, within the 8 MB uploads may hold), named by eight sessions:
    # counted each time, that was 58 MB against the 16 MB cap.
    uploads = [upload(app, MALLORY, png(900, seed=n)) for n in range(3)]
    for _ in range(8):
        assert first_output(generate(app, MALLORY, gallery(*uploads), uuid.uuid4().hex))
    assert served(app, victims), "another visitor's image was evicted"
