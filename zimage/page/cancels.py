"""Cancelling exactly the event asked for, and only for the session that owns it.

Gradio's own `/cancel` (gradio/routes.py, 6.31) cancels the asyncio tasks of every running
event of that session and function (`cancel_tasks({session_fn})`), whichever event was named,
and checks no session for the event it drops from the queue. So with one gradio_client Client
running A and B and queueing C and D, cancelling C stopped the tasks of A and B too: they never
answered, while their worker threads ran on and were logged as fine. And a cancel sent before
the join answered (gradio_client sends `event_id: null` then) was lost: the job ran in full.

`EventCancels` answers `/cancel` and `/reset` itself (zimage/guards/cancel_relay.py routes them
here; Gradio never sees a `/cancel`):

- A cancel names an event of its session: a waiting one leaves the queue and its stream is told
  it ended, with the message "The request was cancelled." (Gradio sends an empty answer there,
  which gradio_client, when it reads it before its own cancel, turns into a KeyError); a running one stops at its next step (`RunningRequests`), keeps
  nothing and is logged as cancelled; the other events of the session go on.
- A cancel without an event id (sent before the join was answered) is remembered for that
  session and function, for a while. gradio_client follows every cancel with `/reset` and the
  event id once it knows it: a `/reset` of an event whose session and function have such a
  cancel pending cancels that event. A `/reset` alone cancels nothing (it carries no session).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any

import gradio as gr
from gradio.server_messages import ProcessCompletedMessage
from gradio.utils import error_payload

from zimage.engine.errors import Cancelled
from zimage.page.running import RunningRequests

logger = logging.getLogger(__name__)

# How long a cancel sent before its join was answered waits for the event's `/reset`, and how
# many such cancels are remembered at most (the oldest forgotten first).
EARLY_CANCEL_S = 60.0
MAX_EARLY_CANCELS = 10_000
# A cancelled event that is neither waiting nor registered as running is about to start (its
# inputs are being read): it is stopped as it starts, looked for this often, this long.
STARTING_POLL_S = 0.02
STARTING_WAIT_S = 30.0


class EventCancels:
    """`/cancel` and `/reset` for the events of `blocks`' queue (zimage/guards/cancel_relay.py's
    CancelsEvents)."""

    def __init__(self, running: RunningRequests, blocks: gr.Blocks) -> None:
        self.running = running
        self.blocks = blocks
        self._early: OrderedDict[tuple[str, int], list[float]] = OrderedDict()
        self._stopping: set[asyncio.Task] = set()

    async def cancel(self, event_id: str | None, session_hash: str, fn_index: Any) -> None:
        if event_id is None:
            if session_hash and isinstance(fn_index, int):
                self._remember_early(session_hash, fn_index)
            return
        event = self.blocks._queue.event_ids_to_events.get(event_id)
        if event is not None and event.session_hash == session_hash:
            await self._cancel(event)

    async def reset(self, event_id: str) -> None:
        event = self.blocks._queue.event_ids_to_events.get(event_id)
        if event is not None and self._take_early(event.session_hash, event.fn._id):
            await self._cancel(event)

    async def _cancel(self, event: Any) -> None:
        queue = self.blocks._queue
        waiting = queue.event_queue_per_concurrency_id.get(event.concurrency_id)
        if waiting is not None and event in waiting.queue:
            await queue.remove_from_queue(event._id)
            session = event.session_hash
            if session in queue.pending_messages_per_session and event._id in (
                queue.pending_event_ids_session.get(session) or ()
            ):
                cancelled = gr.Error(str(Cancelled()), print_exception=False)
                queue.pending_messages_per_session[session].put_nowait(
                    ProcessCompletedMessage(
                        output=error_payload(cancelled, True),
                        success=False,
                        title="Error",
                        event_id=event._id,
                    )
                )
            logger.info("a waiting request was cancelled by its caller")
            return
        if self.running.cancel(event._id, event.session_hash):
            logger.info("a running request was cancelled by its caller")
            return
        task = asyncio.create_task(self._stop_as_it_starts(event))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _stop_as_it_starts(self, event: Any) -> None:
        queue = self.blocks._queue
        deadline = time.monotonic() + STARTING_WAIT_S
        while event._id in queue.event_ids_to_events and time.monotonic() < deadline:
            if self.running.cancel(event._id, event.session_hash):
                logger.info("a starting request was cancelled by its caller")
                return
            await asyncio.sleep(STARTING_POLL_S)

    def _remember_early(self, session_hash: str, fn_index: int) -> None:
        key = (session_hash, fn_index)
        self._early.setdefault(key, []).append(time.monotonic())
        self._early.move_to_end(key)  # in order of their latest cancel
        self._forget_old()
        while len(self._early) > MAX_EARLY_CANCELS:
            self._early.popitem(last=False)

    def _take_early(self, session_hash: str, fn_index: int) -> bool:
        self._forget_old()
        cutoff = time.monotonic() - EARLY_CANCEL_S
        times = [
            moment for moment in self._early.pop((session_hash, fn_index), []) if moment > cutoff
        ]
        if not times:
            return False
        if times[1:]:
            self._early[(session_hash, fn_index)] = times[1:]
        return True

    def _forget_old(self) -> None:
        cutoff = time.monotonic() - EARLY_CANCEL_S
        while self._early and next(iter(self._early.values()))[-1] <= cutoff:
            self._early.popitem(last=False)
