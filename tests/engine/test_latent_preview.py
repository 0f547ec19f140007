"""The live preview's latent-to-RGB map: fitted to the loaded VAE, right colours, cheap shapes.

Colour claims are checked with `tests/data/colour_vae`, the preview engine's VAE architecture
trained briefly to reconstruct colour pictures (tests/data/train_colour_vae.py): the preview
engine's own VAE has random weights, so its decoded pictures are grey noise that no linear map
follows, and it can only show that the whole path runs (the pipeline tests below).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, ZImageInpaintPipeline
from PIL import Image

from zimage import presets
from zimage.engine.engine import Engine
from zimage.engine.latent_preview import (
    LatentPreview,
    colour_pictures,
    decode_pooled,
    encode_scaled,
)

COLOUR_VAE = Path(__file__).resolve().parents[1] / "data" / "colour_vae"
HELD_OUT_SEED = 123


@pytest.fixture(scope="module")
def colour_vae() -> AutoencoderKL:
    return AutoencoderKL.from_pretrained(COLOUR_VAE).eval()


@pytest.fixture(scope="module")
def colour_preview(colour_vae: AutoencoderKL) -> LatentPreview:
    return LatentPreview.fit(colour_vae)


@pytest.fixture(scope="module")
def engine_preview(preview_engine: Engine) -> LatentPreview:
    return LatentPreview.fit(preview_engine.pipeline.vae)


def as_float(frames: list[np.ndarray]) -> np.ndarray:
    return np.stack(frames).astype(np.float64) / 255


def pooled_decode(vae: AutoencoderKL, latents: torch.Tensor) -> np.ndarray:
    """The VAE's real decode averaged to the latent grid, (batch, height, width, 3) in [0, 1]."""
    return decode_pooled(vae, latents).permute(0, 2, 3, 1).double().numpy()


def solid(rgb: tuple[float, float, float], side: int = 64) -> torch.Tensor:
    """A one-colour picture, channels in [0, 1], as a VAE input in [-1, 1]."""
    return (torch.tensor(rgb).view(1, 3, 1, 1) * 2 - 1).expand(1, 3, side, side)


def test_the_fit_targets_what_the_pipeline_shows(preview_engine: Engine) -> None:
    """decode_pooled scales and shifts as the pipeline's own decode does, pixel for pixel."""
    pipeline = preview_engine.pipeline
    call = {
        "prompt": "a red door",
        "height": 256,
        "width": 192,
        "num_inference_steps": 2,
        "guidance_scale": 0.0,
    }
    latents = pipeline(**call, generator=torch.Generator().manual_seed(5), output_type="latent")
    shown = pipeline(**call, generator=torch.Generator().manual_seed(5), output_type="pt")
    pooled = torch.nn.functional.avg_pool2d(shown.images, 8)
    torch.testing.assert_close(decode_pooled(pipeline.vae, latents.images), pooled)


def test_fit_beats_the_mean_colour_on_held_out_pictures(
    colour_vae: AutoencoderKL, colour_preview: LatentPreview
) -> None:
    generator = torch.Generator().manual_seed(HELD_OUT_SEED)
    latents = encode_scaled(colour_vae, colour_pictures(30, 96, generator))
    truth = pooled_decode(colour_vae, latents)
    preview = as_float(colour_preview.project(latents))
    preview_error = np.mean((preview - truth) ** 2)
    mean_colour_error = np.mean((truth - truth.mean(axis=(0, 1, 2))) ** 2)
    assert preview_error < 0.6 * mean_colour_error, (preview_error, mean_colour_error)


