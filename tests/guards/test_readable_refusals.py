"""Refusals a script can read (issue 23, item 6; issue 22): too few values, JSON nested too
deeply, and values the guards refuse reaching gradio_client users as a sentence, not as a bare
"400 Bad Request". Over real HTTP against the launched app."""

from __future__ import annotations

import httpx
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import ValidationError

from tests.gradio_http import fn_index
from zimage.guards.protocol_guard import NULL_CHARACTER, TOO_DEEP
from zimage.guards.upload_guard import REMOTE_FILE
from zimage.tools.edit import Edit

GENERATE_SIX = ["a kite", "1024x1024 ( 1:1 )", 42, 8, 3.0, True]
TOO_FEW = (
    "/generate takes 7 values (prompt, resolution, seed, steps, shift, random_seed, "
    "gallery_images); this request sent 6."
)
REMOTE_IMAGE = {"path": "https://example.invalid/photo.png", "meta": {"_type": "gradio.FileData"}}


def post(url: str, body: object) -> httpx.Response:
    return httpx.post(url, json=body, timeout=60)


def test_too_few_values_are_named_on_call(running_app) -> None:
    answer = post(f"{running_app.url}/gradio_api/call/generate", {"data": GENERATE_SIX})
    assert answer.status_code == 400
    assert answer.json() == {"detail": TOO_FEW}


def test_too_few_values_are_named_on_the_queue(running_app) -> None:
    body = {
        "data": GENERATE_SIX,
        "fn_index": fn_index(running_app.url, "generate"),
        "session_hash": "six-values",
    }
    answer = post(f"{running_app.url}/gradio_api/queue/join", body)
    assert answer.status_code == 400
    assert answer.json() == {"detail": TOO_FEW}


@pytest.mark.parametrize("route", ["/gradio_api/queue/join", "/gradio_api/call/generate"])
def test_json_nested_too_deeply_is_a_readable_400(running_app, route: str) -> None:
    answer = httpx.post(
        running_app.url + route,
        content="[" * 100_000,
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert answer.status_code == 400
    assert answer.json() == {"detail": TOO_DEEP}


def test_a_remote_file_reaches_gradio_client_users_as_a_sentence(client) -> None:
    remote = handle_file(REMOTE_IMAGE["path"])
    with pytest.raises(ValidationError) as refused:
        client.predict(image=remote, instruction="snow", api_name="/edit")
    assert f"- image: {REMOTE_FILE}" in str(refused.value)


def test_a_null_character_reaches_gradio_client_users_as_a_sentence(client) -> None:
    with pytest.raises(ValidationError) as refused:
        client.predict(prompt="a\x00kite", resolution="256x256", api_name="/text_to_image")
    assert f"- prompt: {NULL_CHARACTER}" in str(refused.value)


def test_a_refused_value_on_the_queue_names_its_input(running_app) -> None:
    """In the format of Gradio's validators: one entry per input, the refused one named (the
    page shows the sentence on that input; gradio_client raises it as above)."""
    body = {
        "data": Edit.endpoint_values(image=REMOTE_IMAGE, instruction="snow", seed=1, steps=2),
        "fn_index": fn_index(running_app.url, "edit"),
        "session_hash": "remote-file",
    }
    answer = post(f"{running_app.url}/gradio_api/queue/join", body)
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert len(detail) == len(Edit.parameters())  # one entry per input
    assert detail[0] == {
        "__type__": "validate",
        "is_valid": False,
        "message": REMOTE_FILE,
        "parameter_name": "image",
    }
    assert all(entry == {"is_valid": True, "message": ""} for entry in detail[1:])
