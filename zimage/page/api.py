"""The endpoints for scripts: `/generate` as the official Z-Image-Turbo Space has it, and our own
`/text_to_image`, `/edit` and `/enhance_prompt`.

They run on hidden plain components (`parameters.py`), so that our own checks and messages, not
the page widgets' ranges and rounding, decide what is accepted. The docstrings' `Args:` are the
parameter descriptions agents and API pages show.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr

from zimage import presets
from zimage.engine.jobs import PreviewCallback, TextCallback
from zimage.page.errors import readable_errors
from zimage.page.outputs import (
    attach_inputs,
    gallery_of,
    preview_items,
    progress_reporter,
    save_output,
    seed_caption,
)
from zimage.page.parameters import described, integer
from zimage.page.running import RunningRequests, stream_while_running
from zimage.page.visitors import visitor_of
from zimage.service.service import ImageOutcome, Visitor, ZImageService
from zimage.settings import Settings

GPU_QUEUE = "gpu"
# The official Space's default size label; any "WIDTHxHEIGHT" prefix is accepted.
OFFICIAL_RESOLUTION = "1024x1024 ( 1:1 )"
# The official Space draws a random seed for seed -1.
RANDOM_SEED = -1


class ScriptEndpoints:
    """What scripts call. Each endpoint is the same request path as the page's buttons."""

    def __init__(
        self, service: ZImageService, settings: Settings, running: RunningRequests, gpu_slots: int
    ) -> None:
        self.service = service
        self.settings = settings
        self.running = running
        self.gpu_slots = gpu_slots

    def generate(
        self,
        prompt: str,
        resolution: str = OFFICIAL_RESOLUTION,
        seed: int = 42,
        steps: int = presets.DEFAULT_STEPS,
        shift: float = presets.DEFAULT_SHIFT,
        random_seed: bool = True,
        gallery_images: list | None = None,
        request: gr.Request = None,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple[list, str, int]:
        """Make an image from a text prompt, as the official Z-Image-Turbo Space does.

        Same parameters, order and outputs as the official Space, so its scripts run unchanged.

        Args:
            prompt: What to draw, in English or Chinese (up to 2000 characters).
            resolution: WIDTHxHEIGHT, optionally followed by a label as in "1024x1024 ( 1:1 )"; sides multiples of 16 from 256 to 2048, at most 4 megapixels.
            seed: Seed for the random noise; -1 draws one. Ignored when random_seed is true.
            steps: Denoising steps, 1 to 50 (8 is the Turbo default).
            shift: Time shift of the sampler, 1 to 10 (default 3).
            random_seed: Draw a new seed instead of using `seed`.
            gallery_images: Images shown before; the new image is put in front of them.

        Returns:
            The gallery (new image first), the seed used as text, and the seed used as a number.
        """
        randomize = bool(random_seed) or seed == RANDOM_SEED
        with self.running.control() as control:
            outcomes = self.service.generate(
                prompt,
                resolution,
                seed,
                randomize,
                steps,
                shift,
                self._visitor(request),
                progress_reporter(progress),
                control,
            )
        new = save_output(outcomes[0], self.service)
        earlier = [(path, caption) for path, caption in gallery_images or []]
        attach_inputs(self.service, outcomes[0], [path for path, _ in earlier])
        seed_used = outcomes[0].seed
        return [(new, None), *earlier], str(seed_used), seed_used

    def text_to_image(
        self,
        prompt: str,
        resolution: str = OFFICIAL_RESOLUTION,
        seed: int = 42,
        randomize_seed: bool = True,
        steps: int = presets.DEFAULT_STEPS,
        shift: float = presets.DEFAULT_SHIFT,
        num_images: int = 1,
        live_preview: bool = False,
        request: gr.Request = None,
        progress: gr.Progress = gr.Progress(),
    ) -> Iterator[tuple[Any, Any]]:
        """Make 1 to 4 images from a text prompt in one run.

        Args:
            prompt: What to draw, in English or Chinese (up to 2000 characters).
            resolution: WIDTHxHEIGHT such as "1024x1024"; sides multiples of 16 from 256 to 2048, at most 4 megapixels.
            seed: Seed of the first image; image i uses seed + i. Ignored when randomize_seed is true.
            randomize_seed: Draw a new seed instead of using `seed`.
            steps: Denoising steps, 1 to 50 (8 is the Turbo default).
            shift: Time shift of the sampler, 1 to 10 (default 3).
            num_images: How many images to make, 1 to 4, with seeds seed, seed + 1, ...
            live_preview: Also send the picture forming, one small frame per image and step, before the result (read them with client.submit(...)).

        Returns:
            The images (captions "seed N") and the seed of the first image.
        """
        visitor = self._visitor(request)
        with self.running.control() as control:

            def work(on_preview: PreviewCallback) -> list[ImageOutcome]:
                return self.service.generate(
                    prompt,
                    resolution,
                    seed,
                    randomize_seed,
                    steps,
                    shift,
                    visitor,
                    progress_reporter(progress),
                    control,
                    num_images,
                    on_preview if live_preview else None,
                )

            outcomes = yield from stream_while_running(
                control, work, lambda frames: (preview_items(frames), gr.skip())
            )
        yield gallery_of(outcomes, self.service, seed_caption), outcomes[0].seed

    def edit(
        self,
        image: str | None,
        instruction: str,
        mask: str | None = None,
        strength: float = presets.DEFAULT_STRENGTH,
        seed: int = 42,
        randomize_seed: bool = True,
        steps: int = presets.DEFAULT_STEPS,
        request: gr.Request = None,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple[str, int, str]:
        """Edit an image with an instruction; a mask limits the change to its white area.

        Args:
            image: The image to edit: PNG, JPEG, WebP, BMP, GIF (first frame) or TIFF. It is scaled down to the edit size.
            instruction: What to change, e.g. "make it a snowy evening" (up to 2000 characters).
            mask: Optional. White (or opaque) where the image may change; without it the whole image may change.
            strength: How much may change, 0.05 to 1.0 (default 0.6).
            seed: Seed for the random noise. Ignored when randomize_seed is true.
            randomize_seed: Draw a new seed instead of using `seed`.
            steps: Denoising steps, 1 to 50 (8 is the Turbo default).

        Returns:
            The edited PNG, the seed used, and the method that ran: img2img, inpaint or omni.
        """
        with self.running.control() as control:
            outcome = self.service.edit(
                image,
                instruction,
                mask,
                strength,
                seed,
                randomize_seed,
                steps,
                self._visitor(request),
                progress_reporter(progress),
                control=control,
            )
        result = save_output(outcome, self.service)
        attach_inputs(self.service, outcome, [image, mask])
        return result, outcome.seed, outcome.method

    def enhance_prompt(
        self, prompt: str, seed: int = -1, request: gr.Request = None
    ) -> Iterator[str]:
        """Rewrite a short prompt into a rich one, with details of subject, composition, light
        and style, keeping its language and any text in quotes. It runs on this Space with the
        model's own text encoder: the prompt is sent nowhere else.

        Args:
            prompt: The prompt to enhance, in English or Chinese (up to 2000 characters).
            seed: -1 for the most likely rewrite (the same every time); any other number from 0 samples a variant.

        Returns:
            The enhanced prompt.
        """
        visitor = self._visitor(request)
        with self.running.control() as control:

            def work(on_text: TextCallback) -> str:
                return self.service.enhance_prompt(prompt, seed, visitor, on_text, control)

            enhanced = yield from stream_while_running(control, work, lambda text: text)
        yield enhanced

    def _visitor(self, request: gr.Request | None) -> Visitor:
        return visitor_of(request, self.settings)

    def build(self) -> None:
        """The hidden components and the three named endpoints."""
        with gr.Group(visible=False):
            prompt = described(gr.Textbox(label="prompt"), "What to draw.")
            resolution = described(
                gr.Textbox(label="resolution", value=OFFICIAL_RESOLUTION),
                "WIDTHxHEIGHT, e.g. 1024x1024.",
            )
            seed = integer("seed", 42, "Seed for the random noise.")
            steps = integer("steps", presets.DEFAULT_STEPS, "Denoising steps, 1 to 50.")
            shift = described(
                gr.Number(label="shift", value=presets.DEFAULT_SHIFT), "Time shift, 1 to 10."
            )
            randomize = described(
                gr.Checkbox(label="random seed", value=True),
                "Draw a new seed instead of using `seed`.",
            )
            num_images = integer("num_images", 1, "How many images, 1 to 4.")
            live_preview = described(
                gr.Checkbox(label="live preview", value=False),
                "Also send the picture forming at each step.",
            )
            gallery_in = described(
                gr.Gallery(label="gallery_images", type="filepath", buttons=["download"]),
                "Images shown before; the new one goes in front.",
            )
            image = described(gr.File(label="image", type="filepath"), "The image to edit.")
            instruction = described(gr.Textbox(label="instruction"), "What to change.")
            mask = described(
                gr.File(label="mask", type="filepath"),
                "Optional: white where the image may change.",
            )
            strength = described(
                gr.Number(label="strength", value=presets.DEFAULT_STRENGTH),
                "How much may change, 0.05 to 1.",
            )
            gallery_out = described(
                gr.Gallery(label="Generated Images", format="png", buttons=["download"]),
                "The images made, newest first.",
            )
            seed_text = described(gr.Textbox(label="Seed Used"), "The seed used, as text.")
            seed_used = integer("seed_used", None, "The seed used (of the first image).")
            image_out = described(
                gr.Image(label="image", type="filepath", format="png", buttons=["download"]),
                "The edited image (PNG).",
            )
            method = described(
                gr.Textbox(label="method"), "img2img, inpaint or omni: how the edit was made."
            )
            enhance_seed = integer(
                "seed", -1, "-1 for the most likely rewrite; another number samples a variant."
            )
            enhanced = described(gr.Textbox(label="enhanced_prompt"), "The enhanced prompt.")
            triggers = [gr.Button(visible=False) for _ in range(4)]

        gpu = {
            "concurrency_id": GPU_QUEUE,
            "concurrency_limit": self.gpu_slots,
            "api_visibility": "public",
        }
        triggers[0].click(
            readable_errors(self.generate),
            inputs=[prompt, resolution, seed, steps, shift, randomize, gallery_in],
            outputs=[gallery_out, seed_text, seed_used],
            api_name="generate",
            **gpu,
        )
        triggers[1].click(
            readable_errors(self.text_to_image),
            inputs=[prompt, resolution, seed, randomize, steps, shift, num_images, live_preview],
            outputs=[gallery_out, seed_used],
            api_name="text_to_image",
            **gpu,
        )
        triggers[2].click(
            readable_errors(self.edit),
            inputs=[image, instruction, mask, strength, seed, randomize, steps],
            outputs=[image_out, seed_used, method],
            api_name="edit",
            **gpu,
        )
        if self.service.engine.enhancer is not None:
            triggers[3].click(
                readable_errors(self.enhance_prompt),
                inputs=[prompt, enhance_seed],
                outputs=enhanced,
                api_name="enhance_prompt",
                **gpu,
            )
