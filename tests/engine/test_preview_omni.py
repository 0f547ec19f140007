"""The tiny image-conditioned edit pipeline (ZImageOmniPipeline) built offline for the preview."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import ZImageOmniPipeline, ZImagePipeline
from PIL import Image

from zimage.engine.tiny_pipelines import (
    SIGLIP_DIM,
    build_preview_omni_pipeline,
    build_preview_pipeline,
)

pytestmark = pytest.mark.xdist_group("preview_omni")  # its fixtures built once, on one worker

PROMPT = "make the sky purple"
STEPS = 4


@pytest.fixture(scope="module")
def base() -> ZImagePipeline:
    return build_preview_pipeline()


@pytest.fixture(scope="module")
def omni(base: ZImagePipeline) -> ZImageOmniPipeline:
    return build_preview_omni_pipeline(base)


def reference_image(width: int = 256, height: int = 256, phase: int = 0) -> Image.Image:
    """A smooth colour gradient: a plausible photo stand-in, the same on every call."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // width, y * 255 // height, (x + y + phase) % 256], axis=-1)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


def edit(pipeline: ZImageOmniPipeline, seed: int = 1, **overrides) -> Image.Image:
    arguments = {
        "image": reference_image(),
        "prompt": PROMPT,
        "guidance_scale": 0.0,
        "num_inference_steps": STEPS,
        "generator": torch.Generator().manual_seed(seed),
        **overrides,
    }
    return pipeline(**arguments).images[0]


def test_shares_the_text_to_image_components(base: ZImagePipeline, omni: ZImageOmniPipeline):
    for name in ("tokenizer", "text_encoder", "scheduler", "transformer"):
        assert getattr(omni, name) is getattr(base, name), name
    # One transformer serves both: it carries the SigLIP inputs, sized to the vision tower.
    assert omni.transformer.config.siglip_feat_dim == SIGLIP_DIM
    assert omni.siglip.config.hidden_size == SIGLIP_DIM
    # diffusers 0.42 encodes reference images as bfloat16, so the edit pipeline's VAE is a
    # bfloat16 copy of the float32 preview VAE.
    assert omni.vae.dtype == torch.bfloat16
    assert base.vae.dtype == torch.float32


def test_edit_returns_an_image_of_the_requested_size(omni: ZImageOmniPipeline):
    image = edit(omni, height=256, width=256)
    assert isinstance(image, Image.Image)
    assert image.size == (256, 256)
    assert image.mode == "RGB"


def test_output_size_follows_the_reference_when_not_given(omni: ZImageOmniPipeline):
    image = edit(omni, image=reference_image(300, 200), num_inference_steps=1)
    assert image.size == (288, 192)  # rounded down to multiples of 16


def test_same_seed_same_bytes_and_other_seed_differs(omni: ZImageOmniPipeline):
    first = edit(omni, seed=7)
    assert edit(omni, seed=7).tobytes() == first.tobytes()
    assert edit(omni, seed=8).tobytes() != first.tobytes()


def test_reference_image_conditions_the_output(omni: ZImageOmniPipeline):
    plain = edit(omni)
    other = edit(omni, image=reference_image(phase=128))
    assert other.tobytes() != plain.tobytes()


def test_text_to_image_still_runs_and_is_untouched_by_edits(
    base: ZImagePipeline, omni: ZImageOmniPipeline
):
    def generate() -> Image.Image:
        return base(
            prompt="a red bicycle",
            height=256,
            width=256,
            guidance_scale=0.0,
            num_inference_steps=STEPS,
            generator=torch.Generator().manual_seed(3),
        ).images[0]

    before = generate()
    assert before.size == (256, 256)
    edit(omni)
    assert generate().tobytes() == before.tobytes()


def test_fresh_build_matches_shared_build(omni: ZImageOmniPipeline):
    assert edit(build_preview_omni_pipeline()).tobytes() == edit(omni).tobytes()


def test_save_and_load_round_trip(omni: ZImageOmniPipeline, tmp_path: Path):
    omni.save_pretrained(tmp_path)
    # The VAE must come back as bfloat16 (see above); everything else stays float32.
    loaded = ZImageOmniPipeline.from_pretrained(
        tmp_path, dtype={"vae": torch.bfloat16, "default": torch.float32}
    )
    loaded.set_progress_bar_config(disable=True)
    assert loaded.siglip_processor.max_num_patches == omni.siglip_processor.max_num_patches
    assert edit(loaded).tobytes() == edit(omni).tobytes()