@pytest.mark.parametrize(
    ("name", "rgb"),
    [("red", (1.0, 0.0, 0.0)), ("green", (0.0, 1.0, 0.0)), ("blue", (0.0, 0.0, 1.0))],
)
def test_an_encoded_solid_colour_previews_in_that_colour(
    colour_vae: AutoencoderKL,
    colour_preview: LatentPreview,
    name: str,
    rgb: tuple[float, float, float],
) -> None:
    latents = encode_scaled(colour_vae, solid(rgb))
    shown = as_float(colour_preview.project(latents)).mean(axis=(0, 1, 2))
    decoded = pooled_decode(colour_vae, latents).mean(axis=(0, 1, 2))
    strongest = int(np.argmax(rgb))
    # The trained VAE itself is rough (its red comes back orange), so the preview is held to
    # the picture's dominant channel and to what this VAE shows, not to the pure colour.
    assert int(np.argmax(shown)) == strongest, (name, shown)
    assert np.abs(shown - decoded).max() < 0.2, (name, shown, decoded)


def test_an_encoded_gradient_previews_as_the_same_ramp(
    colour_vae: AutoencoderKL, colour_preview: LatentPreview
) -> None:
    ramp = torch.linspace(0, 1, 128).view(1, 1, 1, 128).expand(1, 3, 128, 128)
    latents = encode_scaled(colour_vae, ramp * 2 - 1)
    brightness = as_float(colour_preview.project(latents))[0].mean(axis=(0, 2))
    decoded = pooled_decode(colour_vae, latents)[0].mean(axis=(0, 2))
    # Dark on the left, light on the right, following the VAE's own decode column by column (this
    # rough VAE itself squeezes black-to-white into 0.2-0.6).
    assert brightness[-1] - brightness[0] > 0.8 * (decoded[-1] - decoded[0]) > 0.3
    assert np.corrcoef(brightness, decoded)[0, 1] > 0.9, (brightness, decoded)


def test_the_fit_is_deterministic_and_seeded(colour_vae: AutoencoderKL) -> None:
    small = {"pictures": 3, "picture_side": 64}
    first = LatentPreview.fit(colour_vae, **small)
    again = LatentPreview.fit(colour_vae, **small)
    other_seed = LatentPreview.fit(colour_vae, seed=1, **small)
    assert torch.equal(first.weight, again.weight)
    assert torch.equal(first.bias, again.bias)
    assert not torch.equal(first.weight, other_seed.weight)


@pytest.mark.parametrize(
    ("shape", "max_side", "expected"),
    [
        ((1, 16, 128, 128), 256, [(128, 128, 3)]),
        ((4, 16, 26, 34), 256, [(26, 34, 3)] * 4),
        ((16, 13, 37), 256, [(13, 37, 3)]),
        ((2, 16, 200, 300), 256, [(171, 256, 3)] * 2),
        ((3, 16, 128, 72), 64, [(64, 36, 3)] * 3),
        ((1, 16, 1, 400), 256, [(1, 256, 3)]),
    ],
)
def test_one_small_uint8_preview_per_image(
    engine_preview: LatentPreview,
    shape: tuple[int, ...],
    max_side: int,
    expected: list[tuple[int, int, int]],
) -> None:
    preview = LatentPreview(engine_preview.weight, engine_preview.bias, 0.0, max_side=max_side)
    frames = preview.project(torch.randn(shape))
    assert [frame.shape for frame in frames] == expected
    assert all(frame.dtype == np.uint8 for frame in frames)


def test_each_image_of_a_batch_gets_its_own_preview(colour_preview: LatentPreview) -> None:
    latents = torch.randn(3, 16, 20, 20, generator=torch.Generator().manual_seed(0))
    together = colour_preview.project(latents)
    alone = [colour_preview.project(latents[index])[0] for index in range(3)]
    for index in range(3):
        np.testing.assert_array_equal(together[index], alone[index])
    assert not np.array_equal(together[0], together[1])


def test_latents_with_the_wrong_channel_count_are_refused(engine_preview: LatentPreview) -> None:
    for shape in ((1, 4, 32, 32), (1, 64, 256), (2, 1, 16, 32, 32)):
        with pytest.raises(ValueError, match="expected latents of shape"):
            engine_preview.project(torch.randn(shape))


