"""Cancel stops the GPU work: a script's `job.cancel()` ends a running job at its next step, the
GPU slot is free for the next request, and nothing of the cancelled job is kept or logged as ok."""

from __future__ import annotations

import sqlite3
import tempfile

import pytest
from gradio_client import Client

from tests.conftest import TEST_FOLDER, serve
from tests.launcher import WAIT_S, wait_until
from zimage.engine.errors import Cancelled
from zimage.engine.jobs import JobControl, RunHooks, StopReason
from zimage.tools.text_to_image import TextToImage

pytestmark = pytest.mark.xdist_group("cancel")  # its fixtures built once, on one worker

LONG = dict(prompt="a long job", resolution="512x512", seed=1, randomize_seed=False, steps=50)
SMALL = dict(prompt="a small job", resolution="256x256", seed=2, randomize_seed=False, steps=1)


@pytest.fixture(scope="module")
def app():
    yield from serve({})


def connect(url: str) -> Client:
    folder = tempfile.mkdtemp(prefix="cancel-", dir=TEST_FOLDER)
    return Client(url, verbose=False, analytics_enabled=False, download_files=folder)


def wait_for_step(job, step: int) -> None:
    def reached() -> bool:
        progress = job.status().progress_data or []
        return bool(progress) and (progress[0].index or 0) >= step

    wait_until(reached, WAIT_S, f"the job never reached step {step}", poll_s=0.02)


def outcomes(app) -> list[tuple[str, str]]:
    with sqlite3.connect(app.usage_db) as db:
        return db.execute("SELECT outcome, params FROM usage ORDER BY id").fetchall()


def test_cancel_frees_the_gpu_for_the_next_job(app) -> None:
    script, other = connect(app.url), connect(app.url)
    with app.counting_steps() as steps_run:
        long_job = script.submit(**LONG, api_name="/text_to_image")
        wait_for_step(long_job, 3)
        long_job.cancel()
        gallery, seed = other.predict(**SMALL, api_name="/text_to_image")
    assert seed == 2 and gallery
    # One GPU slot: the small job ran once the long one had stopped, well before its 50 steps.
    assert len(steps_run) < LONG["steps"], len(steps_run)

    wait_until(
        lambda: "cancelled" in [outcome for outcome, _ in outcomes(app)], WAIT_S, "not logged"
    )
    cancelled = [params for outcome, params in outcomes(app) if outcome == "cancelled"]
    assert cancelled == ["{}"]  # no parameters, no prompt: nothing of it is kept
    owner = f"session:{script.session_hash}"
    assert app.space.service.outputs_of(owner) == []
    script.close()
    other.close()


def test_a_cancel_for_another_session_stops_nothing(app) -> None:
    script = connect(app.url)
    job = script.submit(**{**LONG, "steps": 6}, api_name="/text_to_image")
    wait_for_step(job, 1)
    import httpx

    forged = httpx.post(
        f"{app.url}/gradio_api/cancel",
        json={"event_id": "not-yours", "session_hash": "someone-else", "fn_index": 0},
        timeout=10,
    )
    assert forged.status_code < 500
    gallery, _ = job.result(timeout=120)
    assert gallery  # finished despite the stranger's cancel
    script.close()


def test_a_huge_cancel_body_is_refused(app) -> None:
    import httpx

    response = httpx.post(f"{app.url}/gradio_api/cancel", content=b"x" * 100_000, timeout=10)
    assert response.status_code == 413


def test_a_request_stopped_while_waiting_for_the_gpu_never_runs(preview_engine) -> None:
    control = JobControl()
    control.stop(StopReason.CANCELLED)
    steps: list[int] = []
    with pytest.raises(Cancelled):
        preview_engine.text_to_image(
            TextToImage(prompt="a kite", resolution="256x256", seed=1, steps=4),
            RunHooks(progress=lambda step, total: steps.append(step), control=control),
        )
    assert steps == []


def test_an_abandoned_request_stops_at_its_next_step(preview_engine) -> None:
    gone = {"now": False}
    control = JobControl(probe=lambda: StopReason.CANCELLED if gone["now"] else None)
    steps: list[int] = []

    def leave_after_two(step: int, total: int) -> None:
        steps.append(step)
        gone["now"] = step >= 2

    with pytest.raises(Cancelled):
        preview_engine.text_to_image(
            TextToImage(prompt="a kite", resolution="256x256", seed=1, steps=30),
            RunHooks(progress=leave_after_two, control=control),
        )
    assert steps == [1, 2]
