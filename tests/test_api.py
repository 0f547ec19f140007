"""The /generate endpoint as a script sees it: through gradio_client against the served app."""

import io

import httpx
import pytest
from gradio_client.exceptions import AppError
from PIL import Image


def generate(client, **overrides):
    arguments = dict(
        prompt="a lighthouse at dusk",
        resolution="512x256",
        seed=7,
        randomize_seed=False,
        steps=4,
        shift=3.0,
    )
    arguments.update(overrides)
    return client.predict(**arguments, api_name="/generate")


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def test_generate_returns_a_png_of_the_requested_size_and_the_seed(client) -> None:
    image_path, seed_used = generate(client)
    data = read_bytes(image_path)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    assert image.size == (512, 256)
    assert seed_used == 7


def test_same_seed_is_byte_identical_and_another_seed_differs(client) -> None:
    first = read_bytes(generate(client, seed=3)[0])
    second = read_bytes(generate(client, seed=3)[0])
    other = read_bytes(generate(client, seed=4)[0])
    assert first == second
    assert first != other


def test_random_seed_is_reported(client) -> None:
    _, seed_a = generate(client, randomize_seed=True)
    _, seed_b = generate(client, randomize_seed=True)
    assert isinstance(seed_a, int) and isinstance(seed_b, int)
    assert seed_a != seed_b


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"prompt": "   "}, "prompt is empty"),
        ({"resolution": "500x512"}, "multiple of 16"),
        ({"resolution": "4096x4096"}, "from 256 to 2048"),
        ({"resolution": "square"}, "WIDTHxHEIGHT"),
        ({"steps": 0}, "Steps must be"),
        ({"shift": 99}, "Time shift must be"),
        ({"seed": -5}, "Seed must be"),
    ],
)
def test_bad_parameters_get_a_readable_message(client, overrides, message) -> None:
    with pytest.raises(AppError, match=message):
        generate(client, **overrides)


def test_server_still_answers_after_errors(client) -> None:
    with pytest.raises(AppError):
        generate(client, prompt="")
    assert generate(client, seed=9)[1] == 9


def test_api_documents_the_named_parameters(client) -> None:
    info = client.view_api(print_info=False, return_format="dict")
    endpoint = info["named_endpoints"]["/generate"]
    names = [parameter["parameter_name"] for parameter in endpoint["parameters"]]
    assert names == ["prompt", "resolution", "seed", "randomize_seed", "steps", "shift"]
    assert len(endpoint["returns"]) == 2


def test_http_api_cannot_skip_the_queue(running_app) -> None:
    response = httpx.post(
        f"{running_app.url}/gradio_api/run/generate",
        json={"data": ["a cat", "256x256", 1, False, 2, 3.0]},
        timeout=30,
    )
    assert response.status_code >= 400