def test_each_step_previews_the_picture_the_flow_is_heading_for(
    colour_preview: LatentPreview,
) -> None:
    """Euler steps along the straight path noise -> picture: every frame shows the picture."""
    generator = torch.Generator().manual_seed(0)
    picture = torch.randn(2, 16, 24, 32, generator=generator)
    noise = torch.randn(2, 16, 24, 32, generator=generator)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=presets.DEFAULT_SHIFT)
    scheduler.set_timesteps(presets.DEFAULT_STEPS)
    run = colour_preview.start_run()
    expected = colour_preview.project(picture)
    latents = noise
    frames_per_step = []
    for timestep in scheduler.timesteps:
        latents = scheduler.step(noise - picture, timestep, latents, return_dict=False)[0]
        frames_per_step.append(run.after_step(latents, scheduler))
    assert frames_per_step[0] == []
    for frames in frames_per_step[1:]:
        assert len(frames) == 2
        for frame, wanted in zip(frames, expected):
            assert np.abs(frame.astype(int) - wanted.astype(int)).max() <= 1


def step_frames(pipeline: object, preview: LatentPreview) -> tuple[list, object]:
    """A step-end callback that keeps each step's frames, and the list they go to."""
    run = preview.start_run()
    frames: list[list[np.ndarray]] = []

    def on_step_end(pipeline: object, step: int, timestep: object, tensors: dict) -> dict:
        frames.append(run.after_step(tensors["latents"], pipeline.scheduler))
        return tensors

    return frames, on_step_end


def test_the_preview_engine_gives_a_frame_per_image_and_step(
    preview_engine: Engine, engine_preview: LatentPreview
) -> None:
    pipeline = preview_engine.pipeline
    frames, on_step_end = step_frames(pipeline, engine_preview)
    final = pipeline(
        "a lighthouse at dusk",
        height=208,
        width=272,
        num_images_per_prompt=2,
        num_inference_steps=presets.DEFAULT_STEPS,
        guidance_scale=0.0,
        generator=torch.Generator().manual_seed(3),
        output_type="latent",
        callback_on_step_end=on_step_end,
    ).images
    assert len(frames) == presets.DEFAULT_STEPS
    assert frames[0] == []
    for step in frames[1:]:
        assert [frame.shape for frame in step] == [(26, 34, 3)] * 2
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(frames[1:], frames[2:]))
    # The last step's estimate is the finished latents themselves.
    for shown, finished in zip(frames[-1], engine_preview.project(final)):
        assert np.abs(shown.astype(int) - finished.astype(int)).max() <= 1


def test_inpainting_previews_the_kept_region_unchanged_at_every_step(
    preview_engine: Engine, engine_preview: LatentPreview
) -> None:
    inpaint = ZImageInpaintPipeline(**preview_engine.pipeline.components)
    inpaint.set_progress_bar_config(disable=True)
    photo = Image.new("RGB", (256, 256), (200, 40, 40))
    mask = Image.new("L", (256, 256), 0)
    mask.paste(255, (128, 0, 256, 256))  # repaint the right half, keep the left
    frames, on_step_end = step_frames(inpaint, engine_preview)
    inpaint(
        "a blue door",
        image=photo,
        mask_image=mask,
        strength=1.0,
        height=256,
        width=256,
        num_inference_steps=presets.DEFAULT_STEPS,
        guidance_scale=0.0,
        generator=torch.Generator().manual_seed(0),
        output_type="latent",
        callback_on_step_end=on_step_end,
    )
    kept = [step[0][:, :15].astype(int) for step in frames[1:]]
    for later in kept[1:]:
        assert np.abs(later - kept[0]).max() <= 1
    repainted = [step[0][:, 17:] for step in frames[1:]]
    assert any(not np.array_equal(a, b) for a, b in zip(repainted, repainted[1:]))
