"""The time limit covers every stage, the VAE decode included: the engine learns how fast it
decodes, refuses up front what denoising and decoding together would take past the limit, and
tells the GPU half (a ZeroGPU worker keeps nothing between jobs) so that a decode that would
end past the deadline is never started. Verdicts come from set speeds and roomy deadlines,
never from how fast this machine happens to be."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from tests.engine.test_zero_gpu import zero_gpu  # noqa: F401 - the fixture, used by name
from zimage.engine.engine import Engine
from zimage.engine.errors import TimedOut
from zimage.engine.jobs import JobDone, JobFailed, RunHooks
from zimage.engine.speeds import DecodeSpeed, DenoiseSpeed
from zimage.engine.tiny_pipelines import build_preview_pipeline
from zimage.tools.text_to_image import TextToImage


def request(**overrides) -> TextToImage:
    values = {"prompt": "a fox", "resolution": "256x256", "seed": 3, "steps": 2, **overrides}
    return TextToImage(**values)


def counting_decodes(engine: Engine) -> list[int]:
    """Count the VAE's decodes from now on."""
    vae = engine.pipeline.vae
    decode, decoded = vae.decode, []

    def counted(*args, **kwargs):
        decoded.append(1)
        return decode(*args, **kwargs)

    vae.decode = counted
    return decoded


def test_the_engine_learns_its_decode_speed_per_megapixel() -> None:
    engine = Engine(build_preview_pipeline(), kind="preview", description="t")
    assert engine.decode_speed.predict_s(request()) is None
    result = engine.text_to_image(request(num_images=2))
    learned = engine.decode_speed.seconds_per_megapixel
    assert learned == pytest.approx(result.timings.vae_s / (2 * 256 * 256 / 1e6))
    assert engine.decode_speed.predict_s(request(resolution="512x512")) == pytest.approx(
        learned * 512 * 512 / 1e6
    )


def test_speeds_blend_new_measurements_and_ignore_empty_ones() -> None:
    decode = DecodeSpeed(weight_of_new=0.5)
    decode.learn(request(), 1.0)
    first = decode.seconds_per_megapixel
    decode.learn(request(), 0.0)  # a stage that did not run (omni decodes inside its loop)
    assert decode.seconds_per_megapixel == first
    decode.learn(request(), 3.0)
    assert decode.seconds_per_megapixel == pytest.approx((1.0 + 3.0) / 2 / (256 * 256 / 1e6))
    denoise = DenoiseSpeed()
    denoise.learn(request(), 1.0, steps_run=0)
    assert denoise.seconds_per_pass_megapixel is None


def test_a_request_whose_decode_would_overrun_is_refused_before_any_work() -> None:
    engine = Engine(build_preview_pipeline(), kind="preview", description="t", time_limit_s=600)
    engine.text_to_image(request())  # learns the speeds, however loaded the machine
    engine.time_limit_s = 5.0
    # As measured on this preview engine at 2048x1952: a fast denoise, a slow decode.
    engine.speeds["turbo"].seconds_per_pass_megapixel = 0.3
    engine.decode_speed.seconds_per_megapixel = 1.3
    steps: list[int] = []
    with pytest.raises(TimedOut, match=r"would take about 8 s, over the 5 s limit"):
        engine.text_to_image(
            request(resolution="2048x1952"), RunHooks(progress=lambda i, n: steps.append(i))
        )
    assert steps == []  # refused before the text encoder, the denoise and the decode


def test_the_gpu_half_never_starts_a_decode_predicted_to_end_past_the_deadline() -> None:
    engine = Engine(build_preview_pipeline(), kind="preview", description="t")
    decoded = counting_decodes(engine)
    roomy = time.monotonic() + 600
    fits = engine._job_for(request(), deadline=roomy, want_previews=False)
    engine.run_job(fits, lambda event: None)
    assert decoded == [1]
    overruns = replace(fits, job_id=fits.job_id + 1, decode_s=1000.0)
    with pytest.raises(TimedOut, match="longer than the"):
        engine.run_job(overruns, lambda event: None)
    assert decoded == [1]  # the second job's decode never ran


def test_the_predicted_decode_crosses_to_a_zero_gpu_worker(zero_gpu) -> None:  # noqa: F811
    engine = Engine(build_preview_pipeline(), kind="preview", description="zero")
    assert engine.on_zero_gpu
    engine.decode_speed.seconds_per_megapixel = 1000.0 / (256 * 256 / 1e6)
    job = engine._job_for(request(), deadline=time.monotonic() + 600, want_previews=False)
    assert job.decode_s == pytest.approx(1000.0)
    (outcome,) = [event for event in engine._stream_on_gpu(job) if not hasattr(event, "step")]
    assert isinstance(outcome, JobFailed) and isinstance(outcome.error, TimedOut)
    engine.decode_speed.seconds_per_megapixel = None
    fits = engine._job_for(request(), deadline=time.monotonic() + 600, want_previews=False)
    assert isinstance(list(engine._stream_on_gpu(fits))[-1], JobDone)
