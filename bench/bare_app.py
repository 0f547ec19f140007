"""A bare Gradio app with our `/text_to_image`'s inputs, outputs and queue, and nothing else.

    python bench/bare_app.py [--plain]   (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT say where)

The yardstick of `bench/app_overhead.py`: the least a Gradio app must do to answer the same
call. One `gr.Blocks` with the same 8 inputs (prompt, resolution, seed, randomize_seed, steps,
shift, num_images, live_preview) and outputs (a PNG gallery and a number) as the app's
`/text_to_image`, the same queue (`app.queue_options`: `api_open=False`, the same size) and the
same concurrency group and limit (`app.GPU_SLOTS`). Its handler calls the same preview engine
directly, encodes the PNG as the app does (`zimage.service.images.encode_png`) and hands Gradio the file
as the app does; no validation, moderation, output cache, usage log, visitor, rate limit,
middleware or progress, and Gradio's defaults otherwise (its queue's summary of events too,
which the app turns off).

The handler is a generator that yields its result once: an endpoint that can stream (the
app's sends preview frames when `live_preview` is true) must be one in Gradio, and Gradio
answers a generator in two messages (`process_generating` with the result, then
`process_completed` with it again), each of which gradio_client downloads. `--plain` makes it
a plain function instead, answered once: what the same endpoint would cost without streaming.

Serves until SIGTERM, then exits 0.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Gradio's own defaults for its queue's event summary, which importing app.py would change.
os.environ.update({"GRADIO_ANALYTICS_MAX_EVENTS": "10000", "GRADIO_ANALYTICS_CACHE_FREQUENCY": "1"})

import app  # noqa: E402  (before gradio: telemetry off, as for the app)
from zimage import presets  # noqa: E402
from zimage.settings import Settings  # noqa: E402

Gallery = list[tuple[str, str]]


def build_bare_demo(engine: Any = None, plain: bool = False) -> Any:
    """The bare Blocks (queue set) around `engine` (the preview engine if None)."""
    import gradio as gr
    from gradio.processing_utils import save_bytes_to_cache
    from gradio.utils import get_upload_folder

    from zimage.engine.loading import create_preview_engine
    from zimage.page.api import GPU_QUEUE
    from zimage.service.images import encode_png
    from zimage.tools.official import OFFICIAL_RESOLUTION
    from zimage.tools.text_to_image import TextToImage

    engine = engine or create_preview_engine()

    def make_images(
        prompt: str,
        resolution: str = OFFICIAL_RESOLUTION,
        seed: int = 42,
        randomize_seed: bool = True,
        steps: int = presets.DEFAULT_STEPS,
        shift: float = presets.DEFAULT_SHIFT,
        num_images: int = 1,
        live_preview: bool = False,
    ) -> tuple[Gallery, int]:
        width, height = (int(side) for side in resolution.split(" ")[0].split("x"))
        request = TextToImage(
            prompt=prompt,
            resolution=f"{width}x{height}",
            seed=int(seed),
            steps=int(steps),
            shift=float(shift),
            num_images=int(num_images),
        )
        result = engine.text_to_image(request)
        folder = get_upload_folder()
        gallery = [
            (save_bytes_to_cache(encode_png(image), "zimage.png", folder), f"seed {seed_of}")
            for image, seed_of in zip(result.images, result.seeds)
        ]
        return gallery, result.seeds[0]

    @functools.wraps(make_images)  # the same parameter names for the API
    def text_to_image(*arguments: Any) -> Iterator[tuple[Gallery, int]]:
        yield make_images(*arguments)

    with gr.Blocks(analytics_enabled=False) as demo:
        inputs = [
            gr.Textbox(label="prompt"),
            gr.Textbox(label="resolution", value=OFFICIAL_RESOLUTION),
            gr.Number(label="seed", value=42),
            gr.Checkbox(label="random seed", value=True),
            gr.Number(label="steps", value=presets.DEFAULT_STEPS),
            gr.Number(label="shift", value=presets.DEFAULT_SHIFT),
            gr.Number(label="num_images", value=1),
            gr.Checkbox(label="live preview", value=False),
        ]
        outputs = [
            gr.Gallery(label="Generated Images", format="png", buttons=["download"]),
            gr.Number(label="seed_used"),
        ]
        gr.Button().click(
            make_images if plain else text_to_image,
            inputs=inputs,
            outputs=outputs,
            api_name="text_to_image",
            concurrency_id=GPU_QUEUE,
            concurrency_limit=app.GPU_SLOTS,
        )
    demo.queue(**app.queue_options(Settings.from_env()))
    return demo


def serve(engine: Any = None, plain: bool = False) -> None:
    """Serve the bare app until SIGTERM."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    demo = build_bare_demo(engine, plain)
    # As app.py: without Gradio's HEAD / of itself, which raises on a busy machine and would
    # count in this app's cold start alone.
    demo.launch(ssr_mode=False, prevent_thread_lock=True, _frontend=False)
    stop.wait()
    demo.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plain", action="store_true", help="a plain function, not a generator")
    serve(plain=parser.parse_args().plain)


if __name__ == "__main__":
    main()
