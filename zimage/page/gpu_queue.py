"""One queue for the GPU, whatever the door: Gradio's own queue, fair and decided at join.

Every run that needs the GPU joins Gradio's queue under one concurrency id (GPU_QUEUE, with
the app's GPU slots): the page's buttons and the script endpoints as Gradio events, MCP calls
as `AgentTicket`s put in the same list (zimage/agents/mcp_server.py, through `GpuTurns.turn`).
So one cap (ZIMAGE_QUEUE_MAX runs waiting, all doors and events together), one per-visitor
bound (ZIMAGE_QUEUE_PER_VISITOR runs waiting or running) and one order hold for all, and no
run waits in a thread: waiting is an entry in Gradio's list, served by its event loop.

`GpuQueue.install` wraps three methods of Gradio's Queue (gradio/queueing.py, 6.31):

- `push`, a join. The run's requests are read from the joined values (the check each GPU event
  registered with `expects`) and admitted (`ZImageService.admit`: rate limit counting images,
  parameters, token count) in a small thread pool of our own, and the bounds are checked. A
  refusal completes the event at once with its message, as a run's error would (gradio_client
  raises it as AppError, the page shows it): in milliseconds, without taking a place.
- `send_message`: a run that asked for no stream (`expects(..., streams=...)`, e.g. a script's
  /text_to_image without live preview) gets no "generating" messages. Gradio sends a
  generator's last value twice, as a step and in the completion, and gradio_client downloads
  the files of each; alone in the completion, the result travels once, as a plain function's.
- `get_events`, when a slot may be free. Before Gradio takes the head of the GPU list, the list
  is put in fair order (zimage/service/gpu_turns.py: round-robin between visitors); an agent
  ticket at the head is granted its slot here (Gradio's count of the slots in use includes it
  until the MCP call ends).

A visitor is a keyed hash of the client address (ZIMAGE_TRUSTED_PROXY_HOPS decides it), so a
caller gets no more turns by opening more sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from functools import partial
from typing import Any

import anyio
import anyio.to_thread
import gradio as gr
from gradio import route_utils
from gradio.queueing import Event, EventQueue, Queue
from gradio.server_messages import ProcessCompletedMessage
from gradio.utils import error_payload
from gradio_client.utils import ServerMessage

from zimage.guards.client_address import AddressKey, client_address
from zimage.guards.public_errors import REQUEST_REFUSED
from zimage.page.api import GPU_QUEUE
from zimage.service.gpu_turns import QueueRefusal, fair_order, refuse_past_bounds
from zimage.service.service import VISITOR_ERRORS, ZImageService
from zimage.service.visitors import Visitor
from zimage.settings import Settings
from zimage.tools.parameters import ToolRequest

logger = logging.getLogger(__name__)

# What a GPU event's joined values ask for: the run's requests, in order, and who asks.
JoinCheck = Callable[[list[Any], gr.Request], tuple[Sequence[ToolRequest], Visitor]]
# Whether a run of those requests streams what it makes (preview frames) before its result.
Streams = Callable[[Sequence[ToolRequest]], bool]
# Threads that admit runs at join (token counts, the shared rate limit's round trip): our own,
# never the pool that serves files.
ADMISSION_THREADS = 4


class AgentTicket:
    """An MCP call's place in the GPU list. Gradio reads the attributes an Event has there
    (`alive` False: it sends a ticket no queue messages)."""

    alive = False
    streaming = False
    fn = None

    def __init__(self, visitor_key: str) -> None:
        self._id = uuid.uuid4().hex
        self.session_hash = f"agent-{self._id}"  # no Gradio session has this one
        self.visitor_key = visitor_key
        self.granted = asyncio.Event()


class GpuQueue:
    """Admission at join and fair order for Gradio's GPU queue; `turn` for MCP calls."""

    def __init__(self, service: ZImageService, settings: Settings) -> None:
        self.service = service
        self.settings = settings
        self._checks: dict[int, JoinCheck] = {}
        self._streams: dict[int, Streams] = {}
        self._answered_once: weakref.WeakSet[Event] = weakref.WeakSet()
        self._visitor_key = AddressKey()
        self._keys: weakref.WeakKeyDictionary[Event, str] = weakref.WeakKeyDictionary()
        self._agents_running: Counter[str] = Counter()
        self._queue: Queue | None = None
        self._join_lock = asyncio.Lock()  # one join's bounds checked and its place taken
        self._threads = anyio.CapacityLimiter(ADMISSION_THREADS)

    def expects(
        self, dependency: dict[str, Any], check: JoinCheck, streams: Streams | None = None
    ) -> None:
        """Admit the joins of this GPU event (a Gradio dependency) with `check`; with `streams`,
        a run that does not stream is answered in one message."""
        self._checks[dependency["id"]] = check
        if streams is not None:
            self._streams[dependency["id"]] = streams

    def install(self, blocks: gr.Blocks) -> None:
        """Wrap push, send_message and get_events of `blocks`' queue (after `blocks.queue()`)."""
        queue = blocks._queue
        for fn in blocks.fns.values():
            if fn.concurrency_id != GPU_QUEUE:
                continue
            if fn._id not in self._checks:  # it would skip the rate limit and the checks
                raise RuntimeError(f"the GPU event {fn.name!r} has no join check (expects)")
            queue.create_event_queue_for_fn(fn)  # before an agent's ticket needs it
        original_push, original_get_events = queue.push, queue.get_events
        original_send_message = queue.send_message

        async def push(body: Any, request: Any, username: str | None) -> Any:
            return await self._push(original_push, body, request, username)

        def get_events() -> Any:
            self._before_a_slot_is_taken()
            return original_get_events()

        def send_message(event: Event, message: Any) -> None:
            if message.msg == ServerMessage.process_generating and event in self._answered_once:
                return
            original_send_message(event, message)

        queue.push = push  # type: ignore[method-assign]
        queue.get_events = get_events  # type: ignore[method-assign]
        queue.send_message = send_message  # type: ignore[method-assign]
        self._queue = queue

    # -- a door outside Gradio --------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def turn(self, asked: Sequence[ToolRequest], visitor: Visitor) -> AsyncIterator[None]:
        """GpuTurns.turn: admit, wait in fair order, hold a GPU slot while the block runs."""
        key = self._visitor_key(visitor.client_ip)
        self._refuse_past_bounds(key)
        await anyio.to_thread.run_sync(
            partial(self.service.admit, asked, visitor), limiter=self._threads
        )
        ticket = AgentTicket(key)
        async with self._join_lock:
            self._refuse_past_bounds(key)
            self._gpu().queue.append(ticket)
            self._put_in_fair_order()
        try:
            while not ticket.granted.is_set():
                with anyio.move_on_after(1.0):
                    await ticket.granted.wait()
                if not ticket.granted.is_set() and ticket not in self._gpu().queue:
                    raise QueueRefusal("The request left the queue. Please try again.")
            yield
        finally:
            if ticket.granted.is_set():
                self._gpu().current_concurrency -= 1
                self._agents_running[key] -= 1
                if not self._agents_running[key]:
                    del self._agents_running[key]  # no hash kept past the request
            elif ticket in self._gpu().queue:
                self._gpu().queue.remove(ticket)

    # -- Gradio's queue ---------------------------------------------------------------------

    async def _push(
        self, original: Callable[..., Any], body: Any, request: Any, username: str | None
    ) -> Any:
        check = self._checks.get(body.fn_index)
        if check is None:
            return await original(body, request, username)
        key = self._key_of_request(request)
        gr_request = route_utils.Request(
            request=request, username=username, session_hash=body.session_hash
        )
        try:
            self._refuse_past_bounds(key)
            asked = await anyio.to_thread.run_sync(
                partial(self._admit, check, list(body.data), gr_request),
                limiter=self._threads,
            )
            async with self._join_lock:
                self._refuse_past_bounds(key)
                joined = await original(body, request, username)
                self._answer_once_unless_streaming(body.fn_index, joined, asked)
                self._put_in_fair_order()
        except (QueueRefusal, *VISITOR_ERRORS) as refusal:
            return await self._complete_at_once(body, request, username, str(refusal))
        return joined

    def _answer_once_unless_streaming(
        self, fn_index: int, joined: tuple[bool, str, str], asked: Sequence[ToolRequest]
    ) -> None:
        streams = self._streams.get(fn_index)
        if streams is None or streams(asked) or not joined[0]:
            return
        assert self._queue is not None
        event = self._queue.event_ids_to_events.get(joined[1])
        if event is not None:
            self._answered_once.add(event)

    def _admit(
        self, check: JoinCheck, values: list[Any], request: gr.Request
    ) -> Sequence[ToolRequest]:
        try:
            asked, visitor = check(values, request)
        except VISITOR_ERRORS:
            raise
        except Exception:  # noqa: BLE001 - values the run could not read either
            logger.warning("a join could not be read", exc_info=True)
            raise QueueRefusal(REQUEST_REFUSED) from None
        self.service.admit(asked, visitor)
        return asked

    async def _complete_at_once(
        self, body: Any, request: Any, username: str | None, message: str
    ) -> tuple[bool, str, str]:
        """Answer a join with the run's refusal, as Gradio answers a run from its cache: the
        event is registered with its session and completed at once, never queued."""
        queue = self._queue
        assert queue is not None
        fn = route_utils.get_fn(queue.blocks, None, body)
        event = Event(body.session_hash, fn, request, username)
        session = body.session_hash = event.session_hash
        async with queue.pending_message_lock:
            if session not in queue.pending_messages_per_session:
                queue.pending_messages_per_session[session] = asyncio.Queue()
            queue.pending_event_ids_session.setdefault(session, set()).add(event._id)
        refusal = gr.Error(message, print_exception=False)
        queue.send_message(
            event,
            ProcessCompletedMessage(
                output=error_payload(refusal, True), success=False, title="Error"
            ),
        )
        return True, event._id, "success"

    def _before_a_slot_is_taken(self) -> None:
        """Gradio is about to take the head of each queue with a free slot: put the GPU list
        in fair order and grant agents' tickets at its head their slots."""
        gpu = self._queue.event_queue_per_concurrency_id.get(GPU_QUEUE) if self._queue else None
        if gpu is None or not gpu.queue or not _slot_free(gpu):
            return
        self._put_in_fair_order()
        while gpu.queue and isinstance(gpu.queue[0], AgentTicket) and _slot_free(gpu):
            ticket = gpu.queue.pop(0)
            gpu.current_concurrency += 1
            self._agents_running[ticket.visitor_key] += 1
            ticket.granted.set()

    def _put_in_fair_order(self) -> None:
        gpu = self._gpu()
        ordered = fair_order(gpu.queue, self._key_of, self._running())
        if ordered != gpu.queue:
            gpu.queue[:] = ordered
            assert self._queue is not None
            self._queue.broadcast_estimations(GPU_QUEUE)  # the ranks shown change

    def _refuse_past_bounds(self, key: str) -> None:
        assert self._queue is not None
        gpu = self._gpu()
        runs = sum(1 for item in gpu.queue if self._key_of(item) == key) + self._running()[key]
        max_waiting = self._queue.max_size if self._queue.max_size is not None else 2**31
        refuse_past_bounds(runs, self.settings.queue_per_visitor, len(self._queue), max_waiting)

    def _running(self) -> Counter[str]:
        """Runs holding GPU slots, by visitor."""
        assert self._queue is not None
        running = Counter(self._agents_running)
        for job in self._queue.active_jobs:
            for event in job or ():
                if event.concurrency_id == GPU_QUEUE:
                    running[self._key_of(event)] += 1
        return running

    def _key_of(self, item: Event | AgentTicket) -> str:
        if isinstance(item, AgentTicket):
            return item.visitor_key
        key = self._keys.get(item)
        if key is None:
            key = self._keys[item] = self._key_of_request(item.request)
        return key

    def _key_of_request(self, request: Any) -> str:
        peer = request.client.host if request is not None and request.client else ""
        headers = request.headers if request is not None else {}
        address = client_address(peer, headers, self.settings.trusted_proxy_hops)
        return self._visitor_key(address)

    def _gpu(self) -> EventQueue:
        assert self._queue is not None
        return self._queue.event_queue_per_concurrency_id[GPU_QUEUE]


def _slot_free(gpu: EventQueue) -> bool:
    return gpu.concurrency_limit is None or gpu.current_concurrency < gpu.concurrency_limit
