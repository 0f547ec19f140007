"""The script endpoints as scripts see them: through gradio_client against the served app.

`/text_to_image` is ours; `/generate` is the official Z-Image-Turbo Space's call, which public
scripts use, so it must run unchanged here.
"""

import io
import json

import gradio_client.client
import httpx
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from tests.gradio_http import completed, fn_index, join
from zimage.tools.text_to_image import TextToImage


def text_to_image(client, **overrides):
    arguments = dict(
        prompt="a lighthouse at dusk",
        resolution="512x256",
        seed=7,
        randomize_seed=False,
        steps=4,
        shift=3.0,
    )
    arguments.update(overrides)
    return client.predict(**arguments, api_name="/text_to_image")


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def test_text_to_image_returns_pngs_of_the_requested_size_and_the_seed(client) -> None:
    gallery, seed_used = text_to_image(client)
    assert len(gallery) == 1
    data = read_bytes(gallery[0]["image"])
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data))
    assert image.size == (512, 256)
    assert seed_used == 7
    assert gallery[0]["caption"] == "seed 7"


def test_several_images_have_consecutive_seeds_each_equal_to_its_single_run(client) -> None:
    gallery, seed_used = text_to_image(client, num_images=3, resolution="256x256", seed=20)
    assert seed_used == 20
    assert [item["caption"] for item in gallery] == ["seed 20", "seed 21", "seed 22"]
    batch = [Image.open(item["image"]).convert("RGB") for item in gallery]
    alone = Image.open(text_to_image(client, resolution="256x256", seed=21)[0][0]["image"])
    difference = max(abs(a - b) for a, b in zip(batch[1].tobytes(), alone.convert("RGB").tobytes()))
    assert difference <= 2  # the same image, up to batched arithmetic


def messages_of(stream: str) -> list[str]:
    return [json.loads(line[5:])["msg"] for line in stream.splitlines() if line.startswith("data:")]


def test_without_live_preview_the_result_comes_once_as_from_a_plain_function(running_app) -> None:
    """Gradio sends a generator's last value as a step and again in the completion; a call that
    asked for no frames gets it in the completion alone."""
    url = running_app.url
    data = TextToImage.endpoint_values(prompt="a kite", resolution="256x256", seed=5, steps=2)
    stream = join(url, fn_index(url, "text_to_image"), data)
    assert "process_generating" not in messages_of(stream)
    gallery, seed = completed(stream)["output"]["data"]
    assert seed == 5 and [item["caption"] for item in gallery] == ["seed 5"]

    asked = TextToImage.endpoint_values(
        prompt="a kite", resolution="256x256", seed=5, steps=3, live_preview=True
    )
    kinds = messages_of(join(url, fn_index(url, "text_to_image"), asked))
    assert kinds.count("process_generating") == 3  # steps 2 and 3, then the result
    assert kinds[-1] == "process_completed"


def test_gradio_client_downloads_a_result_without_live_preview_once(client, monkeypatch) -> None:
    fetched: list[str] = []
    real_stream = gradio_client.client.httpx.stream

    def counted(method: str, url: str, **kwargs):
        fetched.append(url)
        return real_stream(method, url, **kwargs)

    monkeypatch.setattr(gradio_client.client.httpx, "stream", counted)
    gallery, seed = text_to_image(client, resolution="256x256", steps=2)
    job = client.submit(prompt="a kite", resolution="256x256", steps=2, api_name="/text_to_image")
    assert job.result(timeout=120)[1] == job.outputs()[-1][1]  # outputs() ends with the result
    assert len(job.outputs()) == 1
    assert len(fetched) == 2  # one image for each call
    assert Image.open(gallery[0]["image"]).size == (256, 256) and seed == 7


