"""Errors reveal nothing about the server (issue 12, item 5).

Every attack below used to get an answer naming the working directory, the blocked paths
(the data folder among them), temp paths, a Python exception text or an object repr. Now a
client gets a readable message, and our own messages still arrive word for word.
"""

from __future__ import annotations

import os
import re
import sys

import httpx
import pytest
from gradio_client.exceptions import AppError

from app import SYSTEM_FOLDERS
from tests.gradio_http import call, file_data, fn_index, join, page_inputs
from zimage.guards.public_errors import REQUEST_REFUSED
from zimage.page.edit import SAMPLES
from zimage.tools.edit import Edit

INTERNALS = re.compile(
    r"\b[A-Z]\w*(Error|Exception)\b|<[\w.]+ object at 0x|Traceback|'\w+' object|pydantic"
)


def server_paths(running_app) -> list[str]:
    paths = [
        os.getcwd(),
        running_app.settings.data_dir,
        os.environ["GRADIO_TEMP_DIR"],
        os.path.expanduser("~"),
        sys.prefix,
        *SYSTEM_FOLDERS,
    ]
    return [p for path in paths for p in {path, os.path.realpath(path)}]


def assert_reveals_nothing(running_app, answer: str) -> None:
    found = [path for path in server_paths(running_app) if path in answer]
    found += [match.group(0) for match in INTERNALS.finditer(answer)]
    assert found == [], answer


def attack_paths(running_app) -> list[str]:
    data = running_app.settings.data_dir
    return [
        "/etc/passwd",
        "../../../etc/passwd",
        "%2e%2e/%2e%2e/etc/passwd",
        "/proc/self/environ",
        f"{data}/usage.sqlite3",
        f"{data}/browser-state.key",
        f"{os.environ['GRADIO_TEMP_DIR']}/no-such-file.png",
        f"{os.getcwd()}/app.py",
        f"{os.getcwd()}/examples/../app.py",
        "a%00b",
    ]


def test_file_routes(running_app) -> None:
    for path in attack_paths(running_app):
        for route in ("/gradio_api/file=", "/gradio_api/file/"):
            answer = httpx.get(f"{running_app.url}{route}{path}")
            # 400 where the protocol guard refuses first (a null character in the address).
            assert answer.status_code in (400, 403, 404)
            assert_reveals_nothing(running_app, answer.text)


@pytest.mark.parametrize(
    "method, route, body",
    [
        ("POST", "/gradio_api/queue/join", b"{not json"),
        ("POST", "/gradio_api/queue/join", b'{"data": 5, "fn_index": "x"}'),
        ("POST", "/gradio_api/queue/join", b'{"data": [], "fn_index": 9999, "session_hash": "a"}'),
        ("POST", "/gradio_api/queue/join", b'{"data": [], "fn_index": -1, "session_hash": "a"}'),
        ("POST", "/gradio_api/call/generate", b'{"data": 5}'),
        ("POST", "/gradio_api/call/no-such-endpoint", b'{"data": []}'),
        ("POST", "/gradio_api/upload", b"not multipart"),
        ("POST", "/gradio_api/component_server", b'{"x": 1}'),
        ("POST", "/gradio_api/component_server/", b'{"session_hash": "a", "component_id": 3}'),
        ("POST", "/gradio_api/cancel", b'{"x": 1}'),
        ("POST", "/gradio_api/reset", b"[]"),
        ("POST", "/gradio_api/stream/abc", b"{}"),
        ("GET", "/gradio_api/stream/a/b/c/playlist.m3u8", b""),
        ("GET", "/gradio_api/upload_progress?upload_id=zz", b""),
        ("GET", "/gradio_api/deep_link", b""),
        ("GET", "/static/../../../etc/passwd", b""),
        ("GET", "/assets/..%2f..%2fapp.py", b""),
    ],
)
def test_malformed_requests(running_app, method: str, route: str, body: bytes) -> None:
    headers = {"content-type": "application/json"}
    with httpx.Client(timeout=60) as client:  # a fresh connection: a 500 must not end it
        answer = client.request(method, f"{running_app.url}{route}", content=body, headers=headers)
    assert_reveals_nothing(running_app, answer.text)
    if answer.status_code >= 400:
        assert answer.json()["detail"]


