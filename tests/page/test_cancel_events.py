"""Cancel exactly what was asked (issues 25.3, 25.4 and 24.10), with the real gradio_client against
the app served on a port: one job of several of one Client, a cancel sent before the join was
answered, and cancels that name another session's event.

Gradio's own `/cancel` stopped every running task of the caller's session and function (the
Client's other jobs never answered, while their threads ran on), ignored the session for a
waiting event, and lost a cancel sent before the event id was known.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from concurrent.futures import CancelledError
from typing import Any

import httpx
import pytest
from gradio_client.exceptions import AppError

from tests.conftest import serve
from tests.gpu_gate import WAIT_S, eventually, gpu_held, join_values, small, visitor, waiting
from tests.gradio_http import fn_index

pytestmark = pytest.mark.xdist_group("cancel_events")  # its fixtures built once, on one worker


@pytest.fixture(scope="module")
def app():
    yield from serve({})


def usage_rows(app) -> list[tuple[str, dict[str, Any]]]:
    with sqlite3.connect(app.usage_db) as db:
        rows = db.execute("SELECT outcome, params FROM usage ORDER BY id").fetchall()
    return [(outcome, json.loads(params)) for outcome, params in rows]


def nothing_made(job: Any) -> bool:
    """A cancelled job ends with nothing: gradio_client stops waiting for it (CancelledError),
    or, when the server's answer comes before the client noticed its own cancel, the message
    that it was cancelled, or (a run ended at its step) an answer without images, or, when both
    come at once, gradio_client's complaint that they did."""
    try:
        gallery, _ = job.result(timeout=WAIT_S)
    except CancelledError:
        return True
    except AppError as error:
        return str(error) == "The request was cancelled."
    except ValueError as error:
        # gradio_client's own race: its cancel thread (which ends only after `cancel()`) and the
        # server's answer end together. What ran is checked on the server by each test.
        return str(error) == "Did not expect 2 tasks to be done."
    return not gallery


def test_cancelling_two_jobs_of_one_client_leaves_its_others_answered(app) -> None:
    """Submit A-D on one Client (A on the GPU, B in the second slot, C and D waiting), cancel
    the waiting C and the running B: A and D answer; B stops before the GPU, C never runs;
    neither is logged as ok or kept."""
    client = visitor(app)
    before = len(usage_rows(app))
    with gpu_held(app) as held:
        entered = held.entered
        a, b = (client.submit(**small(n, steps=n), api_name="/text_to_image") for n in (1, 2))
        eventually(lambda: sorted(entered) == [1, 2], "A and B never took the slots")
        c, d = (client.submit(**small(n, steps=n), api_name="/text_to_image") for n in (3, 4))
        eventually(lambda: waiting(app) == 2, "C and D never joined")
        if entered[0] == 2:  # B is on the GPU, A waits in the second slot: name them so
            a, b = b, a
        c.cancel()
        eventually(lambda: waiting(app) == 1, "C never left the queue")
        b.cancel()
        held.open()
        answered = a.result(timeout=WAIT_S)[1], d.result(timeout=WAIT_S)[1]
        assert nothing_made(b) and nothing_made(c)
    eventually(lambda: len(usage_rows(app)) == before + 3, "A, B and D were never logged")
    logged = usage_rows(app)[before:]
    ok = sorted(params.get("steps") for outcome, params in logged if outcome == "ok")
    assert ok == sorted(answered) and 4 in ok  # A (seed 1 or 2) and D: the others answered
    assert [params for outcome, params in logged if outcome == "cancelled"] == [{}]
    assert 3 not in entered  # C never reached the engine
    kept = app.space.service.outputs_of(f"session:{client.session_hash}")
    assert sorted(entry.seed for entry in kept) == ok
    client.close()


