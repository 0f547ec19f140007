"""The /edit endpoint as a script sees it: files in, (image, seed, method) out."""

import io
from pathlib import Path

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image, ImageDraw

SAMPLES = Path(__file__).resolve().parents[2] / "examples"


def edit(client, image, **overrides):
    arguments = dict(
        instruction="make it a snowy evening",
        mask=None,
        strength=0.6,
        seed=3,
        randomize_seed=False,
        steps=4,
    )
    arguments.update(overrides)
    return client.predict(image=handle_file(str(image)), **arguments, api_name="/edit")


def test_a_seed_given_alone_is_the_seed_used(client) -> None:
    _, seed_used, _ = client.predict(
        image=handle_file(str(SAMPLES / "house.png")),
        instruction="make it snowy",
        seed=7,
        steps=1,
        api_name="/edit",
    )
    assert seed_used == 7


@pytest.fixture
def mask_file(tmp_path) -> Path:
    mask = Image.new("L", (512, 384), 0)
    ImageDraw.Draw(mask).rectangle((180, 100, 340, 300), fill=255)
    path = tmp_path / "mask.png"
    mask.save(path)
    return path


def test_edit_without_mask_runs_img2img_at_the_normalised_size(client) -> None:
    image_path, seed_used, method = edit(client, SAMPLES / "house.png")
    image = Image.open(io.BytesIO(Path(image_path).read_bytes()))
    assert image.format == "PNG"
    assert image.size == (512, 384)
    assert seed_used == 3
    assert method == "img2img"


def test_edit_with_mask_inpaints(client, mask_file) -> None:
    _, _, method = edit(client, SAMPLES / "house.png", mask=handle_file(str(mask_file)))
    assert method == "inpaint"


def test_same_seed_same_bytes(client) -> None:
    first = Path(edit(client, SAMPLES / "still_life.png", seed=8)[0]).read_bytes()
    second = Path(edit(client, SAMPLES / "still_life.png", seed=8)[0]).read_bytes()
    assert first == second


def test_corrupt_file_gets_a_message_and_the_next_request_works(client, tmp_path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes((SAMPLES / "house.png").read_bytes()[:200])
    with pytest.raises(AppError, match="damaged or incomplete"):
        edit(client, broken)
    not_image = tmp_path / "notes.png"
    not_image.write_text("hello")
    with pytest.raises(AppError, match="not an image"):
        edit(client, not_image)
    assert edit(client, SAMPLES / "house.png")[2] == "img2img"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"instruction": ""}, "instruction is empty"),
        ({"strength": 0.0}, "Strength must be"),
        ({"strength": 1.5}, "Strength must be"),
        ({"steps": 100}, "Steps must be"),
    ],
)
def test_bad_edit_parameters_are_explained(client, overrides, message) -> None:
    with pytest.raises(AppError, match=message):
        edit(client, SAMPLES / "house.png", **overrides)


def test_empty_mask_is_explained(client, tmp_path) -> None:
    empty = tmp_path / "empty.png"
    Image.new("L", (64, 64), 0).save(empty)
    with pytest.raises(AppError, match="mask is empty"):
        edit(client, SAMPLES / "house.png", mask=handle_file(str(empty)))


def test_edit_api_documents_the_plain_parameters(client) -> None:
    endpoint = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/edit"]
    names = [parameter["parameter_name"] for parameter in endpoint["parameters"]]
    plain = ["image", "instruction", "mask", "strength", "seed", "randomize_seed", "steps"]
    adapters = ["lora", "lora_scale", "lora_2", "lora_2_scale", "trigger_words"]
    assert names == plain + adapters  # new parameters come after the ones scripts already send
    assert len(endpoint["returns"]) == 3
