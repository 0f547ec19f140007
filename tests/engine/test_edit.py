"""Editing: shared weights, the three methods, mask locality and reproducibility."""

import dataclasses

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.conftest import make_service
from zimage.engine.engine import Engine
from zimage.engine.jobs import RunHooks
from zimage.engine.loading import create_engine, create_preview_engine
from zimage.engine.tiny_pipelines import build_preview_omni_pipeline, build_preview_pipeline
from zimage.service.images import ImageLimits, encode_png
from zimage.service.visitors import Visitor
from zimage.settings import Settings
from zimage.tools.edit import Edit

pytestmark = pytest.mark.xdist_group("edit")  # its fixtures built once, on one worker

SCRIPT = Visitor(owner="session:test")


def scene(width: int = 256, height: int = 256) -> Image.Image:
    image = Image.new("RGB", (width, height), (200, 60, 40))
    ImageDraw.Draw(image).ellipse((40, 40, width - 40, height - 40), fill=(30, 120, 220))
    return image


def square_mask(size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle(box, fill=255)
    return mask


@pytest.fixture(scope="module")
def omni_engine() -> Engine:
    return create_preview_engine(with_omni=True)


def tensors_of(module) -> dict[str, int]:
    return {name: id(tensor) for name, tensor in module.state_dict(keep_vars=True).items()}


def test_edit_pipelines_share_every_weight_with_text_to_image(preview_engine: Engine) -> None:
    base = preview_engine.pipeline
    for edit_pipeline in (preview_engine.img2img, preview_engine.inpaint):
        for name in ("transformer", "text_encoder", "vae"):
            assert getattr(edit_pipeline, name) is getattr(base, name)
            assert tensors_of(getattr(edit_pipeline, name)) == tensors_of(getattr(base, name))
        assert edit_pipeline.tokenizer is base.tokenizer


def test_whole_image_edit_is_img2img_and_reproducible(preview_engine: Engine) -> None:
    request = Edit(image=scene(), instruction="make it green", seed=3)
    first = preview_engine.edit(request)
    second = preview_engine.edit(request)
    assert first.method == "img2img"
    assert first.image.size == (256, 256)
    assert encode_png(first.image) == encode_png(second.image)
    other = preview_engine.edit(Edit(image=scene(), instruction="make it green", seed=4))
    assert encode_png(other.image) != encode_png(first.image)


def test_strength_controls_how_much_changes(preview_engine: Engine) -> None:
    original = np.asarray(scene()).astype(int)

    def change(strength: float) -> float:
        edited = preview_engine.edit(
            Edit(image=scene(), instruction="x", seed=1, strength=strength)
        )
        return float(np.abs(np.asarray(edited.image).astype(int) - original).mean())

    assert change(1.0) != change(0.3)


def test_tiny_strength_still_runs_one_step(preview_engine: Engine) -> None:
    steps: list[tuple[int, int]] = []
    preview_engine.edit(
        Edit(image=scene(), instruction="x", seed=1, strength=0.05, steps=8),
        RunHooks(progress=lambda done, total: steps.append((done, total))),
    )
    assert steps and steps[-1][0] == steps[-1][1] >= 1


def test_inpainting_changes_only_the_masked_region(preview_engine: Engine) -> None:
    original = scene()
    mask = square_mask(original.size, (96, 96, 159, 159))
    result = preview_engine.edit(
        Edit(image=original, instruction="a yellow star", seed=2, mask=mask, strength=1.0)
    )
    assert result.method == "inpaint"
    before = np.asarray(original).astype(int)
    after = np.asarray(result.image).astype(int)
    far_outside = np.ones(before.shape[:2], bool)
    far_outside[80:176, 80:176] = False  # the mask plus a margin for the feathered seam
    assert np.abs(after - before)[far_outside].max() <= 2
    assert np.abs(after - before)[100:156, 100:156].mean() > 10


def test_omni_model_runs_whole_image_edits_and_mask_still_inpaints(omni_engine: Engine) -> None:
    request = Edit(image=scene(), instruction="add a hat", seed=5)
    first = omni_engine.edit(request)
    assert first.method == "omni"
    assert first.image.size == (256, 256)
    assert encode_png(first.image) == encode_png(omni_engine.edit(request).image)
    masked = Edit(
        image=scene(), instruction="add a hat", seed=5, mask=square_mask((256, 256), (0, 0, 63, 63))
    )
    assert omni_engine.edit(masked).method == "inpaint"
    assert "omni" in omni_engine.edit_methods


def test_edit_model_setting_loads_an_omni_checkpoint(tmp_path) -> None:
    build_preview_omni_pipeline(build_preview_pipeline()).save_pretrained(tmp_path)
    settings = Settings.from_env(
        {"ZIMAGE_ENGINE": "preview", "ZIMAGE_EDIT_MODEL": str(tmp_path), "ZIMAGE_DEVICE": "cpu"}
    )
    engine = create_engine(settings)
    assert type(engine.omni).__name__ == "ZImageOmniPipeline"
    assert engine.edit(Edit(image=scene(), instruction="x", seed=1)).method == "omni"


def test_service_normalises_the_upload_and_reads_a_mask_file(tmp_path, preview_engine) -> None:
    service = make_service(preview_engine, ImageLimits(max_megapixels=0.1))
    upload = tmp_path / "in.jpg"
    scene(600, 400).save(upload)
    mask_file = tmp_path / "mask.png"
    square_mask((600, 400), (0, 0, 100, 100)).save(mask_file)
    asked = Edit(
        image=str(upload),
        instruction="paint it",
        mask=str(mask_file),
        strength=0.6,
        seed=9,
        randomize_seed=False,
        steps=4,
    )
    outcome = service.edit(asked, SCRIPT)
    assert outcome.method == "inpaint"
    assert outcome.width % 16 == 0 and outcome.height % 16 == 0
    assert outcome.width * outcome.height <= 100_000
    assert outcome.seed == 9
    assert outcome.png.startswith(b"\x89PNG")


def test_service_treats_unpainted_editor_layers_as_no_mask(tmp_path, preview_engine) -> None:
    service = make_service(preview_engine)
    upload = tmp_path / "in.png"
    scene().save(upload)
    blank_layer = tmp_path / "layer.png"
    Image.new("RGBA", (256, 256), (0, 0, 0, 0)).save(blank_layer)
    painted_layer = tmp_path / "painted.png"
    painted = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
    ImageDraw.Draw(painted).ellipse((10, 10, 80, 80), fill=(255, 255, 255, 255))
    painted.save(painted_layer)
    asked = Edit(image=str(upload), instruction="x", seed=1, randomize_seed=False, steps=2)
    plain = service.edit(dataclasses.replace(asked, mask_layers=[str(blank_layer)]), SCRIPT)
    assert plain.method == "img2img"
    masked = service.edit(
        dataclasses.replace(asked, mask_layers=[str(blank_layer), str(painted_layer)]), SCRIPT
    )
    assert masked.method == "inpaint"
