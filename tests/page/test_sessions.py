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

pytestmark = pytest.mark.xdist_group("sessions")  # its fixtures built once, on one worker

SAMPLES = Path(__file__).resolve().parents[2] / "examples"
CAPACITY = 10
TTL_S = 2


def call(url: str, prompt: str, read_result: bool) -> None:
    """One refused /text_to_image call as a plain HTTP client: a new Gradio session each time."""
    with httpx.Client(timeout=30) as http:
        data = [prompt, "256x256", 1, False, 1, 3.0, 1, False]
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


def test_a_new_session_computes_no_config_for_an_event(small_app) -> None:
    from gradio.state_holder import SessionState

    from zimage.page.sessions import LazySessionState

    demo = small_app.space.demo
    holder = demo.state_holder
    assert isinstance(holder[f"probe-{time.monotonic()}"], LazySessionState)
    before = set(holder.session_data)
    with httpx.Client(base_url=small_app.url, timeout=60) as http:
        data = ["a lighthouse", "256x256", 1, False, 1, 3.0, 1, False]
        posted = http.post("/gradio_api/call/text_to_image", json={"data": data})
        answer = http.get(f"/gradio_api/call/text_to_image/{posted.json()['event_id']}")
        assert "event: complete" in answer.text
    (new,) = set(holder.session_data) - before
    fn = next(fn for fn in demo.fns.values() if fn.api_name == "text_to_image")
    touched = {block._id for block in [*fn.inputs, *fn.outputs]}
    kept = holder[new].config_values
    assert set(kept) == touched  # the values the event read and wrote, nothing else
    assert not any(isinstance(config, dict) for config in kept.values())
    # Gradio's own SessionState computes a config for every block of the page.
    assert len(SessionState(demo).config_values) > 10 * len(touched)


def test_a_lazy_session_lists_the_same_components_as_gradios_own(small_app) -> None:
    # The one reader of all configs is Gradio's deep link: it must see what it saw before.
    from gradio.state_holder import SessionState

    from zimage.page.sessions import LazySessionState

    demo = small_app.space.demo
    fn = next(fn for fn in demo.fns.values() if fn.api_name == "text_to_image")
    prompt, resolution, seed = fn.inputs[0], fn.inputs[1], fn.inputs[2]
    gallery = fn.outputs[0]
    sessions = [SessionState(demo), LazySessionState(demo)]
    for session in sessions:  # what an event does to its session, in Gradio's ways
        session._update_value_in_config(prompt._id, "a lighthouse")
        session._update_value_in_config(resolution._id, "1024x1024")
        session[resolution._id] = resolution.__class__(value="512x512", render=False)
        session._update_value_in_config(resolution._id, "768x768")
        session._update_value_in_config(seed._id, 1)
        session._update_value_in_config(seed._id, 2)
        session._update_config(seed._id)
        session._update_value_in_config(gallery._id, [])
    eager, lazy = (list(session.components) for session in sessions)
    assert lazy == eager
    assert len(eager) == len(SessionState(demo).config_values)
    values = {config["id"]: config["props"].get("value") for config in lazy}
    assert values[prompt._id] == "a lighthouse" and values[resolution._id] == "768x768"
    assert list(sessions[1].components) == eager  # asked again: the same


def test_the_deep_link_route_still_answers_for_a_lazy_session(small_app) -> None:
    demo = small_app.space.demo
    session = f"deep-link-{time.monotonic()}"
    prompt = next(fn for fn in demo.fns.values() if fn.api_name == "text_to_image").inputs[0]
    demo.state_holder[session]._update_value_in_config(prompt._id, "a lighthouse")
    answer = httpx.get(
        f"{small_app.url}/gradio_api/deep_link", params={"session_hash": session}, timeout=30
    )
    assert answer.status_code == 200, answer.text


def test_gradios_queue_keeps_no_record_of_past_events(small_app) -> None:
    # Gradio keeps its last 10,000 events (with session ids) for the monitoring page, off here,
    # and sums them up with pandas after each event; the app keeps one and never sums up.
    for _ in range(3):
        call(small_app.url, "", read_result=True)
    queue = small_app.space.demo._queue
    assert len(queue.event_analytics) <= 1
    assert queue.event_count_at_last_cache == 0  # never summed up
