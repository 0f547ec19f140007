"""Z-Image Space: Settings -> Engine -> service -> Blocks. `python app.py` serves it.

Settings are read before torch, diffusers and gradio are imported, so a bad value stops
start-up at once with one line.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

from zimage.settings import Settings, SettingsError

if TYPE_CHECKING:
    import gradio as gr

# Before gradio and huggingface_hub are imported: both read these once.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

logger = logging.getLogger("zimage.app")

# Folders no request may read, even by a crafted file path.
BLOCKED_PATHS = ["/etc", "/proc", "/sys", "/var", "/boot", os.path.expanduser("~/.ssh")]


def build(settings: Settings) -> gr.Blocks:
    """Settings -> engine -> service -> the Blocks app with its queue."""
    from zimage import ui
    from zimage.engine import create_engine
    from zimage.images import ImageLimits
    from zimage.service import ZImageService

    engine = create_engine(settings)
    logger.info("engine: %s (attention: %s)", engine.description, engine.attention_backend)
    limits = ImageLimits(
        max_upload_bytes=settings.max_upload_mb * 1024 * 1024,
        max_megapixels=settings.edit_max_megapixels,
    )
    demo = ui.build_demo(ZImageService(engine, limits))
    # api_open=False: the HTTP API cannot skip the queue and its one-at-a-time GPU slot.
    return demo.queue(api_open=False, default_concurrency_limit=1)


def launch(demo: gr.Blocks, settings: Settings, **overrides: object) -> None:
    """Serve with every Gradio default that would break the privacy policy switched off."""
    from zimage import ui

    options: dict[str, object] = {
        "server_name": settings.server_name,
        "server_port": settings.server_port,
        "theme": ui.system_font_theme(),
        "max_file_size": f"{settings.max_upload_mb}mb",
        "run_history": False,
        "enable_monitoring": False,
        "allowed_paths": [],
        "blocked_paths": BLOCKED_PATHS,
        "ssr_mode": False,
        "mcp_server": False,
        "pwa": False,
        "footer_links": ["api"],
        "show_error": True,
    }
    options.update(overrides)
    demo.launch(**options)


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"Invalid setting: {error}", file=sys.stderr)
        return 2
    launch(build(settings), settings)
    return 0


def __getattr__(name: str) -> gr.Blocks:
    # `demo` for tools that import it (e.g. `gradio app.py`), built only when asked for.
    if name == "demo":
        return build(Settings.from_env())
    raise AttributeError(name)


if __name__ == "__main__":
    sys.exit(main())