def test_config_with_bad_parameters_is_just_the_config(running_app) -> None:
    answer = httpx.get(f"{running_app.url}/config", params={"deep_link": "../x", "page": "zz"})
    assert answer.status_code == 200 and answer.json()["components"]
    # The page's own files are addressed by path (Gradio's file URLs), so the app folder
    # shows there by design; nothing else of the server does.
    assert_reveals_nothing(running_app, answer.text.replace(str(SAMPLES), "<examples>"))


def test_uploads_with_broken_multipart(running_app) -> None:
    url = f"{running_app.url}/gradio_api/upload"
    bodies = [
        (b"--zz\r\nbroken", "multipart/form-data; boundary=zz"),
        (b"x" * 10, "multipart/form-data"),
    ]
    for body, content_type in bodies:
        answer = httpx.post(url, content=body, headers={"content-type": content_type})
        assert_reveals_nothing(running_app, answer.text)


def test_file_parameters_naming_server_files(running_app) -> None:
    names = [*attack_paths(running_app), "http://127.0.0.1:1/x.png", "/tmp/a\x00b"]
    arguments = [file_data(name) for name in names] + ["/etc/passwd", 5, {"a": 1}]
    for image in arguments:
        data = Edit.endpoint_values(image=image, instruction="snow", seed=1, steps=2)
        answer = call(running_app.url, "edit", data)
        # Refused in the event stream, or before it by the upload guard (remote URLs) or the
        # protocol guard (a null character), each with a readable "detail".
        assert "event: error" in answer or '"detail"' in answer, answer
        assert_reveals_nothing(running_app, answer)


def test_wrong_types_and_counts(running_app) -> None:
    for data in (
        [],
        [{"x": 1}, {"y": 2}, [1], [2], [3], [4], "not a gallery"],
        ["a kite", "256x256", "abc", "x", "y", "z", 5],
    ):
        answer = call(running_app.url, "generate", data)
        # Refused in the event stream, or before it by the protocol guard (too few values).
        assert "event: error" in answer or '"detail"' in answer, answer
        assert_reveals_nothing(running_app, answer)
    url = running_app.url
    events = {name: fn_index(url, name) for name in ("show_my_data", "edit_in_browser")}
    for index, data in [
        (events["show_my_data"], ["not a dict"]),
        (events["show_my_data"], [[1, 2]]),
        (events["edit_in_browser"], edit_in_browser(url, "x")),
        (events["edit_in_browser"], edit_in_browser(url, {"background": file_data("/etc/passwd")})),
    ]:
        answer = join(url, index, data)
        assert REQUEST_REFUSED in answer
        assert_reveals_nothing(running_app, answer)


def edit_in_browser(url: str, editor: object) -> list:
    """The page's Edit button's data with `editor` as the image editor's value."""
    values = {"type:imageeditor": editor, "edit.instruction": "snow", "type:browserstate": {}}
    return page_inputs(url, "edit_in_browser", values)


def test_our_messages_arrive_word_for_word(client) -> None:
    cases = [
        ({"resolution": "500x512"}, "Resolution 500x512: each side must be a multiple of 16."),
        ({"prompt": "   "}, "The prompt is empty: please write one."),
        ({"steps": 99}, "Steps must be from 1 to 50 (got 99)."),
    ]
    for overrides, expected in cases:
        arguments = dict(
            prompt="a kite", resolution="256x256", seed=1, randomize_seed=False, steps=2, shift=3.0
        )
        arguments.update(overrides)
        with pytest.raises(AppError) as raised:
            client.predict(**arguments, api_name="/text_to_image")
        assert str(raised.value) == expected
