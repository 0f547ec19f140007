"""What Gradio keeps per session, event and temp file: read for the request guards, and trimmed.

Gradio 6.31 never forgets a session, and every `/gradio_api/call/...` request and every new
gradio_client is one (issue 13: 12,000 refused calls took the server from 735 MB to 2.26 GB):

- `blocks.state_holder` keeps a copy of every component's config per session (~150 KB) until
  `state_session_capacity` sessions exist; app.py sets that capacity (ZIMAGE_SESSION_CAPACITY),
  and `forget_stale` also drops sessions idle for SESSION_IDLE_S.
- `blocks._queue.pending_event_ids_session` keeps one entry per session for ever: Gradio
  removes an event id from its set when the result is read, but never the emptied set.
- `blocks.temp_file_sets` keep every path Gradio wrote or received, also after our sweeper
  deleted the file (Gradio forgets only files its own clean-up deleted, which the app turns
  off: see ui.build_demo).

zimage imports gradio only in ui.py: this module works on the Blocks object it is given and
names each internal it touches here, so that tests/page/test_sessions.py catches a Gradio that
changes them. `forget_stale` must run on the server's event loop, where Gradio changes these
structures (the `lifespan` below does that), so that it never races with them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from zimage.guards.gradio_calls import GradioFunction

logger = logging.getLogger(__name__)

SESSION_IDLE_S = 3600.0  # a browser tab in use calls every few seconds (the history timer)
SWEEP_INTERVAL_S = 5.0


@dataclass(frozen=True)
class Forgotten:
    sessions: int
    event_sets: int
    temp_paths: int


class GradioState:
    def __init__(self, blocks: Any, session_idle_s: float = SESSION_IDLE_S) -> None:
        self.blocks = blocks
        self.session_idle_s = session_idle_s

    # -- what the app serves (gradio_calls.KnownEndpoints, for the request guards) -------------

    def function_at(self, fn_index: int) -> GradioFunction | None:
        fn = self.blocks.fns.get(fn_index)
        return _described(fn) if fn is not None else None

    def function_named(self, api_name: str) -> GradioFunction | None:
        fn = next((fn for fn in self.blocks.fns.values() if fn.api_name == api_name), None)
        return _described(fn) if fn is not None else None

    def has_stream_for_event(self, event_id: str) -> bool:
        """Whether `GET /call/<api>/<event_id>` finds a message queue, resolved as Gradio does."""
        queue = self.blocks._queue
        event = queue.event_ids_to_events.get(event_id)
        if event is not None:
            session = event.session_hash
        else:
            waiting = queue.pending_event_ids_session.items()
            session = next((s for s, ids in waiting if event_id in ids), event_id)
        return self.has_stream_for_session(session)

    def has_stream_for_session(self, session_hash: str) -> bool:
        return session_hash in self.blocks._queue.pending_messages_per_session

    # -- how much is kept -----------------------------------------------------------------------

    def sizes(self) -> dict[str, int]:
        queue = self.blocks._queue
        return {
            "sessions": len(self.blocks.state_holder.session_data),
            "pending_event_sets": len(queue.pending_event_ids_session),
            "message_queues": len(queue.pending_messages_per_session),
            "temp_paths": sum(len(paths) for paths in self.blocks.temp_file_sets),
        }

    # -- trimming (on the server's event loop) --------------------------------------------------

    def forget_stale(self, now: datetime | None = None) -> Forgotten:
        """Drop idle sessions, finished sessions' event sets and paths of deleted temp files."""
        event_sets = self._forget_finished_event_sets()
        sessions = self._forget_idle_sessions(now or datetime.now())
        return Forgotten(sessions, event_sets, self._forget_deleted_temp_paths())

    def _forget_finished_event_sets(self) -> int:
        queue = self.blocks._queue
        waiting = queue.pending_event_ids_session
        # Finished: nothing left to read, or no message queue left to read it from (Gradio's
        # own LRU of 2000 dropped it) and no event of the session still queued or running.
        finished = [
            session
            for session, ids in waiting.items()
            if not ids
            or (
                session not in queue.pending_messages_per_session
                and not any(i in queue.event_ids_to_events for i in ids)
            )
        ]
        for session in finished:
            del waiting[session]
        return len(finished)

    def _forget_idle_sessions(self, now: datetime) -> int:
        holder = self.blocks.state_holder
        waiting = self.blocks._queue.pending_event_ids_session
        cutoff = now - timedelta(seconds=self.session_idle_s)
        idle = [
            session
            for session, last_used in list(holder.time_last_used.items())
            if last_used < cutoff and not waiting.get(session)
        ]
        for session in idle:
            holder.delete_state(session)  # runs the State components' delete callbacks
            with holder.lock:
                holder.session_data.pop(session, None)
                holder.time_last_used.pop(session, None)
        return len(idle)

    def _forget_deleted_temp_paths(self) -> int:
        forgotten = 0
        for paths in self.blocks.temp_file_sets:
            # list() copies in one step under the GIL, while worker threads may add paths.
            for path in list(paths):
                if not os.path.lexists(path):
                    paths.discard(path)
                    forgotten += 1
        return forgotten

    @asynccontextmanager
    async def lifespan(self, app: object) -> AsyncIterator[None]:
        """For `app_kwargs={"lifespan": ...}`: forget stale state every SWEEP_INTERVAL_S."""

        async def sweep_forever() -> None:
            while True:
                await asyncio.sleep(SWEEP_INTERVAL_S)
                try:
                    self.forget_stale()
                except Exception:
                    logger.exception("forgetting stale sessions failed")

        task = asyncio.create_task(sweep_forever())
        try:
            yield
        finally:
            task.cancel()


def _described(fn: Any) -> GradioFunction:
    """A Gradio BlockFunction as the guards see it. Its inputs are named as Gradio names them
    in its validators' answers (`input_parameter_names`, `parameter_<i>` where it has none)."""
    names = list(fn.input_parameter_names or ())
    names += [None] * (len(fn.inputs) - len(names))
    return GradioFunction(
        address=f"/{fn.api_name}" if fn.api_name else f"fn_index {fn._id}",
        parameters=tuple(name or f"parameter_{i}" for i, name in enumerate(names)),
        hidden=frozenset(i for i, block in enumerate(fn.inputs) if block.skip_api),
        batched=bool(fn.batch),
    )