def test_a_cancel_sent_before_the_join_was_answered_cancels_that_job_only(app) -> None:
    """gradio_client's order when `job.cancel()` comes before the join's answer: `/cancel`
    without an event id, the join, then `/reset` with the event id."""
    url = app.url
    index = fn_index(url, "text_to_image")
    session = uuid.uuid4().hex[:12]

    def join(seed: int) -> str:
        body = {
            "data": join_values(seed),
            "fn_index": index,
            "session_hash": session,
            "trigger_id": None,
        }
        return httpx.post(f"{url}/gradio_api/queue/join", json=body, timeout=WAIT_S).json()[
            "event_id"
        ]

    blockers = [visitor(app) for _ in range(2)]
    with gpu_held(app) as held:
        entered = held.entered
        running = [
            client.submit(**small(10 + n), api_name="/text_to_image")
            for n, client in enumerate(blockers)
        ]
        eventually(lambda: len(entered) == 2, "two runs hold the slots")
        cancel = {"event_id": None, "session_hash": session, "fn_index": index}
        assert httpx.post(f"{url}/gradio_api/cancel", json=cancel, timeout=WAIT_S).json() == {
            "success": True
        }
        cancelled, kept = join(20), join(21)
        eventually(lambda: waiting(app) == 2, "the two jobs never joined")
        httpx.post(f"{url}/gradio_api/reset", json={"event_id": cancelled}, timeout=WAIT_S)
        eventually(lambda: waiting(app) == 1, "the cancelled job never left the queue")
        held.open()
        stream = httpx.get(
            f"{url}/gradio_api/queue/data", params={"session_hash": session}, timeout=WAIT_S
        )
        for job in running:
            assert job.result(timeout=WAIT_S)[0]
    completions = {
        message["event_id"]: message
        for message in (
            json.loads(line[5:]) for line in stream.text.splitlines() if line.startswith("data:")
        )
        if message.get("msg") == "process_completed"
    }
    assert not completions[cancelled]["success"]  # told it is over, and why
    assert completions[cancelled]["output"]["error"] == "The request was cancelled."
    assert completions[kept]["success"] and completions[kept]["output"]["data"][1] == 21
    assert 20 not in entered and 21 in entered
    for client in blockers:
        client.close()


def test_jobs_cancelled_right_after_submit_never_run(app) -> None:
    client, blockers = visitor(app), [visitor(app) for _ in range(2)]
    with gpu_held(app) as held:
        entered = held.entered
        running = [
            b.submit(**small(30 + n), api_name="/text_to_image") for n, b in enumerate(blockers)
        ]
        eventually(lambda: len(entered) == 2, "two runs hold the slots")
        jobs = []
        for seed in range(40, 44):
            job = client.submit(**small(seed), api_name="/text_to_image")
            job.cancel()  # within milliseconds: mostly before its join is answered
            jobs.append(job)
        eventually(lambda: waiting(app) == 0, "a cancelled job stayed in the queue")
        held.open()
        assert all(nothing_made(job) for job in jobs)
        for job in running:
            assert job.result(timeout=WAIT_S)[0]
    assert not set(range(40, 44)) & set(entered)
    assert app.space.service.outputs_of(f"session:{client.session_hash}") == []
    client.close()
    for b in blockers:
        b.close()


def test_a_cancel_naming_another_sessions_event_or_a_reset_alone_cancels_nothing(app) -> None:
    owner, blockers = visitor(app), [visitor(app) for _ in range(2)]
    index = fn_index(app.url, "text_to_image")
    with gpu_held(app) as held:
        running = [
            b.submit(**small(50 + n), api_name="/text_to_image") for n, b in enumerate(blockers)
        ]
        eventually(lambda: len(held.entered) == 2, "two runs hold the slots")
        job = owner.submit(**small(60), api_name="/text_to_image")
        eventually(lambda: job.communicator.event_id is not None, "the job never joined")
        event_id = job.communicator.event_id
        stranger = {"event_id": event_id, "session_hash": "someone-else", "fn_index": index}
        httpx.post(f"{app.url}/gradio_api/cancel", json=stranger, timeout=WAIT_S)
        httpx.post(f"{app.url}/gradio_api/reset", json={"event_id": event_id}, timeout=WAIT_S)
        assert waiting(app) == 1  # still in the queue
    assert job.result(timeout=WAIT_S)[1] == 60
    for blocked in running:
        assert blocked.result(timeout=WAIT_S)[0]
    for client in [owner, *blockers]:
        client.close()
