"""Inputs that once gave HTTP 500, a traceback or a raw Python message (issue 13.9, 13.2).

Each now gets a 4xx with a sentence (protocol_guard) or a readable AppError (validation and
images), through the launched app, and leaves no traceback in the server's log.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from zimage.translations import EXAMPLE_EDITS

GENERATE = ["a kite", "256x256", 1, False, 1, 3.0, 1, False]


@pytest.fixture
def server_log(caplog, capfd):
    """Everything the server logged or printed during the test, checked for tracebacks."""
    caplog.set_level(logging.INFO)
    yield
    printed = "".join(capfd.readouterr())
    everything = printed + caplog.text
    assert "Traceback" not in everything
    assert "Exception in ASGI application" not in everything


def post_json(url: str, body: str) -> httpx.Response:
    with httpx.Client(timeout=30) as http:
        return http.post(url, content=body, headers={"content-type": "application/json"})


def stream_of(url: str, api: str, data_json: str) -> str:
    """POST /gradio_api/call/<api>, then read its event stream."""
    started = post_json(f"{url}/gradio_api/call/{api}", '{"data": ' + data_json + "}")
    assert started.status_code == 200, started.text
    with httpx.Client(timeout=60) as http:
        return http.get(f"{url}/gradio_api/call/{api}/{started.json()['event_id']}").text


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "detail"),
    [
        ("POST", "/gradio_api/call/nope", '{"data": []}', 404, "There is no endpoint /nope"),
        ("POST", "/gradio_api/call/v2/nope", "{}", 404, "There is no endpoint /nope"),
        ("POST", "/gradio_api/run/nope", '{"data": []}', 404, "There is no endpoint /nope"),
        ("POST", "/gradio_api/api/nope", '{"data": []}', 404, "There is no endpoint /nope"),
        ("GET", "/gradio_api/call/nope/abc", None, 404, "There is no endpoint /nope"),
        ("GET", "/gradio_api/call/generate/abc", None, 404, "No event abc is waiting"),
        ("GET", "/gradio_api/queue/data?session_hash=zzz", None, 404, "no events waiting"),
        (
            "POST",
            "/gradio_api/queue/join",
            '{"data": [], "fn_index": 9999, "session_hash": "s1"}',
            404,
            "There is no function with fn_index 9999",
        ),
        (
            "POST",
            "/gradio_api/run/predict",
            '{"data": [], "fn_index": 9999}',
            404,
            "There is no function with fn_index 9999",
        ),
        (
            "POST",
            "/gradio_api/queue/join",
            '{"data": [], "fn_index": -1, "session_hash": "s1"}',
            404,
            "There is no function with fn_index -1",
        ),
        (
            "POST",
            "/gradio_api/queue/join",
            '{"data": [], "fn_index": "9999", "session_hash": "s1"}',
            404,
            "There is no function with fn_index 9999",
        ),
        (
            "POST",
            "/gradio_api/queue/join",
            '{"data": [], "session_hash": "s1"}',
            422,
            "fn_index is missing",
        ),
        ("GET", "/gradio_api/file=/tmp/a%00b.png", None, 400, "null character"),
        (
            "POST",
            "/gradio_api/call/edit",
            json.dumps(
                {
                    "data": [
                        {"path": "/tmp/a\x00b.png", "meta": {"_type": "gradio.FileData"}},
                        "snow",
                        None,
                        0.6,
                        1,
                        False,
                        1,
                    ]
                }
            ),
            400,
            "null character",
        ),
    ],
    ids=[
        "unknown-call",
        "unknown-call-v2",
        "unknown-run",
        "unknown-api",
        "unknown-stream-endpoint",
        "unknown-event",
        "unknown-session",
        "fn_index-9999",
        "direct-fn_index-9999",
        "fn_index--1",
        "fn_index-as-text",
        "fn_index-missing",
        "null-in-file-route",
        "null-in-file-path",
    ],
)
def test_protocol_faults_get_a_4xx_with_a_sentence(
    running_app, server_log, method, path, body, status, detail
) -> None:
    with httpx.Client(timeout=30) as http:
        if body is None:
            response = http.request(method, running_app.url + path)
        else:
            response = http.request(
                method,
                running_app.url + path,
                content=body,
                headers={"content-type": "application/json"},
            )
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]


def test_the_pages_direct_calls_name_their_function_by_index(running_app, server_log) -> None:
    """The page posts its unqueued events (an example clicked) to /run/predict with an
    fn_index: the address names no endpoint, and must not be refused for that."""
    load_edit_example = next(
        index
        for index, fn in running_app.space.demo.fns.items()
        if fn.name == "load_example" and fn.inputs[0].elem_id == "edit-examples-en"
    )
    answer = post_json(
        f"{running_app.url}/gradio_api/run/predict",
        json.dumps({"data": [1], "fn_index": load_edit_example}),
    )
    assert answer.status_code == 200, answer.text
    assert EXAMPLE_EDITS["en"][1][1] in answer.text


def test_the_app_still_answers_after_the_faults(running_app, server_log) -> None:
    assert "event: complete" in stream_of(running_app.url, "text_to_image", json.dumps(GENERATE))


@pytest.mark.parametrize(
    ("data_json", "message"),
    [
        (
            '["a kite", "256x256", 1' + "0" * 400 + ", false, 1, 3.0, 1, false]",
            "got a number of about 401",
        ),
        ('["a \\ud800 kite", "256x256", 1, false, 1, 3.0, 1, false]', "broken character"),
        (
            '["\\u200b\\u200d\\ufeff\\u2060", "256x256", 1, false, 1, 3.0, 1, false]',
            "prompt is empty",
        ),
        ('["\\u3164\\u00ad", "256x256", 1, false, 1, 3.0, 1, false]', "prompt is empty"),
    ],
    ids=["seed-10**400", "lone-surrogate", "zero-width-only", "filler-only"],
)
def test_parameter_faults_over_plain_http_get_a_message(
    running_app, server_log, data_json, message
) -> None:
    stream = stream_of(running_app.url, "text_to_image", data_json)
    assert "event: error" in stream and message in stream, stream
    assert "Something went wrong" not in stream


def test_parameter_faults_through_gradio_client(client, server_log) -> None:
    arguments = dict(resolution="256x256", randomize_seed=False, steps=1, shift=3.0)
    with pytest.raises(AppError, match="Seed must be from 0 to 2147483647"):
        client.predict(prompt="a kite", seed=10**400, **arguments, api_name="/text_to_image")
    # (A lone surrogate cannot leave gradio_client: httpx refuses to encode it. Plain HTTP above.)
    with pytest.raises(AppError, match="prompt is empty"):
        client.predict(prompt="\u200b \u200c\ufeff", seed=1, **arguments, api_name="/text_to_image")


def test_an_image_far_beyond_the_edit_size_is_refused_with_a_message(
    client, server_log, tmp_path: Path
) -> None:
    huge = tmp_path / "huge.png"
    Image.new("RGBA", (8192, 8192), (90, 140, 200, 128)).save(huge, compress_level=9)
    with pytest.raises(AppError, match=r"8192x8192 px.*Please scale it down"):
        client.predict(
            image=handle_file(str(huge)),
            instruction="snow",
            mask=None,
            strength=0.6,
            seed=1,
            randomize_seed=False,
            steps=1,
            api_name="/edit",
        )