def test_live_preview_streams_the_picture_forming_when_asked(client) -> None:
    job = client.submit(
        prompt="a lighthouse",
        resolution="256x256",
        seed=3,
        randomize_seed=False,
        steps=5,
        num_images=2,
        live_preview=True,
        api_name="/text_to_image",
    )
    gallery, seed = job.result(timeout=120)
    updates = job.outputs()
    frames = [update[0] for update in updates[:-1]]
    assert len(frames) == 4  # steps 2 to 5: the first step has no estimate yet
    assert all(len(frame) == 2 for frame in frames)  # one frame per image
    assert Image.open(frames[-1][0]["image"]).size == (256, 256)  # the tiny autoencoder's
    assert seed == 3 and [item["caption"] for item in gallery] == ["seed 3", "seed 4"]


def test_no_preview_unless_asked(client) -> None:
    job = client.submit(
        prompt="a lighthouse", resolution="256x256", steps=3, api_name="/text_to_image"
    )
    job.result(timeout=120)
    assert len(job.outputs()) == 1


def test_same_seed_is_byte_identical_and_another_seed_differs(client) -> None:
    first = read_bytes(text_to_image(client, seed=3)[0][0]["image"])
    second = read_bytes(text_to_image(client, seed=3)[0][0]["image"])
    other = read_bytes(text_to_image(client, seed=4)[0][0]["image"])
    assert first == second
    assert first != other


def test_random_seed_is_reported(client) -> None:
    _, seed_a = text_to_image(client, randomize_seed=True)
    _, seed_b = text_to_image(client, randomize_seed=True)
    assert isinstance(seed_a, int) and isinstance(seed_b, int)
    assert seed_a != seed_b


def test_a_seed_given_alone_is_the_seed_used_and_none_draws_one(client) -> None:
    common = {"prompt": "a kite", "resolution": "256x256", "steps": 1}
    assert client.predict(**common, seed=7, api_name="/text_to_image")[1] == 7
    drawn = {client.predict(**common, api_name="/text_to_image")[1] for _ in range(2)}
    assert len(drawn) == 2  # no seed (-1): a new one each call
    assert client.predict(**common, seed=7, randomize_seed=True, api_name="/text_to_image")[1] != 7


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"prompt": "   "}, "prompt is empty"),
        ({"resolution": "500x512"}, "multiple of 16"),
        ({"resolution": "4096x4096"}, "from 256 to 2048"),
        ({"resolution": "square"}, "WIDTHxHEIGHT"),
        ({"steps": 0}, "Steps must be"),
        ({"steps": 2.5}, "Steps must be a whole number"),
        ({"shift": 99}, "Time shift must be"),
        ({"seed": -5}, "Seed must be"),
        ({"seed": 2**31}, "Seed must be"),
        ({"num_images": 5}, "Number of images must be"),
    ],
)
def test_bad_parameters_get_a_readable_message(client, overrides, message) -> None:
    with pytest.raises(AppError, match=message):
        text_to_image(client, **overrides)


def test_server_still_answers_after_errors(client) -> None:
    with pytest.raises(AppError):
        text_to_image(client, prompt="")
    assert text_to_image(client, seed=9)[1] == 9


# -- the official Space's call --------------------------------------------------------------------


def test_a_script_for_the_official_space_runs_unchanged(client) -> None:
    # As public scripts call Tongyi-MAI/Z-Image-Turbo (only the Space id differs).
    gallery, seed_text, seed_number = client.predict(
        prompt="a red kite over the sea",
        resolution="1024x1024 ( 1:1 )",
        seed=42,
        steps=2,
        shift=3.0,
        random_seed=False,
        gallery_images=[],
        api_name="/generate",
    )
    assert seed_text == "42" and seed_number == 42
    assert len(gallery) == 1
    assert Image.open(gallery[0]["image"]).size == (1024, 1024)


