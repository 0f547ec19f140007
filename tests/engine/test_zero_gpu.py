"""ZeroGPU's process boundary: the GPU work runs in a forked worker that gets its arguments and
returns its results by pickling (tests/standins/spaces keeps exactly that boundary).

The first tests call the engine in this process with the stand-in; the last one launches
`python app.py` as ZeroGPU would run it and goes through gradio_client.
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from gradio_client import handle_file
from PIL import Image

from tests.launcher import ROOT, launched_app
from zimage.engine.engine import Engine
from zimage.engine.errors import Cancelled, TimedOut
from zimage.engine.jobs import GpuJob, JobControl, RunHooks, StopReason
from zimage.engine.loading import create_engine
from zimage.engine.tiny_pipelines import build_preview_pipeline
from zimage.engine.zero_gpu import gpu_seconds_needed, zero_gpu_decorator
from zimage.service.images import encode_png
from zimage.settings import Settings
from zimage.tools.edit import Edit
from zimage.tools.text_to_image import TextToImage

STANDINS = ROOT / "tests" / "standins"
SAMPLES = ROOT / "examples"


@pytest.fixture
def zero_gpu(monkeypatch, tmp_path) -> Path:
    """ZeroGPU switched on with the stand-in `spaces`; returns its call log."""
    log = tmp_path / "zerogpu.log"
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setenv("ZEROGPU_STANDIN_LOG", str(log))
    monkeypatch.syspath_prepend(str(STANDINS))
    monkeypatch.delitem(sys.modules, "spaces", raising=False)
    return log


def calls(log: Path) -> list[tuple[int, int]]:
    """(duration asked, worker pid) per GPU call."""
    lines = log.read_text().split() if log.exists() else []
    return [(int(lines[i]), int(lines[i + 1])) for i in range(0, len(lines), 2)]


def request(**overrides) -> TextToImage:
    return TextToImage(
        **{"prompt": "a fox", "resolution": "256x256", "seed": 3, "steps": 3, **overrides}
    )


def test_the_gpu_work_runs_in_another_process_with_the_same_pixels(zero_gpu, preview_engine):
    engine = Engine(build_preview_pipeline(), kind="preview", description="zero")
    assert engine.on_zero_gpu
    seen: list[tuple[int, int, int]] = []
    result = engine.text_to_image(
        request(), RunHooks(progress=lambda step, total: seen.append((step, total, os.getpid())))
    )
    assert encode_png(result.image) == encode_png(preview_engine.text_to_image(request()).image)
    assert seen == [(1, 3, os.getpid()), (2, 3, os.getpid()), (3, 3, os.getpid())]
    ((asked, worker),) = calls(zero_gpu)
    assert worker != os.getpid()
    assert asked == gpu_seconds_needed(256, 256, 3)


def test_edits_and_batches_cross_the_boundary(zero_gpu, preview_engine):
    engine = Engine(build_preview_pipeline(), kind="preview", description="zero")
    image = Image.open(SAMPLES / "house.png").convert("RGB").resize((256, 192))
    mask = Image.new("L", image.size, 0)
    mask.paste(255, (64, 64, 160, 160))
    for edit in (
        Edit(image=image, instruction="snow", seed=2, steps=4),
        Edit(image=image, instruction="snow", seed=2, steps=4, mask=mask),
    ):
        here = preview_engine.edit(edit)
        there = engine.edit(edit)
        assert there.method == here.method
        assert encode_png(there.image) == encode_png(here.image)
    batch = engine.text_to_image(request(num_images=2))
    assert batch.seeds == [3, 4] and len(batch.images) == 2
    assert len(calls(zero_gpu)) == 3


def test_what_crosses_is_plain_data():
    """Everything a GPU call takes is picklable; a closure (the old progress reporter) is not."""
    image = Image.new("RGB", (64, 64), "white")
    job = GpuJob(
        job_id=1,
        request=Edit(image=image, instruction="x", seed=1, mask=Image.new("L", (64, 64))),
        deadline=time.monotonic() + 5,
        time_limit_s=5,
    )
    assert pickle.loads(pickle.dumps(job)).request.instruction == "x"
    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(lambda step, total: None)


def test_a_stop_reaches_the_worker_through_shared_memory(zero_gpu):
    engine = Engine(build_preview_pipeline(), kind="preview", description="zero")
    control = JobControl()
    steps: list[int] = []

    def cancel_after_two_steps(step: int, total: int) -> None:
        steps.append(step)
        if step == 2:
            threading.Thread(target=control.stop, args=(StopReason.CANCELLED,)).start()

    with pytest.raises(Cancelled):
        engine.text_to_image(
            request(steps=40, resolution="512x512"),
            RunHooks(progress=cancel_after_two_steps, control=control),
        )
    assert 2 <= len(steps) <= 4  # stopped within a step or two, not after 40


def test_a_time_limit_holds_in_the_worker(zero_gpu):
    engine = Engine(build_preview_pipeline(), kind="preview", description="zero", time_limit_s=0.5)
    steps: list[int] = []
    with pytest.raises(TimedOut):
        engine.text_to_image(
            request(steps=50, resolution="768x768"),
            RunHooks(progress=lambda step, total: steps.append(step)),
        )
    assert len(steps) < 50  # stopped in the worker, not run to the end


def test_durations_are_short_and_capped():
    assert gpu_seconds_needed(1024, 1024, 8) <= 60
    assert gpu_seconds_needed(2048, 1952, 50, images=4) == 120
    assert gpu_seconds_needed(2048, 1952, 50, images=4, cap_s=90) == 90
    assert gpu_seconds_needed(1024, 1024, 16) > gpu_seconds_needed(1024, 1024, 8)


def test_prompt_reuse_is_off_on_zero_gpu(zero_gpu):
    engine = create_engine(Settings.from_env({"ZIMAGE_ENGINE": "preview"}))
    assert engine.on_zero_gpu and engine.prompt_embeddings is None
    engine.text_to_image(
        TextToImage(prompt="a kite", resolution="256x256", seed=1, steps=1, owner="alice")
    )
    assert engine.prompt_embeddings is None


def test_no_zero_gpu_without_the_variable(monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert zero_gpu_decorator() is None


def test_the_launched_app_on_zero_gpu_serves_every_endpoint(tmp_path):
    log = tmp_path / "zerogpu.log"
    settings = {
        "PYTHONPATH": os.pathsep.join([str(STANDINS), str(ROOT)]),
        "SPACES_ZERO_GPU": "true",
        "ZEROGPU_STANDIN_LOG": str(log),
    }
    with launched_app(tmp_path, settings) as app:
        client = app.client()
        gallery, seed = client.predict(
            prompt="a kite",
            resolution="256x256",
            seed=4,
            randomize_seed=False,
            steps=2,
            api_name="/text_to_image",
        )
        assert seed == 4 and Image.open(gallery[0]["image"]).size == (256, 256)
        official, seed_text, _ = client.predict(
            prompt="a kite",
            resolution="256x256 ( 1:1 )",
            seed=4,
            steps=2,
            random_seed=False,
            api_name="/generate",
        )
        assert seed_text == "4"
        assert np.array_equal(
            np.asarray(Image.open(official[0]["image"])),
            np.asarray(Image.open(gallery[0]["image"])),
        )
        for mask in (None, handle_file(str(_mask(tmp_path)))):
            _, _, method = client.predict(
                image=handle_file(str(SAMPLES / "house.png")),
                instruction="snow",
                mask=mask,
                steps=2,
                api_name="/edit",
            )
            assert method == ("img2img" if mask is None else "inpaint")
        client.close()
    output = app.output()
    workers = {pid for _, pid in calls(log)}
    assert len(calls(log)) == 4 and app.process.pid not in workers, output
    assert "Traceback" not in output, output


def _mask(folder: Path) -> Path:
    mask = Image.new("L", (512, 384), 0)
    mask.paste(255, (100, 100, 300, 300))
    path = folder / "mask.png"
    mask.save(path)
    return path
