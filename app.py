"""Z-Image Space: Settings -> Engine -> services -> Blocks. `python app.py` serves it.

Settings are read before torch, diffusers and gradio are imported, so a bad value stops
start-up at once with one line.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from zimage.settings import Settings, SettingsError

if TYPE_CHECKING:
    import gradio as gr

    from zimage.engine import Engine, UnavailableEngine
    from zimage.housekeeping import Housekeeping
    from zimage.mcp_server import McpEndpoint
    from zimage.service import ZImageService
    from zimage.ui import RunningRequests

# Before gradio and huggingface_hub are imported: both read these once.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

logger = logging.getLogger("zimage.app")

# Folders no request may read, even by a crafted file path.
BLOCKED_PATHS = ["/etc", "/proc", "/sys", "/var", "/boot", os.path.expanduser("~/.ssh")]


# Handlers that may hold a GPU-queue slot at once: one on the GPU, one decoding its input or
# encoding its output meanwhile. The engine's own lock keeps GPU work one at a time.
GPU_SLOTS = 2


@dataclass
class Space:
    demo: gr.Blocks
    service: ZImageService
    housekeeping: Housekeeping
    running: RunningRequests
    mcp: McpEndpoint | None

    def close(self) -> None:
        """Stop serving, stop the timers and delete every output and temp file."""
        self.demo.close()
        self.housekeeping.stop()

    def shut_down(self, grace_s: float) -> bool:
        """Answer the requests in flight (the running one is stopped at its next step), then
        close; True when every request was answered within `grace_s`."""
        deadline = time.monotonic() + grace_s
        answered = self.service.shut_down(grace_s)
        # Let Gradio deliver those answers before its server goes.
        while gradio_jobs_running(self.demo) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.close()
        logger.info("stopped %s", "cleanly" if answered else "with a request still running")
        return answered

    def app_kwargs(self) -> dict[str, object]:
        """What Gradio's FastAPI app gets: our ASGI middleware and, for MCP, a lifespan."""
        from starlette.middleware import Middleware

        from zimage.mcp_server import McpRoute
        from zimage.page_language import PageLanguage
        from zimage.ui import CancelRelay

        middleware = [Middleware(CancelRelay, running=self.running), Middleware(PageLanguage)]
        if self.mcp is None:
            return {"middleware": middleware}
        middleware.append(Middleware(McpRoute, endpoint=self.mcp))
        return {"middleware": middleware, "lifespan": self.mcp.lifespan}


def gradio_jobs_running(demo: gr.Blocks) -> bool:
    queue = getattr(demo, "_queue", None)
    return any(job is not None for job in getattr(queue, "active_jobs", None) or ())


def use_private_temp_dir(settings: Settings) -> Path:
    """Gradio's temp folder: the operator's GRADIO_TEMP_DIR, else a private RAM-backed one."""
    from zimage.cache import default_temp_dir

    folder = Path(settings.temp_dir) if settings.temp_dir else default_temp_dir()
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(folder)  # read by gradio when Blocks are built
    return folder


def build(settings: Settings, engine: Engine | UnavailableEngine | None = None) -> Space:
    """Settings -> engine -> services -> the Blocks app with its queue and housekeeping.

    `engine` replaces the one the settings would load (benchmarks time the app around a stand-in).
    """
    temp_dir = use_private_temp_dir(settings)

    from zimage import ui
    from zimage.admission import RateLimiter
    from zimage.analytics import UsageLog
    from zimage.cache import OutputCache
    from zimage.engine import create_engine
    from zimage.housekeeping import Housekeeping
    from zimage.images import ImageLimits
    from zimage.mcp_server import McpEndpoint
    from zimage.moderation import Moderation
    from zimage.privacy import browser_state_key
    from zimage.service import ZImageService

    engine = engine or create_engine(settings)
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
    running = ui.RunningRequests()
    demo = ui.build_demo(service, settings, secret, running, GPU_SLOTS)
    # api_open=False: the HTTP API cannot skip the queue. The handlers holding GPU slots past the
    # first count against ZIMAGE_QUEUE_MAX, so as many requests wait as before.
    demo.queue(
        api_open=False,
        default_concurrency_limit=1,
        max_size=max(1, settings.queue_max - (GPU_SLOTS - 1)),
    )
    housekeeping = Housekeeping(
        cache, usage_log, temp_dir, getattr(engine, "prompt_embeddings", None)
    )
    housekeeping.start()
    mcp = McpEndpoint(service, settings) if settings.mcp else None
    return Space(demo, service, housekeeping, running, mcp)


def launch(space: Space, settings: Settings, **overrides: object) -> None:
    """Serve with every Gradio default that would break the privacy policy switched off."""
    from zimage import ui

    options: dict[str, object] = {
        "server_name": settings.server_name,
        "server_port": settings.server_port,
        "theme": ui.page_theme(),
        "css": ui.PAGE_CSS,
        "i18n": ui.page_translations(settings, space.service.engine),
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
        "head": ui.PAGE_HEAD,
        "app_kwargs": space.app_kwargs(),
    }
    options.update(overrides)
    space.demo.launch(**options)


def prepare_zero_gpu() -> None:
    """On ZeroGPU, `spaces` must be imported before torch touches CUDA (it patches torch)."""
    if os.environ.get("SPACES_ZERO_GPU"):
        try:
            import spaces  # noqa: F401
        except ImportError:
            logger.warning("SPACES_ZERO_GPU is set but the spaces package is not installed")


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"Invalid setting: {error}", file=sys.stderr)
        return 2
    logger.info("settings: %s", settings.describe())
    prepare_zero_gpu()
    serve_until_stopped(build(settings), settings)
    return 0


def serve_until_stopped(space: Space, settings: Settings) -> None:
    """Serve until SIGTERM (a Space stopping, `docker stop`) or Ctrl-C, then stop cleanly."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    launch(space, settings, prevent_thread_lock=True)
    stop.wait()
    if not space.shut_down(settings.shutdown_grace_s):
        # A GPU step still running after the grace period cannot be interrupted; everything of
        # ours is deleted already, so leave without waiting for it (or for the interpreter to
        # tear down threads that are still inside torch).
        logging.shutdown()
        os._exit(0)


def __getattr__(name: str) -> gr.Blocks:
    # `demo` for tools that import it (e.g. `gradio app.py`), built only when asked for.
    if name == "demo":
        return build(Settings.from_env()).demo
    raise AttributeError(name)


if __name__ == "__main__":
    sys.exit(main())