def test_official_positional_order_and_a_gallery_to_extend(client) -> None:
    first, _, _ = client.predict(
        "a boat", "256x256 ( 1:1 )", 5, 2, 3.0, False, [], api_name="/generate"
    )
    earlier = [{"image": handle_file(first[0]["image"]), "caption": None}]
    gallery, seed_text, seed_number = client.predict(
        "a boat", "256x256", 6, 2, 3.0, False, earlier, api_name="/generate"
    )
    assert (seed_text, seed_number) == ("6", 6)
    assert len(gallery) == 2  # the new image in front of the one sent back
    assert read_bytes(gallery[1]["image"]) == read_bytes(first[0]["image"])


def test_official_call_reads_a_long_prompt_up_to_the_model_limit_as_the_official_space(
    client, caplog
) -> None:
    long_prompt = "a lighthouse, " * 50  # over 512 tokens, under 2000 characters
    with pytest.raises(AppError, match="tokens long"):
        text_to_image(client, prompt=long_prompt, resolution="256x256", steps=1)
    with caplog.at_level("INFO", logger="zimage.service.service"):
        gallery, _, _ = client.predict(
            prompt=long_prompt, resolution="256x256", steps=1, api_name="/generate"
        )
    assert Image.open(gallery[0]["image"]).size == (256, 256)
    assert any("as the official Space does" in line for line in caplog.messages)
    assert not any("lighthouse" in line for line in caplog.messages)  # no prompt in the log


def test_official_random_seed_and_minus_one(client) -> None:
    _, text_a, number_a = client.predict(
        prompt="a cat", resolution="256x256", steps=2, random_seed=True, api_name="/generate"
    )
    _, text_b, number_b = client.predict(
        prompt="a cat",
        resolution="256x256",
        seed=-1,
        steps=2,
        random_seed=False,
        api_name="/generate",
    )
    assert text_a == str(number_a) and text_b == str(number_b)
    assert number_a >= 0 and number_b >= 0


def test_official_call_with_only_a_prompt_uses_the_official_defaults(client) -> None:
    gallery, _, _ = client.predict(prompt="a lamp", steps=1, api_name="/generate")
    assert Image.open(gallery[0]["image"]).size == (1024, 1024)


# -- what scripts and agents read about the API ------------------------------------------------------


def test_api_documents_every_parameter_with_its_type(client) -> None:
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert [p["parameter_name"] for p in endpoints["/generate"]["parameters"]] == [
        "prompt",
        "resolution",
        "seed",
        "steps",
        "shift",
        "random_seed",
        "gallery_images",
    ]
    assert len(endpoints["/generate"]["returns"]) == 3
    own = endpoints["/text_to_image"]["parameters"]
    assert [p["parameter_name"] for p in own] == [
        "prompt",
        "resolution",
        "seed",
        "randomize_seed",
        "steps",
        "shift",
        "num_images",
        "live_preview",
        "model",
        "negative_prompt",
        "guidance",
        "cfg_normalization",
        "lora",
        "lora_scale",
        "lora_2",
        "lora_2_scale",
        "trigger_words",
    ]
    for name in ("/generate", "/text_to_image", "/edit"):
        for parameter in endpoints[name]["parameters"]:
            assert parameter["python_type"]["description"], (name, parameter["parameter_name"])
    types = {p["parameter_name"]: p["type"]["type"] for p in own}
    assert types["seed"] == types["steps"] == types["num_images"] == "integer"
    assert types["shift"] == "number"
    edit = {p["parameter_name"]: p for p in endpoints["/edit"]["parameters"]}
    assert edit["mask"]["parameter_has_default"] and edit["mask"]["parameter_default"] is None
    assert not edit["image"]["parameter_has_default"]


def test_only_the_documented_endpoints_are_public(client) -> None:
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(endpoints) == {"/generate", "/text_to_image", "/edit", "/enhance_prompt"}


def test_http_api_cannot_skip_the_queue(running_app) -> None:
    response = httpx.post(
        f"{running_app.url}/gradio_api/run/text_to_image",
        json={"data": ["a cat", "256x256", 1, False, 2, 3.0, 1]},
        timeout=30,
    )
    assert response.status_code >= 400
