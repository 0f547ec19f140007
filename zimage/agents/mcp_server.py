"""The Space as an MCP server for agents: streamable HTTP at `/gradio_api/mcp`.

Hugging Face lists Gradio Spaces as MCP servers at that address. Gradio's own MCP server is not
used: it answers every caller through one shared client session (so all agents would be one
visitor, sharing outputs and a cap), and without a progress token it returns a result as a
Python repr instead of an image. This one keeps MCP sessions (the `Mcp-Session-Id` header): each
session is its own visitor with its own outputs; the caller's address, Do Not Track and Global
Privacy Control apply as for any request; images come back as image content with their seeds.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from zimage import presets
from zimage.engine.errors import INTERNAL_FAILURE
from zimage.engine.jobs import JobControl, StopReason
from zimage.service.service import VISITOR_ERRORS, ImageOutcome, Visitor, ZImageService
from zimage.service.visitors import visitor_from_http
from zimage.settings import Settings

logger = logging.getLogger(__name__)

SESSION_HEADER = "mcp-session-id"
# Open MCP sessions at most; each holds a little memory until it ends or idles out.
MAX_SESSIONS = 1000

_SEED = {
    "type": "integer",
    "minimum": 0,
    "maximum": presets.MAX_SEED,
    "default": 42,
    "description": "Seed for the random noise; the same seed and settings give the same image.",
}
_RANDOMIZE = {
    "type": "boolean",
    "default": True,
    "description": "Draw a new seed instead of using `seed`.",
}
_STEPS = {
    "type": "integer",
    "minimum": presets.MIN_STEPS,
    "maximum": presets.MAX_STEPS,
    "default": presets.DEFAULT_STEPS,
    "description": "Denoising steps (8 is the Turbo default).",
}
_IMAGE_DATA = "Base64-encoded PNG, JPEG, WebP, BMP, GIF or TIFF bytes, or a data: URI."

TOOLS = [
    types.Tool(
        name="text_to_image",
        description=(
            "Make 1 to 4 images from a text prompt with Z-Image Turbo. Returns each image as a "
            "PNG with its seed."
        ),
        inputSchema={
            "type": "object",
            "properties": {
                "prompt": {
                    "type": "string",
                    "maxLength": presets.MAX_PROMPT_CHARS,
                    "description": "What to draw, in English or Chinese; text in quotes is "
                    "rendered in the image.",
                },
                "resolution": {
                    "type": "string",
                    "default": presets.DEFAULT_RESOLUTION,
                    "description": "WIDTHxHEIGHT, sides multiples of 16 from 256 to 2048, at "
                    "most 4 megapixels.",
                },
                "seed": _SEED,
                "randomize_seed": _RANDOMIZE,
                "steps": _STEPS,
                "shift": {
                    "type": "number",
                    "minimum": presets.MIN_SHIFT,
                    "maximum": presets.MAX_SHIFT,
                    "default": presets.DEFAULT_SHIFT,
                    "description": "Time shift of the sampler.",
                },
                "num_images": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": presets.MAX_IMAGES_PER_RUN,
                    "default": 1,
                    "description": "How many images, with seeds seed, seed + 1, ...",
                },
            },
            "required": ["prompt"],
        },
    ),
    types.Tool(
        name="edit_image",
        description=(
            "Edit an image with an instruction. With a mask only its white area changes "
            "(inpainting); without one the whole image may change. Returns the PNG, its seed and "
            "the method used."
        ),
        inputSchema={
            "type": "object",
            "properties": {
                "image": {"type": "string", "description": f"The image to edit. {_IMAGE_DATA}"},
                "instruction": {
                    "type": "string",
                    "maxLength": presets.MAX_PROMPT_CHARS,
                    "description": "What to change, e.g. 'make it a snowy evening'.",
                },
                "mask": {
                    "type": "string",
                    "description": "Optional: white where the image may change. " + _IMAGE_DATA,
                },
                "strength": {
                    "type": "number",
                    "minimum": presets.MIN_STRENGTH,
                    "maximum": presets.MAX_STRENGTH,
                    "default": presets.DEFAULT_STRENGTH,
                    "description": "How much may change.",
                },
                "seed": _SEED,
                "randomize_seed": _RANDOMIZE,
                "steps": _STEPS,
            },
            "required": ["image", "instruction"],
        },
    ),
]


ENHANCE_TOOL = types.Tool(
    name="enhance_prompt",
    description=(
        "Rewrite a short image prompt into a rich one (subject, composition, light, style), "
        "keeping its language and any text in quotes. Runs on this Space with the model's own "
        "text encoder: the prompt is sent nowhere else."
    ),
    inputSchema={
        "type": "object",
        "properties": {
            "prompt": {
                "type": "string",
                "maxLength": presets.MAX_PROMPT_CHARS,
                "description": "The prompt to enhance, in English or Chinese.",
            },
            "seed": {
                "type": "integer",
                "minimum": -1,
                "maximum": presets.MAX_SEED,
                "default": -1,
                "description": "-1 for the most likely rewrite; another number samples a variant.",
            },
        },
        "required": ["prompt"],
    },
)


class ToolFailed(Exception):
    """A readable reason, returned to the agent as an error result."""


class McpEndpoint:
    """The MCP server and its session manager (zimage/guards/mcp_route.py routes to it)."""

    def __init__(self, service: ZImageService, settings: Settings) -> None:
        self.service = service
        self.settings = settings
        self.server: Server = Server("Z-Image Turbo", instructions=_INSTRUCTIONS)
        self.server.list_tools()(self._list_tools)
        self.server.call_tool(validate_input=False)(self._call_tool)
        self.manager = StreamableHTTPSessionManager(
            self.server,
            session_idle_timeout=max(60, settings.output_ttl_s),
            max_sessions=MAX_SESSIONS,
        )
        self._calls = threading.BoundedSemaphore(settings.queue_max)

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        async with self.manager.run():
            yield

    async def _list_tools(self) -> list[types.Tool]:
        enhancer = self.service.engine.enhancer is not None
        return [*TOOLS, ENHANCE_TOOL] if enhancer else TOOLS

    async def _call_tool(self, name: str, arguments: dict[str, Any]) -> list[Any]:
        context = self.server.request_context
        visitor = self._visitor(context.request)
        report = _progress_sender(context)
        control = JobControl()
        if not self._calls.acquire(blocking=False):
            raise ToolFailed("The Space is busy. Please try again in a minute.")
        try:
            work = partial(self._run, name, arguments, visitor, report, control)
            return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            control.stop(StopReason.CANCELLED)  # the GPU work ends at its next step
            raise
        finally:
            self._calls.release()

    def _visitor(self, request: Any) -> Visitor:
        headers = request.headers if request is not None else {}
        peer = request.client.host if request is not None and request.client else ""
        session = dict(headers).get(SESSION_HEADER, "")
        return visitor_from_http(peer, headers, self.settings, owner=f"mcp:{session}")

    def _run(
        self,
        name: str,
        arguments: dict[str, Any],
        visitor: Visitor,
        report: Callable[[int, int], None],
        control: JobControl,
    ) -> list[Any]:
        try:
            if name == "text_to_image":
                outcomes = self._text_to_image(arguments, visitor, report, control)
                return [item for outcome in outcomes for item in _content(outcome)]
            if name == "edit_image":
                outcome = self._edit(arguments, visitor, report, control)
                return [*_content(outcome), _text(f"method {outcome.method}")]
            if name == "enhance_prompt":
                enhanced = self.service.enhance_prompt(
                    arguments.get("prompt"), arguments.get("seed", -1), visitor, control=control
                )
                return [_text(enhanced)]
            tools = ", ".join(tool.name for tool in TOOLS + [ENHANCE_TOOL])
            raise ToolFailed(f"Unknown tool {name!r}: use one of {tools}.")
        except VISITOR_ERRORS as error:
            raise ToolFailed(str(error)) from None
        except ToolFailed:
            raise
        except Exception:
            logger.exception("MCP tool %s failed", name)
            raise ToolFailed(INTERNAL_FAILURE) from None

    def _text_to_image(
        self,
        arguments: dict[str, Any],
        visitor: Visitor,
        report: Callable[[int, int], None],
        control: JobControl,
    ) -> list[ImageOutcome]:
        return self.service.generate(
            arguments.get("prompt"),
            arguments.get("resolution", presets.DEFAULT_RESOLUTION),
            arguments.get("seed", 42),
            arguments.get("randomize_seed", True),
            arguments.get("steps", presets.DEFAULT_STEPS),
            arguments.get("shift", presets.DEFAULT_SHIFT),
            visitor,
            report,
            control,
            arguments.get("num_images", 1),
        )

    def _edit(
        self,
        arguments: dict[str, Any],
        visitor: Visitor,
        report: Callable[[int, int], None],
        control: JobControl,
    ) -> ImageOutcome:
        image = arguments.get("image")
        mask = arguments.get("mask")
        return self.service.edit(
            _decoded(image, "image") if image is not None else None,
            arguments.get("instruction"),
            _decoded(mask, "mask") if mask else None,
            arguments.get("strength", presets.DEFAULT_STRENGTH),
            arguments.get("seed", 42),
            arguments.get("randomize_seed", True),
            arguments.get("steps", presets.DEFAULT_STEPS),
            visitor,
            report,
            control=control,
        )


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
