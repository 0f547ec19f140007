"""Z-Image Space: Settings -> Engine -> services -> Blocks. `python app.py` serves it.

Settings are read before torch, diffusers and gradio are imported, so a bad value stops
start-up at once with one line.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from zimage.settings import Settings, SettingsError

if TYPE_CHECKING:
    import gradio as gr
    from starlette.middleware import Middleware

    from zimage.housekeeping import Housekeeping
    from zimage.server_state import GradioState
    from zimage.service import ZImageService

# Before gradio and huggingface_hub are imported: both read these once.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

logger = logging.getLogger("zimage.app")

# Folders no request may read, even by a crafted file path.
BLOCKED_PATHS = ["/etc", "/proc", "/sys", "/var", "/boot", os.path.expanduser("~/.ssh")]


@dataclass
class Space:
    demo: gr.Blocks
    service: ZImageService
    housekeeping: Housekeeping
    gradio_state: GradioState

    def close(self) -> None:
        """Stop serving, stop the timers and delete every output and temp file."""
        self.demo.close()
        self.housekeeping.stop()


def use_private_temp_dir(settings: Settings) -> Path:
    """This process's own folder for Gradio's files, removed at exit.

    Inside the operator's GRADIO_TEMP_DIR, else inside a private RAM-backed one; never shared
    with another instance (see zimage/process_temp.py).
    """
    from zimage.cache import default_temp_dir
    from zimage.process_temp import process_temp_dir

    try:
        base = Path(settings.temp_dir) if settings.temp_dir else default_temp_dir()
        folder = process_temp_dir(base)
    except (OSError, RuntimeError) as error:
        where = settings.temp_dir or "(unset: a private folder)"
        raise SettingsError(f"GRADIO_TEMP_DIR={where!r} cannot be used: {error}.") from None
    os.environ["GRADIO_TEMP_DIR"] = str(folder)  # read by gradio when Blocks are built
    return folder


def build(settings: Settings) -> Space:
    """Settings -> engine -> services -> the Blocks app with its queue and housekeeping."""
    temp_dir = use_private_temp_dir(settings)

    from zimage import ui
    from zimage.admission import RateLimiter
    from zimage.analytics import UsageLog
    from zimage.cache import OutputCache
    from zimage.engine import create_engine
    from zimage.housekeeping import Housekeeping
    from zimage.images import ImageLimits
    from zimage.moderation import Moderation
    from zimage.privacy import browser_state_key
    from zimage.server_state import GradioState
    from zimage.service import ZImageService

    engine = create_engine(settings)
    logger.info("engine: %s (attention: %s)", engine.description, engine.attention_backend)
    data_dir = Path(settings.data_dir)
    usage_log = (
        UsageLog(
            data_dir / "usage.sqlite3",
            retention_days=settings.log_retention_days,
            log_prompts=settings.log_prompts,
        )
        if settings.analytics
        else None
    )
    cache = OutputCache(
        ttl_s=settings.output_ttl_s,
        max_bytes=settings.cache_max_mb * 1024 * 1024,
        max_entries_per_owner=settings.cache_max_per_visitor,
    )
    limits = ImageLimits(
        max_upload_bytes=settings.max_upload_mb * 1024 * 1024,
        max_megapixels=settings.edit_max_megapixels,
    )
    moderation = Moderation.load(settings.blocklist, settings.safety_model)
    logger.info("content moderation: %s", "on" if moderation.enabled else "off")
    service = ZImageService(
        engine,
        limits,
        cache,
        usage_log,
        moderation=moderation,
        rate_limiter=RateLimiter(settings.rate_per_min),
    )
    secret = settings.browser_secret or browser_state_key(data_dir / "browser-state.key")
    demo = ui.build_demo(service, settings, secret)
    # api_open=False: the HTTP API cannot skip the queue and its one-at-a-time GPU slot.
    demo.queue(api_open=False, default_concurrency_limit=1, max_size=settings.queue_max)
    housekeeping = Housekeeping(
        cache, usage_log, temp_dir, getattr(engine, "prompt_embeddings", None)
    )
    housekeeping.start()
    return Space(demo, service, housekeeping, GradioState(demo))


def http_middleware(space: Space) -> list[Middleware]:
    """Pure ASGI middleware around Gradio's routes, outermost first: add new ones here."""
    from starlette.middleware import Middleware

    from zimage.protocol_guard import ProtocolGuard

    return [Middleware(ProtocolGuard, endpoints=space.gradio_state)]


def launch(space: Space, settings: Settings, **overrides: object) -> None:
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
        "blocked_paths": [*BLOCKED_PATHS, settings.data_dir],
        "ssr_mode": False,
        "mcp_server": False,
        "pwa": False,
        "footer_links": ["api"],
        "show_error": True,
        "head": ui.STORAGE_FALLBACK_HEAD,
        # Gradio keeps every session (each script call is one) until this many exist.
        "state_session_capacity": settings.session_capacity,
        "app_kwargs": {
            "middleware": http_middleware(space),
            "lifespan": space.gradio_state.lifespan,
        },
    }
    options.update(overrides)
    space.demo.launch(**options)


def stop_like_ctrl_c(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = Settings.from_env()
        logger.info("settings: %s", settings.describe())
        space = build(settings)
    except SettingsError as error:
        print(f"Invalid setting: {error}", file=sys.stderr)
        return 2
    # SIGTERM (a Space stopping, `docker stop`) ends the server like Ctrl-C does.
    signal.signal(signal.SIGTERM, stop_like_ctrl_c)
    try:
        launch(space, settings)
    finally:
        space.close()
    return 0


def __getattr__(name: str) -> gr.Blocks:
    # `demo` for tools that import it (e.g. `gradio app.py`), built only when asked for.
    if name == "demo":
        return build(Settings.from_env()).demo
    raise AttributeError(name)


if __name__ == "__main__":
    sys.exit(main())
