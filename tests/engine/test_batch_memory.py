"""A text-to-image batch that would not fit in memory is refused before it runs (issue 15.2).

The estimate (zimage/engine/batch_memory.py) is checked against the peak measured on the preview
engine; the free memory is given to the engine as a probe (or capped by the
ZIMAGE_MEMORY_BUDGET_MB setting), so refusals are exact here without a GPU.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator

import pytest
import torch
from gradio_client import Client
from gradio_client.exceptions import AppError
from PIL import Image

from bench.batch_memory import LiveTensorBytes
from tests.conftest import TEST_FOLDER, RunningApp, make_service, serve
from zimage.engine.batch_memory import (
    MB,
    ZERO_GPU_WORKLOAD_BYTES,
    BatchMemory,
    BatchTooLarge,
    available_bytes,
    free_bytes,
    refuse_unless_it_fits,
    weight_bytes,
)
from zimage.engine.engine import Engine
from zimage.engine.jobs import RunHooks
from zimage.engine.loading import create_preview_engine
from zimage.service.service import outcome_of
from zimage.service.visitors import Visitor
from zimage.tools.text_to_image import TextToImage

pytestmark = pytest.mark.xdist_group("batch_memory")  # its fixtures built once, on one worker

REFUSED_4_AT_512 = (
    "4 images at 512x512 need about 244 MB of memory; 100 MB are available. "
    "Try 1 image, or 4 at 320x320."
)
# The figures of the full model in bfloat16 (width 3840, FLUX VAE), as of_pipeline derives them.
FULL = BatchMemory(bytes_per_token=18.5 * 3840 * 2, bytes_per_pixel=3.05 * 256 * 2)
GB = 1024**3


def request(width: int = 512, height: int = 512, images: int = 4, seed: int = 5) -> TextToImage:
    return TextToImage(
        prompt="a lighthouse", resolution=f"{width}x{height}", seed=seed, steps=1, num_images=images
    )


def engine_with(free: int, budget: int = 0) -> Engine:
    engine = create_preview_engine()
    engine.free_memory = lambda: free
    engine.memory_budget_bytes = budget
    return engine


def suggestions(message: str) -> list[tuple[int, int, int]]:
    """(images, width, height) of each 'Try ...' option in a refusal, for a 512x512 request."""
    options = message.split("Try ", 1)[1].rstrip(".").split(", or ")
    found = []
    for option in options:
        match = re.fullmatch(r"(\d+)(?: images?)?(?: at (\d+)x(\d+))?", option)
        assert match, option
        count, width, height = match.groups()
        found.append((int(count), int(width or 512), int(height or 512)))
    return found


# -- the estimate -----------------------------------------------------------------------------


def test_estimate_grows_with_images_and_pixels(preview_engine: Engine) -> None:
    for figures in (preview_engine.batch_memory, FULL):
        one = figures.needed_bytes(1, 1024, 1024)
        assert figures.needed_bytes(2, 1024, 1024) == pytest.approx(2 * one, rel=1e-6)
        assert figures.needed_bytes(4, 1024, 1024) == pytest.approx(4 * one, rel=1e-6)
        assert figures.needed_bytes(1, 2048, 2048) == pytest.approx(4 * one, rel=0.01)
        assert figures.needed_bytes(1, 1280, 720) < one < figures.needed_bytes(1, 1280, 1280)


def test_figures_follow_the_loaded_model(preview_engine: Engine) -> None:
    # The preview engine: width 64, VAE channels [8, 16, ...], float32.
    assert preview_engine.batch_memory == BatchMemory(
        bytes_per_token=18.5 * 64 * 4, bytes_per_pixel=3.05 * 16 * 4, pixels_per_token_side=16
    )
    # The full model: the VAE decode dominates, 4 images at 2048x2048 need about 30 GB.
    assert FULL.needed_bytes(4, 2048, 2048) / GB == pytest.approx(30.5, abs=0.5)
    assert FULL.needed_bytes(1, 1024, 1024) / GB == pytest.approx(1.9, abs=0.1)


def test_estimate_covers_the_measured_peak_of_a_preview_run(preview_engine: Engine) -> None:
    batch = request(320, 320, images=4)
    preview_engine.text_to_image(batch)  # first-call work stays out of the count
    with torch.inference_mode(), LiveTensorBytes() as counter:
        preview_engine.text_to_image(batch)
    estimate = preview_engine.batch_memory.needed_bytes(4, 320, 320)
    assert counter.peak <= estimate <= 1.5 * counter.peak, (counter.peak, estimate)


def test_full_model_message_names_fewer_images_and_a_smaller_size() -> None:
    with pytest.raises(BatchTooLarge) as refused:
        refuse_unless_it_fits(FULL, 4, 2048, 2048, 22 * GB)
    assert str(refused.value) == (
        "4 images at 2048x2048 need about 30 GB of GPU memory; 22 GB are available. "
        "Try 2 images, or 4 at 1728x1728."
    )
    assert FULL.fits(2, 2048, 2048, 22 * GB) and FULL.fits(4, 1728, 1728, 22 * GB)
    assert not FULL.fits(4, 1744, 1744, 22 * GB)


def test_one_image_too_large_is_told_a_size_with_its_aspect_ratio() -> None:
    with pytest.raises(BatchTooLarge) as refused:
        refuse_unless_it_fits(FULL, 1, 2048, 1152, 3 * GB)
    message = str(refused.value)
    assert message.startswith("1 image at 2048x1152 needs about 4.3 GB of GPU memory; 3.0 GB")
    width, height = (int(side) for side in re.search(r"Try (\d+)x(\d+)\.$", message).groups())
    assert width % 16 == height % 16 == 0
    assert width / height == pytest.approx(2048 / 1152, rel=0.03)
    assert FULL.fits(1, width, height, 3 * GB) and not FULL.fits(1, width + 16, height, 3 * GB)


def test_when_nothing_fits_the_message_says_so() -> None:
    with pytest.raises(BatchTooLarge, match="Not even one image of the smallest size fits now"):
        refuse_unless_it_fits(FULL, 4, 1024, 1024, 100 * MB)


def test_a_count_that_fits_only_smaller_is_named_with_its_size() -> None:
    # 4 at 256x256 do not fit in 300 MB, nor 1 at 1024x1024; 2 at 272x272 do.
    with pytest.raises(BatchTooLarge) as refused:
        refuse_unless_it_fits(FULL, 4, 1024, 1024, 300 * MB)
    assert str(refused.value).endswith("Try 2 images at 272x272.")


# -- what is free -------------------------------------------------------------------------------


def test_budget_caps_the_probe_and_zero_gpu_counts_its_share_less_the_weights() -> None:
    assert available_bytes(lambda: 8 * GB) == 8 * GB
    assert available_bytes(lambda: 8 * GB, budget_bytes=GB) == GB
    assert available_bytes(lambda: GB, budget_bytes=8 * GB) == GB
    assert available_bytes(lambda: 0, zero_gpu_weights=20 * GB) == ZERO_GPU_WORKLOAD_BYTES - 20 * GB


def test_without_a_gpu_the_free_memory_is_the_systems(preview_engine: Engine) -> None:
    assert free_bytes(torch.device("cpu")) > 0
    assert preview_engine.available_memory() > 0
    weights = weight_bytes(preview_engine.pipeline)
    parameters = sum(
        p.numel() * p.element_size()
        for name in ("transformer", "text_encoder", "vae")
        for p in getattr(preview_engine.pipeline, name).parameters()
    )
    assert parameters <= weights < parameters * 1.1


# -- the engine and the service ------------------------------------------------------------------


def test_a_batch_that_does_not_fit_is_refused_before_any_work_and_its_suggestions_run() -> None:
    engine = engine_with(free=100 * MB)
    calls: list[str] = []
    for name in ("text_encoder", "transformer", "vae"):
        module = getattr(engine.pipeline, name)
        module.register_forward_pre_hook(lambda *_, name=name: calls.append(name))
    steps: list[int] = []
    with pytest.raises(BatchTooLarge) as refused:
        engine.text_to_image(request(), RunHooks(progress=lambda step, total: steps.append(step)))
    assert str(refused.value) == REFUSED_4_AT_512
    assert calls == [] and steps == []  # refused before the text encoder ran

    options = suggestions(str(refused.value))
    assert options == [(1, 512, 512), (4, 320, 320)]
    for images, width, height in options:
        assert engine.batch_memory.fits(images, width, height, 100 * MB)
        result = engine.text_to_image(request(width, height, images))
        assert [image.size for image in result.images] == [(width, height)] * images


def test_a_request_that_fits_runs_unchanged(preview_engine: Engine) -> None:
    fitting = request(320, 320, images=4)
    engine = engine_with(free=preview_engine.batch_memory.needed_bytes(4, 320, 320))
    checked = engine.text_to_image(fitting)
    unchecked = preview_engine.text_to_image(fitting)
    assert checked.seeds == unchecked.seeds == [5, 6, 7, 8]
    assert [image.tobytes() for image in checked.images] == [
        image.tobytes() for image in unchecked.images
    ]


def test_the_budget_setting_caps_what_the_engine_may_use() -> None:
    engine = engine_with(free=100 * GB, budget=100 * MB)
    with pytest.raises(BatchTooLarge, match=re.escape(REFUSED_4_AT_512)):
        engine.text_to_image(request())


def test_the_service_passes_the_refusal_on_and_logs_it_as_out_of_memory() -> None:
    service = make_service(engine_with(free=100 * MB))
    with pytest.raises(BatchTooLarge) as refused:
        service.text_to_image(
            TextToImage(prompt="a lighthouse", resolution="512x512", seed=5, steps=1, num_images=4),
            Visitor(owner="script"),
        )
    assert str(refused.value) == REFUSED_4_AT_512
    assert outcome_of(refused.value) == "error:out_of_memory"


# -- through gradio_client against the served app ------------------------------------------------


@pytest.fixture(scope="module")
def small_app() -> Iterator[RunningApp]:
    yield from serve({"ZIMAGE_MEMORY_BUDGET_MB": "100"})


@pytest.fixture(scope="module")
def small_client(small_app: RunningApp) -> Client:
    return Client(
        small_app.url,
        verbose=False,
        analytics_enabled=False,
        download_files=tempfile.mkdtemp(prefix="downloads-", dir=TEST_FOLDER),
    )


def test_a_script_is_told_what_fits_and_the_server_keeps_serving(small_client: Client) -> None:
    def text_to_image(resolution: str, images: int) -> list[dict]:
        gallery, _seed = small_client.predict(
            prompt="a lighthouse at dusk",
            resolution=resolution,
            seed=7,
            randomize_seed=False,
            steps=1,
            shift=3.0,
            num_images=images,
            api_name="/text_to_image",
        )
        return gallery

    with pytest.raises(AppError, match=re.escape(REFUSED_4_AT_512)):
        text_to_image("512x512", 4)
    gallery = text_to_image("320x320", 4)
    assert [item["caption"] for item in gallery] == ["seed 7", "seed 8", "seed 9", "seed 10"]
    assert Image.open(gallery[0]["image"]).size == (320, 320)
    assert len(text_to_image("512x512", 1)) == 1
