"""The endpoints for scripts: `/generate` as the official Z-Image-Turbo Space has it, and our own
`/text_to_image`, `/edit` and `/enhance_prompt`.

Each is made from its tool's description (zimage/tools): the handler's signature and docs, and
hidden plain components, so that our own checks and messages, not the page widgets' ranges and
rounding, decide what is accepted. What differs per endpoint is only how it answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import gradio as gr

from zimage.engine.jobs import PreviewCallback, RunHooks, TextCallback
from zimage.page.errors import readable_errors
from zimage.page.outputs import (
    download_reporter,
    gallery_of,
    preview_frames,
    progress_reporter,
    save_output,
    seed_caption,
)
from zimage.page.parameters import described, endpoint_for, hidden_input, integer_output
from zimage.page.running import RunningRequests, stream_while_running
from zimage.page.visitors import visitor_of
from zimage.service.service import ImageOutcome, ZImageService
from zimage.service.visitors import Visitor
from zimage.settings import Settings
from zimage.tools.edit import Edit
from zimage.tools.enhance import EnhancePrompt
from zimage.tools.official import OfficialGenerate
from zimage.tools.parameters import ToolRequest
from zimage.tools.text_to_image import TextToImage

if TYPE_CHECKING:
    from zimage.page.gpu_queue import GpuQueue, Streams

# The concurrency id of every event that needs the GPU (zimage/page/gpu_queue.py).
GPU_QUEUE = "gpu"


class ScriptEndpoints:
    """What scripts call. Each endpoint is the same request path as the page's buttons."""

    def __init__(
        self,
        service: ZImageService,
        settings: Settings,
        running: RunningRequests,
        gpu_queue: GpuQueue,
        gpu_slots: int,
    ) -> None:
        self.service = service
        self.settings = settings
        self.running = running
        self.gpu_queue = gpu_queue
        self.gpu_slots = gpu_slots

    def generate(
        self, asked: OfficialGenerate, request: gr.Request, progress: gr.Progress
    ) -> tuple[list, str, int]:
        with self.running.control() as control:
            outcome = self.service.text_to_image(
                asked.as_text_to_image(),
                visitor_of(request, self.settings),
                RunHooks(control=control, progress=progress_reporter(progress)),
            )[0]
        new = save_output(outcome, self.service)
        earlier = [(path, caption) for path, caption in asked.gallery_images or []]
        self.service.keep_files(outcome, [path for path, _ in earlier])
        return [(new, None), *earlier], str(outcome.seed), outcome.seed

    def text_to_image(
        self, asked: TextToImage, request: gr.Request, progress: gr.Progress
    ) -> Iterator[tuple[Any, Any]]:
        visitor = visitor_of(request, self.settings)
        frames = preview_frames(self.service, visitor, kept_when_done=True)
        with self.running.control() as control, frames as shown:

            def work(on_preview: PreviewCallback) -> list[ImageOutcome]:
                hooks = RunHooks(
                    control,
                    progress_reporter(progress),
                    on_preview=on_preview,
                    fetching=download_reporter(progress),
                )
                return self.service.text_to_image(asked, visitor, hooks)

            outcomes = yield from stream_while_running(
                control, work, lambda frames: (shown.gallery(frames), gr.skip())
            )
            yield gallery_of(outcomes, self.service, seed_caption), outcomes[0].seed

    def edit(self, asked: Edit, request: gr.Request, progress: gr.Progress) -> tuple[str, int, str]:
        with self.running.control() as control:
            outcome = self.service.edit(
                asked,
                visitor_of(request, self.settings),
                RunHooks(
                    control=control,
                    progress=progress_reporter(progress),
                    fetching=download_reporter(progress),
                ),
            )
        result = save_output(outcome, self.service)
        self.service.keep_files(outcome, [asked.image, asked.mask])
        return result, outcome.seed, outcome.method

    def enhance_prompt(
        self, asked: EnhancePrompt, request: gr.Request, progress: gr.Progress
    ) -> Iterator[str]:
        visitor = visitor_of(request, self.settings)
        with self.running.control() as control:

            def work(on_text: TextCallback) -> str:
                hooks = RunHooks(control=control, on_text=on_text)
                return self.service.enhance_prompt(asked, visitor, hooks)

            enhanced = yield from stream_while_running(control, work, lambda text: text)
        yield enhanced

    def build(self) -> None:
        """The hidden components and the named endpoints."""
        with gr.Group(visible=False):
            gallery = described(
                gr.Gallery(label="Generated Images", format="png", buttons=["download"]),
                "The images made, newest first.",
            )
            seed_text = described(gr.Textbox(label="Seed Used"), "The seed used, as text.")
            seed_used = integer_output("seed_used", "The seed used (of the first image).")
            edited = described(
                gr.Image(label="image", type="filepath", format="png", buttons=["download"]),
                "The edited image (PNG).",
            )
            method = described(
                gr.Textbox(label="method"), "img2img, inpaint or omni: how the edit was made."
            )
            enhanced = described(gr.Textbox(label="enhanced_prompt"), "The enhanced prompt.")
            self._endpoint(
                OfficialGenerate,
                self.generate,
                [gallery, seed_text, seed_used],
                runs_as=OfficialGenerate.as_text_to_image,
            )
            self._endpoint(
                TextToImage,
                self.text_to_image,
                [gallery, seed_used],
                streams=lambda asked: any(request.live_preview for request in asked),
            )
            self._endpoint(Edit, self.edit, [edited, seed_used, method])
            if self.service.engine_facts.can_enhance:
                self._endpoint(EnhancePrompt, self.enhance_prompt, [enhanced])

    def _endpoint(
        self,
        tool: type[ToolRequest],
        run: Callable[..., Any],
        outputs: list[gr.components.Component],
        runs_as: Callable[[Any], ToolRequest] = lambda asked: asked,
        streams: Streams | None = None,
    ) -> None:
        """`/tool_name`: `run` handles it; `runs_as` is the request its run makes of the
        service, which the GPU queue admits when a call joins; `streams` says whether a call
        wants what the run yields before its result (else the result comes in one message)."""
        offered = self.service.offered()
        parameters = tool.parameters(offered=offered)
        names = list(parameters)
        inputs = [hidden_input(name, parameters[name]) for name in names]

        def asks(values: list[Any], request: gr.Request) -> tuple[list[ToolRequest], Visitor]:
            asked = tool(**dict(zip(names, values)))
            return [runs_as(asked)], visitor_of(request, self.settings)

        dependency = gr.Button(visible=False).click(
            readable_errors(endpoint_for(tool, run, offered)),
            inputs=inputs,
            outputs=outputs,
            api_name=tool.tool_name,
            concurrency_id=GPU_QUEUE,
            concurrency_limit=self.gpu_slots,
            api_visibility="public",
        )
        self.gpu_queue.expects(dependency, asks, streams)
