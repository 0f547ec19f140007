"""Gradio's per-session structures stay bounded however many sessions callers open (issue 13.1).

Every `/gradio_api/call/...` request and every gradio_client is a new Gradio session. The app
caps the sessions Gradio keeps (ZIMAGE_SESSION_CAPACITY), and server_state.GradioState forgets,
on the server's event loop, what Gradio itself never forgets: emptied event sets and the paths
of temp files that the sweeper deleted.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file

from tests.conftest import serve
from tests.launcher import WAIT_S, wait_until
from zimage.tools.text_to_image import TextToImage

pytestmark = pytest.mark.xdist_group("sessions")  # its fixtures built once, on one worker

SAMPLES = Path(__file__).resolve().parents[2] / "examples"
CAPACITY = 10
TTL_S = 2


def call(url: str, prompt: str, read_result: bool) -> None:
    """One refused /text_to_image call as a plain HTTP client: a new Gradio session each time."""
    with httpx.Client(timeout=30) as http:
        data = TextToImage.endpoint_values(prompt=prompt, resolution="256x256", seed=1, steps=1)
        event_id = http.post(f"{url}/gradio_api/call/text_to_image", json={"data": data}).json()
        if read_result:
            stream = http.get(f"{url}/gradio_api/call/text_to_image/{event_id['event_id']}")
            assert "event: error" in stream.text and "prompt is empty" in stream.text


@pytest.fixture(scope="module")
def small_app():
    app = serve({"ZIMAGE_SESSION_CAPACITY": str(CAPACITY), "ZIMAGE_OUTPUT_TTL_S": str(TTL_S)})
    yield next(app)
    app.close()


def test_sessions_event_sets_and_temp_paths_stay_bounded_past_the_capacity(
    small_app, tmp_path, monkeypatch
) -> None:
    state = small_app.space.gradio_state
    unread = 5
    for i in range(6 * CAPACITY):
        call(small_app.url, "", read_result=i >= unread)
    # Files too: an upload and an output per edit, deleted by the sweeper after TTL_S. Until
    # they are counted below, GradioState does not forget them, however slow the edits are.
    monkeypatch.setattr(state, "_forget_deleted_temp_paths", lambda: 0)
    client = Client(small_app.url, verbose=False, download_files=str(tmp_path))
    for seed in range(3):
        client.predict(
            image=handle_file(str(SAMPLES / "house.png")),
            instruction="snow",
            mask=None,
            strength=0.6,
            seed=seed,
            randomize_seed=False,
            steps=1,
            api_name="/edit",
        )
    client.close()
    assert state.sizes()["temp_paths"] >= 2  # Gradio recorded the upload and outputs
    monkeypatch.undo()

    def forgotten() -> bool:
        sizes = state.sizes()
        return sizes["temp_paths"] == 0 and sizes["pending_event_sets"] == unread

    # The sweeper deletes the files after TTL_S; the next pass of GradioState forgets them.
    wait_until(forgotten, WAIT_S, "Gradio's state was never forgotten")
    sizes = state.sizes()
    assert sizes["sessions"] <= CAPACITY, sizes
    # Unread results stay readable (until Gradio's own LRU of 2000 message queues drops them).
    assert sizes["pending_event_sets"] == unread, sizes


def test_results_still_reach_every_client_while_sessions_are_forgotten(small_app) -> None:
    # Sessions evicted and event sets forgotten under load must not lose anyone's answer.
    failures: list[BaseException] = []

    def caller() -> None:
        try:
            for _ in range(8):
                call(small_app.url, "\u200b", read_result=True)
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    assert small_app.space.gradio_state.sizes()["sessions"] <= CAPACITY


def test_idle_sessions_are_forgotten(small_app) -> None:
    from datetime import datetime, timedelta

    state = small_app.space.gradio_state
    call(small_app.url, "", read_result=True)
    assert state.sizes()["sessions"] >= 1
    later = datetime.now() + timedelta(seconds=state.session_idle_s + 1)
    # forget_stale belongs on the server's event loop; nothing else runs in this test.
    state.forget_stale(later)
    assert state.sizes()["sessions"] == 0


def test_no_clean_up_of_gradios_own_iterates_the_temp_sets_at_shutdown(capfd) -> None:
    # Gradio 6.31's own clean-up (delete_cache) walks every temp set at shutdown, removing
    # files while worker threads add paths: "Set changed size during iteration". With
    # thousands of forgotten paths the walk took long enough to lose that race.
    app = serve({"ZIMAGE_OUTPUT_TTL_S": str(TTL_S)})
    running = next(app)
    demo = running.space.demo
    dead = [f"/nonexistent/zimage-{i}.png" for i in range(20000)]
    demo.upload_file_set.update(dead)
    stop = threading.Event()

    def worker_adding_paths() -> None:
        i = 0
        while not stop.is_set():
            demo.upload_file_set.add(f"/nonexistent/late-{i}.png")
            i += 1
            time.sleep(0.0001)

    adder = threading.Thread(target=worker_adding_paths)
    adder.start()
    try:
        app.close()  # demo.close(): the server's lifespan shutdown, then housekeeping
    finally:
        stop.set()
        adder.join()
    output = "".join(capfd.readouterr())
    assert "Set changed size" not in output
    assert "Traceback" not in output


# -- sessions without every component's config up front (issue 14) ------------------------------


def test_a_new_session_computes_no_config_and_keeps_no_value(small_app) -> None:
    from gradio.state_holder import SessionState

    from zimage.page.sessions import LazySessionState

    demo = small_app.space.demo
    holder = demo.state_holder
    assert isinstance(holder[f"probe-{time.monotonic()}"], LazySessionState)
    before = set(holder.session_data)
    with httpx.Client(base_url=small_app.url, timeout=60) as http:
        data = TextToImage.endpoint_values(
            prompt="a lighthouse", resolution="256x256", seed=1, steps=1
        )
        posted = http.post("/gradio_api/call/text_to_image", json={"data": data})
        answer = http.get(f"/gradio_api/call/text_to_image/{posted.json()['event_id']}")
        assert "event: complete" in answer.text
    (new,) = set(holder.session_data) - before
    # Gradio's own copies the event's values (the prompt among them) into configs kept for
    # deep links, which the Space refuses: here nothing is computed or kept.
    assert holder[new].config_values == {}
    assert list(holder[new].components) == []
    assert len(SessionState(demo).config_values) > 10


def test_gradios_queue_keeps_no_record_of_past_events(small_app) -> None:
    # Gradio keeps its last 10,000 events (with session ids) for the monitoring page, off here,
    # and sums them up with pandas after each event; the app keeps one and never sums up.
    for _ in range(3):
        call(small_app.url, "", read_result=True)
    queue = small_app.space.demo._queue
    assert len(queue.event_analytics) <= 1
    assert queue.event_count_at_last_cache == 0  # never summed up
