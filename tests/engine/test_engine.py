import numpy as np
import pytest
import torch

from zimage.engine.engine import Engine
from zimage.engine.errors import EngineUnavailable, TimedOut
from zimage.engine.jobs import RunHooks
from zimage.engine.loading import UnavailableEngine, create_engine, load_pipeline
from zimage.engine.tiny_pipelines import build_preview_pipeline
from zimage.engine.zero_gpu import zero_gpu_decorator
from zimage.service.images import encode_png
from zimage.settings import Settings
from zimage.tools.text_to_image import TextToImage


def request(seed: int = 1, width: int = 256, height: int = 256, **overrides) -> TextToImage:
    return TextToImage(
        prompt="a red fox in snow", resolution=f"{width}x{height}", seed=seed, **overrides
    )


def test_preview_runs_the_real_classes(preview_engine: Engine) -> None:
    pipeline = preview_engine.pipeline
    assert type(pipeline).__name__ == "ZImagePipeline"
    assert type(pipeline.transformer).__name__ == "ZImageTransformer2DModel"
    assert type(pipeline.text_encoder).__name__ == "Qwen3Model"
    assert type(pipeline.tokenizer).__name__ == "Qwen2Tokenizer"
    assert type(pipeline.vae).__name__ == "AutoencoderKL"
    assert pipeline.vae.config.latent_channels == 16
    assert preview_engine.is_preview


@pytest.mark.parametrize(("width", "height"), [(256, 256), (512, 256), (256, 384)])
def test_image_has_the_requested_size(preview_engine: Engine, width: int, height: int) -> None:
    result = preview_engine.text_to_image(request(width=width, height=height))
    assert result.image.size == (width, height)
    assert result.image.mode == "RGB"
    pixels = np.asarray(result.image)
    assert pixels.std() > 1.0  # a real decode, not a flat fill


def test_same_seed_gives_identical_pixels(preview_engine: Engine) -> None:
    first = encode_png(preview_engine.text_to_image(request(seed=11)).image)
    second = encode_png(preview_engine.text_to_image(request(seed=11)).image)
    assert first == second


def test_other_seed_prompt_or_shift_changes_the_image(preview_engine: Engine) -> None:
    base = np.asarray(preview_engine.text_to_image(request(seed=11)).image)
    other_seed = np.asarray(preview_engine.text_to_image(request(seed=12)).image)
    other_shift = np.asarray(preview_engine.text_to_image(request(seed=11, shift=6.0)).image)
    other_prompt = np.asarray(
        preview_engine.text_to_image(
            TextToImage(prompt="a blue boat", resolution="256x256", seed=11)
        ).image
    )
    for other in (other_seed, other_shift, other_prompt):
        assert np.abs(base.astype(int) - other.astype(int)).mean() > 0.5


def test_progress_reports_every_step_and_timings_add_up(preview_engine: Engine) -> None:
    seen: list[tuple[int, int]] = []
    result = preview_engine.text_to_image(
        request(steps=5), RunHooks(progress=lambda i, n: seen.append((i, n)))
    )
    assert seen == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    timings = result.timings
    assert min(timings.text_encoder_s, timings.denoise_s, timings.vae_s) > 0
    assert timings.total_s == pytest.approx(
        timings.text_encoder_s + timings.denoise_s + timings.vae_s, rel=1e-6
    )
    assert result.seed == 1


def test_turbo_defaults() -> None:
    generate = TextToImage(prompt="x", resolution="256x256", seed=0)
    assert generate.steps == 8
    assert generate.shift == 3.0


def test_saved_pipeline_loads_through_the_production_loader(
    tmp_path, preview_engine: Engine
) -> None:
    build_preview_pipeline().save_pretrained(tmp_path)
    loaded = load_pipeline(str(tmp_path), device="cpu", dtype=torch.float32)
    assert type(loaded).__name__ == "ZImagePipeline"
    reloaded = Engine(loaded, kind="diffusers", description="saved copy")
    expected = encode_png(preview_engine.text_to_image(request(seed=5)).image)
    assert encode_png(reloaded.text_to_image(request(seed=5)).image) == expected


def test_create_engine_loads_a_model_directory_when_asked(tmp_path) -> None:
    build_preview_pipeline().save_pretrained(tmp_path)
    settings = Settings.from_env(
        {"ZIMAGE_ENGINE": "diffusers", "ZIMAGE_MODEL": str(tmp_path), "ZIMAGE_DEVICE": "cpu"}
    )
    engine = create_engine(settings)
    assert isinstance(engine, Engine)
    assert engine.kind == "diffusers" and not engine.is_preview
    assert engine.attention_backend == "native"
    assert engine.text_to_image(request()).image.size == (256, 256)


def test_auto_without_gpu_is_preview_locally_and_unavailable_on_a_space(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert create_engine(Settings.from_env({})).is_preview
    on_space = create_engine(Settings.from_env({"SPACE_ID": "someone/zimage"}))
    assert isinstance(on_space, UnavailableEngine)
    with pytest.raises(EngineUnavailable, match="no GPU"):
        on_space.text_to_image(request())


def test_failed_load_on_a_space_is_reported_not_raised(tmp_path) -> None:
    settings = Settings.from_env(
        {
            "ZIMAGE_ENGINE": "diffusers",
            "ZIMAGE_MODEL": str(tmp_path / "missing"),
            "ZIMAGE_DEVICE": "cpu",
            "SPACE_ID": "someone/zimage",
        }
    )
    engine = create_engine(settings)
    assert isinstance(engine, UnavailableEngine)
    assert "could not be loaded" in engine.description
    local = Settings.from_env(
        {
            "ZIMAGE_ENGINE": "diffusers",
            "ZIMAGE_MODEL": str(tmp_path / "missing"),
            "ZIMAGE_DEVICE": "cpu",
        }
    )
    with pytest.raises((OSError, ValueError), match="missing"):
        create_engine(local)


def test_zero_gpu_decorator_is_absent_off_zero_gpu(monkeypatch) -> None:
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert zero_gpu_decorator() is None


def test_a_request_past_its_time_limit_is_stopped_before_its_last_step() -> None:
    # A 2048x1952 step takes over a second on any CPU: the limit is reached within the steps.
    engine = Engine(build_preview_pipeline(), kind="preview", description="t", time_limit_s=1.0)
    steps: list[int] = []
    with pytest.raises(TimedOut):
        engine.text_to_image(
            request(width=2048, height=1952, steps=4),
            RunHooks(progress=lambda i, n: steps.append(i)),
        )
    assert len(steps) < 4  # stopped before running every step (and before decoding)


def test_work_the_measured_speed_says_cannot_fit_is_refused_at_once() -> None:
    engine = Engine(build_preview_pipeline(), kind="preview", description="t", time_limit_s=5.0)
    engine.text_to_image(request(steps=2))
    assert engine.speed.seconds_per_step_megapixel is not None
    engine.speed.seconds_per_step_megapixel = 1.0  # as if each step of a megapixel took 1 s
    steps: list[int] = []
    with pytest.raises(TimedOut, match="would take about 200 s"):
        engine.text_to_image(
            request(width=2000, height=2000, steps=50),
            RunHooks(progress=lambda i, n: steps.append(i)),
        )
    assert steps == []  # refused before its first step
