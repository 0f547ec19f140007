"""Live previews decoded by a tiny autoencoder (TAEF1's class, `AutoencoderTiny`): the preview
engine's tiny random one, the settings that choose it, loading a saved one through the loader
that loads TAEF1, and ZeroGPU's process boundary (tests/standins/spaces: a fresh fork per call,
so nothing set in a worker survives)."""

from __future__ import annotations

import logging
import pickle
import time

import numpy as np
import pytest
import torch
from diffusers import AutoencoderTiny

from tests.engine.test_latent_preview import two_images_with_frames
from tests.engine.test_zero_gpu import calls, zero_gpu  # noqa: F401 - the fixture, used by name
from zimage.engine.engine import Engine
from zimage.engine.jobs import RunHooks
from zimage.engine.latent_preview import TinyAutoencoderPreview
from zimage.engine.loading import create_engine, create_preview_engine, preview_decoder_for
from zimage.engine.tiny_pipelines import build_preview_decoder, build_preview_pipeline
from zimage.settings import Settings, SettingsError
from zimage.tools.text_to_image import TextToImage


def request(**overrides) -> TextToImage:
    values = {"prompt": "a fox", "resolution": "256x256", "seed": 3, "steps": 4, **overrides}
    return TextToImage(**values)


def streamed_frames(engine: Engine, asked: TextToImage) -> list[list[np.ndarray]]:
    frames: list[list[np.ndarray]] = []
    engine.text_to_image(asked, RunHooks(on_preview=frames.append))
    return frames


def test_the_preview_engine_decodes_the_estimate_of_each_step_with_a_tiny_autoencoder(
    preview_engine: Engine,
) -> None:
    preview = preview_engine.preview_decoder
    assert isinstance(preview, TinyAutoencoderPreview)
    assert isinstance(preview.decoder, AutoencoderTiny)
    frames, final = two_images_with_frames(preview_engine.pipeline, preview)
    assert frames[0] == []  # the first step has no estimate yet
    for step in frames[1:]:
        # 34x26 latents, averaged to 32x24 so the decoded frame's longest side is 256.
        assert [(frame.shape, frame.dtype) for frame in step] == [((192, 256, 3), np.uint8)] * 2
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(frames[1:], frames[2:]))
    # The last step's estimate is the finished latents: the frame is their decoded picture.
    for shown, finished in zip(frames[-1], preview.project(final)):
        assert np.array_equal(shown, finished)


def test_the_engine_streams_decoded_frames_without_fitting_a_map() -> None:
    engine = create_preview_engine()
    frames = streamed_frames(engine, request(num_images=2))
    assert len(frames) == 3 and all(len(step) == 2 for step in frames)
    assert frames[-1][0].shape == (256, 256, 3)  # the whole picture, not a pixel per latent
    assert engine.latent_preview is None  # the linear map was never needed


def test_the_linear_map_is_chosen_by_the_setting() -> None:
    settings = Settings.from_env({"ZIMAGE_ENGINE": "preview", "ZIMAGE_PREVIEW_DECODER": "linear"})
    engine = create_engine(settings)
    assert engine.preview_decoder is None
    frames = streamed_frames(engine, request())
    assert frames[-1][0].shape == (32, 32, 3)  # one pixel per latent position
    assert engine.latent_preview is not None  # fitted by the first job, kept for the next


def test_the_setting_takes_only_its_choices() -> None:
    assert Settings.from_env({}).preview_decoder == "auto"
    assert Settings.from_env({}).preview_decoder_model == "madebyollin/taef1"
    with pytest.raises(SettingsError, match="ZIMAGE_PREVIEW_DECODER='vae'.*auto, taef1, linear"):
        Settings.from_env({"ZIMAGE_PREVIEW_DECODER": "vae"})


def test_a_saved_tiny_autoencoder_loads_through_the_taef1_loader(tmp_path) -> None:
    build_preview_decoder().save_pretrained(tmp_path / "taef1")
    build_preview_pipeline().save_pretrained(tmp_path / "model")
    settings = Settings.from_env(
        {
            "ZIMAGE_ENGINE": "diffusers",
            "ZIMAGE_DEVICE": "cpu",
            "ZIMAGE_MODEL": str(tmp_path / "model"),
            "ZIMAGE_PREVIEW_DECODER": "taef1",
            "ZIMAGE_PREVIEW_DECODER_MODEL": str(tmp_path / "taef1"),
            "ZIMAGE_ENHANCER": "off",
        }
    )
    engine = create_engine(settings)
    assert isinstance(engine.preview_decoder, TinyAutoencoderPreview)
    latents = torch.randn(1, 16, 32, 32)
    expected = TinyAutoencoderPreview(build_preview_decoder()).project(latents)
    assert np.array_equal(engine.preview_decoder.project(latents)[0], expected[0])


def test_auto_falls_back_to_the_linear_map_and_taef1_refuses(tmp_path, caplog) -> None:
    wrong = AutoencoderTiny(
        encoder_block_out_channels=(4,) * 4,
        decoder_block_out_channels=(4,) * 4,
        num_encoder_blocks=(1,) * 4,
        num_decoder_blocks=(1,) * 4,
        latent_channels=4,  # SD's latents, not FLUX's 16
    )
    wrong.save_pretrained(tmp_path / "taesd")
    for model in (str(tmp_path / "missing"), str(tmp_path / "taesd")):
        auto = Settings(preview_decoder="auto", preview_decoder_model=model)
        with caplog.at_level(logging.INFO, logger="zimage.engine.loading"):
            assert preview_decoder_for(auto, 16, "cpu", torch.float32) is None
        assert f"live previews use the linear map: {model}" in caplog.text
        chosen = Settings(preview_decoder="taef1", preview_decoder_model=model)
        with pytest.raises(Exception, match="latent channels|missing|not|no file"):
            preview_decoder_for(chosen, 16, "cpu", torch.float32)
        caplog.clear()


def test_the_decoder_stays_with_the_engine_and_frames_cross_the_zero_gpu_boundary(
    zero_gpu,  # noqa: F811 - the fixture imported above
    preview_engine: Engine,
) -> None:
    engine = Engine(
        build_preview_pipeline(),
        kind="preview",
        description="zero",
        preview_decoder=TinyAutoencoderPreview(build_preview_decoder()),
    )
    assert engine.on_zero_gpu
    job = engine._job_for(request(), deadline=time.monotonic() + 60, want_previews=True)
    sent = pickle.dumps(job)
    assert job.preview_map is None and b"AutoencoderTiny" not in sent  # weights are not sent
    here = streamed_frames(preview_engine, request())
    for _ in range(2):  # each call is a fresh worker: nothing the first set is needed
        there = streamed_frames(engine, request())
        assert len(there) == len(here) == 3
        for frames, expected in zip(there, here):
            assert all(np.array_equal(a, b) for a, b in zip(frames, expected))
    assert len(calls(zero_gpu)) == 2
    assert engine.latent_preview is None
