"""The Space as an MCP server for agents: streamable HTTP at `/gradio_api/mcp`.

Hugging Face lists Gradio Spaces as MCP servers at that address. Gradio's own MCP server is not
used: it answers every caller through one shared client session (so all agents would be one
visitor, sharing outputs and a cap), and without a progress token it returns a result as a
Python repr instead of an image. This one keeps MCP sessions (the `Mcp-Session-Id` header): each
session is its own visitor with its own outputs; the caller's address, Do Not Track and Global
Privacy Control apply as for any request; images come back as image content with their seeds.

A call joins the same GPU queue as the page and the scripts (`GpuTurns`, zimage/page/gpu_queue.py):
the same admission when it joins (rate limit, parameters, the per-visitor bound, the cap), the
same fair order, one GPU slot while it runs. It waits on the event loop, not in a thread; its
admission and its run take threads of this module's own pools, never the pool that serves
files.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import logging
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from functools import partial
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
from mcp import types
from mcp.server.lowlevel import Server
from starlette.datastructures import Headers
from starlette.types import Scope

from zimage.agents.mcp_sessions import SessionsPerAddress
from zimage.engine.errors import INTERNAL_FAILURE
from zimage.engine.jobs import JobControl, RunHooks, StopReason
from zimage.guards.client_address import address_key, client_address
from zimage.service.gpu_turns import GpuTurns, QueueRefusal
from zimage.service.service import VISITOR_ERRORS, ImageOutcome, ZImageService
from zimage.service.visitors import Visitor, visitor_from_http
from zimage.settings import Settings
from zimage.tools.edit import Edit
from zimage.tools.enhance import EnhancePrompt
from zimage.tools.parameters import Kind, Offer, ToolRequest
from zimage.tools.text_to_image import TextToImage

logger = logging.getLogger(__name__)

SESSION_HEADER = "mcp-session-id"
# A cancelled call waits for its run to leave the GPU slot, looking this often.
SLOT_POLL_S = 0.05

# The tools agents see; their parameters come from the tools' own descriptions.
AGENT_TOOLS: tuple[type[ToolRequest], ...] = (TextToImage, Edit)
ENHANCE_TOOL = EnhancePrompt
# What each tool answers here: MCP content, not the script endpoints' files.
_ANSWERS = {
    TextToImage: "Returns each image as a PNG with its seed.",
    Edit: "Returns the PNG, its seed and the method used.",
    EnhancePrompt: "Returns the enhanced prompt.",
}
_IMAGE_DATA = "Send the file as base64 text or a data: URI."


def tool_listing(tool: type[ToolRequest], offered: Mapping[str, Offer] | None = None) -> types.Tool:
    """A tool as MCP lists it: its description and input schema from the tool's request, with
    the choices `offered` here (the adapters' names)."""
    schema = tool.input_schema(offered)
    for name, described in tool.parameters(for_agents=True).items():
        if described.kind is Kind.FILE:  # agents send files inline
            schema["properties"][name]["description"] += " " + _IMAGE_DATA
    return types.Tool(
        name=tool.agent_name,
        description=f"{tool.summary()} {_ANSWERS[tool]}",
        inputSchema=schema,
    )


class SessionCloseNoise(logging.Filter):
    """Drops the traceback mcp 1.30 logs as an ERROR on every session close: `terminate()`
    closes the stream that the session's standalone SSE writer is reading, which then raises
    anyio.ClosedResourceError and logs it as "Error in standalone SSE writer". That is the
    normal end of a session; any other error of that writer is still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (
            record.getMessage() == "Error in standalone SSE writer"
            and isinstance(error, anyio.ClosedResourceError)
        )


_MCP_TRANSPORT_LOG = logging.getLogger("mcp.server.streamable_http")


class ToolFailed(Exception):
    """A readable reason, returned to the agent as an error result."""


class McpEndpoint:
    """The MCP server and its session manager (zimage/guards/mcp_route.py routes to it)."""

    def __init__(
        self, service: ZImageService, settings: Settings, turns: GpuTurns, gpu_slots: int
    ) -> None:
        self.service = service
        self.settings = settings
        self.turns = turns
        self.server: Server = Server("Z-Image Turbo", instructions=_INSTRUCTIONS)
        self.server.list_tools()(self._list_tools)
        self.server.call_tool(validate_input=False)(self._call_tool)
        # Each open session holds a little memory until it ends or idles out.
        self.manager = SessionsPerAddress(
            self.server,
            per_address=settings.mcp_sessions_per_address,
            address_of=self._address_key,
            session_idle_timeout=max(60, settings.output_ttl_s),
            max_sessions=settings.mcp_max_sessions,
        )
        if not any(isinstance(f, SessionCloseNoise) for f in _MCP_TRANSPORT_LOG.filters):
            _MCP_TRANSPORT_LOG.addFilter(SessionCloseNoise())
        # Threads for the runs: one per GPU slot a call may hold.
        self._runs = anyio.CapacityLimiter(gpu_slots)

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        async with self.manager.run():
            yield

    def _tools(self) -> tuple[type[ToolRequest], ...]:
        can_enhance = self.service.engine_facts.can_enhance
        return (*AGENT_TOOLS, ENHANCE_TOOL) if can_enhance else AGENT_TOOLS

    async def _list_tools(self) -> list[types.Tool]:
        offered = self.service.offered()
        return [tool_listing(tool, offered) for tool in self._tools()]

    async def _call_tool(self, name: str, arguments: dict[str, Any]) -> list[Any]:
        context = self.server.request_context
        visitor = self._visitor(context.request)
        asked = self._asked(name, arguments)
        try:
            async with self.turns.turn([asked], visitor):
                return await self._run_in_slot(asked, visitor, _progress_sender(context))
        except (QueueRefusal, *VISITOR_ERRORS) as refusal:
            raise ToolFailed(str(refusal)) from None

    def _asked(self, name: str, arguments: dict[str, Any]) -> ToolRequest:
        """The tool's request from the agent's arguments (files decoded), or ToolFailed."""
        tools = {tool.agent_name: tool for tool in self._tools()}
        if name not in tools:
            raise ToolFailed(f"Unknown tool {name!r}: use one of {', '.join(tools)}.")
        try:
            asked = tools[name].from_agent(arguments)
        except VISITOR_ERRORS as error:
            raise ToolFailed(str(error)) from None
        return _with_files_decoded(asked) if isinstance(asked, Edit) else asked

    async def _run_in_slot(
        self, asked: ToolRequest, visitor: Visitor, report: Callable[[int, int], None]
    ) -> list[Any]:
        """Run the call in a thread while its turn holds the GPU slot; a call cancelled by its
        agent stops at the next step, and the slot is kept until the thread has left it."""
        control = JobControl()
        finished = threading.Event()

        def work() -> list[Any]:
            try:
                return self._run(asked, visitor, report, control)
            finally:
                finished.set()

        try:
            return await anyio.to_thread.run_sync(work, abandon_on_cancel=True, limiter=self._runs)
        except anyio.get_cancelled_exc_class():
            control.stop(StopReason.CANCELLED)  # the GPU work ends at its next step
            with anyio.CancelScope(shield=True):
                while not finished.is_set():
                    await anyio.sleep(SLOT_POLL_S)
            raise

    def _address_key(self, scope: Scope) -> str:
        peer = scope.get("client")
        headers = Headers(scope=scope)
        return address_key(
            client_address(peer[0] if peer else "", headers, self.settings.trusted_proxy_hops)
        )

    def _visitor(self, request: Any) -> Visitor:
        headers = request.headers if request is not None else {}
        peer = request.client.host if request is not None and request.client else ""
        session = dict(headers).get(SESSION_HEADER, "")
        return visitor_from_http(peer, headers, self.settings, owner=f"mcp:{session}")

    def _run(
        self,
        asked: ToolRequest,
        visitor: Visitor,
        report: Callable[[int, int], None],
        control: JobControl,
    ) -> list[Any]:
        hooks = RunHooks(control=control, progress=report)
        try:
            if isinstance(asked, TextToImage):
                outcomes = self.service.text_to_image(asked, visitor, hooks)
                return [item for outcome in outcomes for item in _content(outcome)]
            if isinstance(asked, Edit):
                outcome = self.service.edit(asked, visitor, hooks)
                return [*_content(outcome), _text(f"method {outcome.method}")]
            assert isinstance(asked, EnhancePrompt)
            return [_text(self.service.enhance_prompt(asked, visitor, hooks))]
        except VISITOR_ERRORS as error:
            raise ToolFailed(str(error)) from None
        except Exception:
            logger.exception("MCP tool %s failed", asked.agent_name)
            raise ToolFailed(INTERNAL_FAILURE) from None


def _with_files_decoded(asked: Edit) -> Edit:
    """The edit with its image and mask as bytes (agents send them as base64 text)."""
    image = _decoded(asked.image, "image") if asked.image is not None else None
    mask = _decoded(asked.mask, "mask") if asked.mask else None
    return dataclasses.replace(asked, image=image, mask=mask)


_INSTRUCTIONS = (
    "Z-Image Turbo text-to-image and image editing. Images are kept on the server only for the "
    "output lifetime and only for this MCP session; the usage log honours Do Not Track and "
    "Global Privacy Control headers."
)


def _content(outcome: ImageOutcome) -> list[Any]:
    data = base64.b64encode(outcome.png).decode("ascii")
    return [
        types.ImageContent(type="image", data=data, mimeType="image/png"),
        _text(f"seed {outcome.seed}"),
    ]


def _text(text: str) -> types.TextContent:
    return types.TextContent(type="text", text=text)


def _decoded(value: object, what: str) -> bytes:
    """The bytes of a base64 string or a data: URI; a readable refusal otherwise."""
    if not isinstance(value, str):
        raise ToolFailed(f"The {what} must be a base64 string or a data: URI.")
    encoded = value.split(",", 1)[1] if value.startswith("data:") else value
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ToolFailed(f"The {what} is not valid base64.") from None


def _progress_sender(context: Any) -> Callable[[int, int], None]:
    """Progress notifications for the caller's progress token, sent from the worker thread."""
    token = context.meta.progressToken if context.meta is not None else None

    def report(step: int, total: int) -> None:
        if token is None:
            return
        try:
            anyio.from_thread.run(
                partial(
                    context.session.send_progress_notification,
                    token,
                    step,
                    total,
                    "Denoising",
                    related_request_id=str(context.request_id),
                )
            )
        except Exception:  # noqa: BLE001 - a caller that left needs no progress
            logger.debug("progress notification not sent", exc_info=True)

    return report
