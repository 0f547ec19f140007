"""Z-Image Space: Settings -> Engine -> services -> Blocks. `python app.py` serves it.

Settings are read before torch, diffusers and gradio are imported, so a bad value stops
start-up at once with one line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from zimage.privacy.policy import BrowserKeys, KeyFileError, browser_state_key
from zimage.settings import Settings, SettingsError

if TYPE_CHECKING:
    import gradio as gr

    from zimage.agents.mcp_server import McpEndpoint
    from zimage.engine.engine import Engine
    from zimage.engine.loading import UnavailableEngine
    from zimage.guards.uploads import HeldUploads, UploadBudget
    from zimage.page import EventCancels, RunningRequests
    from zimage.page.gradio_state import GradioState
    from zimage.privacy.housekeeping import Housekeeping
    from zimage.replicas.database import SharedDatabase
    from zimage.service.service import ZImageService

# Before gradio and huggingface_hub are imported: both read these once.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# Gradio's queue keeps its last 10,000 events (time, endpoint, session id) for the monitoring
# page, which is off here, and after every event sums them up with pandas in a worker thread:
# ~1.5 ms of CPU per event at first, ~11 ms once 10,000 are kept. Keep one, never sum up.
os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "1")
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", str(2**62))

logger = logging.getLogger("zimage.app")

# System folders, named in no answer (zimage/guards/public_errors.py).
SYSTEM_FOLDERS = ["/etc", "/proc", "/sys", "/var", "/boot", os.path.expanduser("~/.ssh")]


# What closing takes once the answers are given (the server, the timers, deleting every file),
# kept out of the grace period's wait for answers so that the process exits within it.
CLOSING_S = 1.0

# Handlers that may hold a GPU-queue slot at once: one on the GPU, one decoding its input or
# encoding its output meanwhile. The engine's own lock keeps GPU work one at a time.
GPU_SLOTS = 2


@dataclass
class Space:
    demo: gr.Blocks
    service: ZImageService
    housekeeping: Housekeeping
    running: RunningRequests
    cancels: EventCancels
    mcp: McpEndpoint | None
    upload_budget: UploadBudget
    held_uploads: HeldUploads
    gradio_state: GradioState
    shared_database: SharedDatabase | None = None

    def close(self) -> None:
        """Stop serving (connections still open, such as event streams and MCP sessions, are
        cut after CLOSING_S), stop the timers and delete every output and temp file."""
        server = getattr(self.demo, "server", None)
        if server is not None:
            # uvicorn's: else it waits for them without end, and Gradio gives up after 5 s. Not
            # force_exit, which would skip the app's lifespan shutdown (and log its cancellation).
            server.config.timeout_graceful_shutdown = CLOSING_S
        self.demo.close()
        self.housekeeping.stop()
        self.service.adapters.close()
        if self.shared_database is not None:
            self.shared_database.close()

    def shut_down(self, grace_s: float) -> bool:
        """Answer the requests in flight (the running one is stopped at its next step), then
        close, all within `grace_s`; True when every request was answered."""
        answering_s = max(0.0, grace_s - CLOSING_S)
        deadline = time.monotonic() + answering_s
        answered = self.service.shut_down(answering_s)
        # Let Gradio deliver those answers before its server goes.
        while gradio_jobs_running(self.demo) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.close()
        logger.info("stopped %s", "cleanly" if answered else "with a request still running")
        return answered

    def app_kwargs(self, settings: Settings) -> dict[str, object]:
        """What Gradio's FastAPI app gets: our ASGI middleware (zimage/guards/middleware.py,
        which says why in that order) and a lifespan for what runs on its event loop (sessions
        without every config up front, forgetting stale sessions, the MCP session manager)."""
        from zimage.guards.middleware import middleware_stack
        from zimage.guards.public_errors import server_paths

        middleware = middleware_stack(
            settings,
            upload_budget=self.upload_budget,
            held_uploads=self.held_uploads,
            endpoints=self.gradio_state,
            cancels=self.cancels,
            mcp_server=self.mcp.manager if self.mcp is not None else None,
            hidden_paths=server_paths(
                settings.data_dir, self.housekeeping.temp_dir, *SYSTEM_FOLDERS
            ),
            files_given=self.service.cache.given,
        )
        return {"middleware": middleware, "lifespan": self.lifespan}

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object) -> AsyncIterator[None]:
        from zimage.guards.middleware import headers_outermost
        from zimage.page import use_lazy_sessions

        use_lazy_sessions(app)  # before the first request
        headers_outermost(app)
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(self.gradio_state.lifespan(app))
            if self.mcp is not None:
                await stack.enter_async_context(self.mcp.lifespan(app))
            yield


def gradio_jobs_running(demo: gr.Blocks) -> bool:
    queue = getattr(demo, "_queue", None)
    return any(job is not None for job in getattr(queue, "active_jobs", None) or ())


def use_private_temp_dir(settings: Settings) -> Path:
    """This process's own folder for Gradio's files, removed at exit.

    Inside the operator's GRADIO_TEMP_DIR, else inside a private RAM-backed one; never shared
    with another instance (see zimage/privacy/temp_folder.py).
    """
    from zimage.privacy.output_cache import default_temp_dir
    from zimage.privacy.temp_folder import process_temp_dir

    try:
        base = Path(settings.temp_dir) if settings.temp_dir else default_temp_dir()
        folder = process_temp_dir(base)
    except (OSError, RuntimeError) as error:
        where = settings.temp_dir or "(unset: a private folder)"
        raise SettingsError(f"GRADIO_TEMP_DIR={where!r} cannot be used: {error}.") from None
    os.environ["GRADIO_TEMP_DIR"] = str(folder)  # read by gradio when Blocks are built
    return folder


def build(settings: Settings, engine: Engine | UnavailableEngine | None = None) -> Space:
    """Settings -> engine -> services -> the Blocks app with its queue and housekeeping.

    `engine` replaces the one the settings would load (benchmarks time the app around a stand-in).
    Raises KeyFileError when the browser-state key can be neither read nor made.
    """
    # Folders and files the Space creates (usage log, key, outputs, uploads) are its own only.
    os.umask(0o077)
    temp_dir = use_private_temp_dir(settings)
    data_dir = Path(settings.data_dir)
    secret = settings.browser_secret or browser_state_key(data_dir / "browser-state.key")

    from zimage import page
    from zimage.adapters.startup import adapter_menu
    from zimage.agents.mcp_server import McpEndpoint
    from zimage.engine.loading import create_engine
    from zimage.guards.rate_limit import RateLimiter
    from zimage.guards.uploads import HeldUploads, UploadBudget
    from zimage.page.gradio_state import GradioState
    from zimage.privacy.housekeeping import Housekeeping
    from zimage.privacy.output_cache import OutputCache
    from zimage.privacy.usage_log import UsageLog
    from zimage.service.images import ImageLimits
    from zimage.service.moderation import Moderation
    from zimage.service.service import ZImageService

    engine = engine or create_engine(settings)
    logger.info("engine: %s (attention: %s)", engine.description, engine.attention_backend)
    adapters = adapter_menu(settings, engine)
    shared = shared_database(settings, secret)
    usage_log = (
        UsageLog(
            shared.usage_store if shared else settings.usage_db,
            retention_days=settings.log_retention_days,
            log_prompts=settings.log_prompts,
        )
        if settings.analytics
        else None
    )
    held_uploads = HeldUploads(
        temp_dir, settings.upload_total_mb * 1024 * 1024, settings.upload_unused_s
    )
    upload_budget = UploadBudget(settings.upload_visitor_mb * 1024 * 1024, settings.upload_window_s)
    cache = OutputCache(
        ttl_s=settings.output_ttl_s,
        max_bytes=settings.cache_max_mb * 1024 * 1024,
        max_entries_per_owner=settings.cache_max_per_visitor,
        files_dir=temp_dir,
        # Uploads share the temp folder's memory; an output that keeps one takes over its count.
        reserved_bytes=held_uploads.held_bytes,
        files_owned=held_uploads.hand_over,
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
        rate_limiter=shared.rate_limiter if shared else RateLimiter(settings.rate_per_min),
        replicas=shared.link if shared else None,
        adapters=adapters,
    )
    if shared:
        shared.link.start(service.forget_browser_here)
    running = page.RunningRequests()
    gpu_queue = page.GpuQueue(service, settings)
    demo = page.build_demo(service, settings, BrowserKeys(secret), running, gpu_queue, GPU_SLOTS)
    held_uploads.expire_editor_blobs(demo.blocks.values())
    demo.queue(**queue_options(settings))
    gpu_queue.install(demo)
    housekeeping = Housekeeping(
        cache, usage_log, temp_dir, getattr(engine, "prompt_embeddings", None), held_uploads
    )
    housekeeping.start()
    mcp = McpEndpoint(service, settings, gpu_queue, GPU_SLOTS) if settings.mcp else None
    return Space(
        demo,
        service,
        housekeeping,
        running,
        page.EventCancels(running, demo),
        mcp,
        upload_budget,
        held_uploads,
        GradioState(demo),
        shared,
    )


def queue_options(settings: Settings) -> dict[str, object]:
    """Gradio's queue as the Space sets it (bench/bare_app.py copies it).

    api_open=False: the HTTP API cannot skip the queue. ZIMAGE_QUEUE_MAX requests may wait (the
    ones running are not counted), whichever door they came by (zimage/page/gpu_queue.py).
    """
    return {
        "api_open": False,
        "default_concurrency_limit": 1,
        "max_size": settings.queue_max,
    }


def shared_database(settings: Settings, secret: str) -> SharedDatabase | None:
    """The PostgreSQL database replicas share, when ZIMAGE_USAGE_DB names one (else None: the
    SQLite file of one machine)."""
    if not settings.shared_usage_db:
        return None
    from zimage.replicas.database import SharedDatabase

    return SharedDatabase.open(settings, secret)


def launch(space: Space, settings: Settings, **overrides: object) -> None:
    """Serve with every Gradio default that would break the privacy policy switched off."""
    from zimage import page

    # uvicorn rewrites the peer address from X-Forwarded-For when the peer is loopback (its
    # ProxyHeadersMiddleware, FORWARDED_ALLOW_IPS): a local client could pick its address.
    # Trusting no one there leaves the real peer; zimage/guards/client_address.py alone reads the
    # header, for ZIMAGE_TRUSTED_PROXY_HOPS hops.
    os.environ["FORWARDED_ALLOW_IPS"] = ""
    options: dict[str, object] = {
        "server_name": settings.server_name,
        "server_port": settings.server_port,
        "theme": page.page_theme(),
        "css": page.PAGE_CSS,
        "i18n": page.page_translations(settings, space.service.engine_facts),
        "max_file_size": f"{settings.max_upload_mb}mb",
        "run_history": False,
        "enable_monitoring": False,
        "allowed_paths": [],
        # Gradio serves files from its temp folder and the static files only, and takes a
        # handler's files from there or the working folder, each path checked after following
        # its links: no system folder needs an entry, and each entry costs every file served or
        # returned two path resolutions. The data folder and the usage log are named all the same.
        "blocked_paths": [settings.data_dir, *sqlite_file(settings)],
        "ssr_mode": False,
        "mcp_server": False,
        "pwa": False,
        "footer_links": ["api"],
        # Only our gr.Error texts reach clients; Gradio's own exception texts (paths, reprs)
        # stay in the server log. PublicErrors (below) makes the blanks readable.
        "show_error": False,
        "head": page.PAGE_HEAD,
        # Gradio keeps every session (each script call is one) until this many exist.
        "state_session_capacity": settings.session_capacity,
        "app_kwargs": space.app_kwargs(settings),
        # Once serving, launch asks HEAD / of itself, and a single 3-s timeout made it raise:
        # on a busy machine the app exited at start. This skips only that check; launch has
        # already checked that the server answers.
        "_frontend": False,
    }
    options.update(overrides)
    space.demo.launch(**options)


def sqlite_file(settings: Settings) -> list[str]:
    """The usage log's file, when it is one (it may lie outside ZIMAGE_DATA_DIR)."""
    return [] if settings.shared_usage_db else [settings.usage_db]


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
    # Before the settings are read: checking GRADIO_TEMP_DIR makes its missing folders.
    os.umask(0o077)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"Invalid setting: {error}", file=sys.stderr)
        return 2
    logger.info("settings: %s", settings.describe())
    prepare_zero_gpu()
    try:
        space = build(settings)
    except SettingsError as error:
        print(f"Invalid setting: {error}", file=sys.stderr)
        return 2
    except KeyFileError as error:
        print(f"Cannot start: {error} (or set ZIMAGE_BROWSER_SECRET).", file=sys.stderr)
        return 2
    serve_until_stopped(space, settings)


def serve_until_stopped(space: Space, settings: Settings) -> NoReturn:
    """Serve until SIGTERM (a Space stopping, `docker stop`) or Ctrl-C, then stop cleanly and
    exit 0."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    launch(space, settings, prevent_thread_lock=True)
    stop.wait()
    space.shut_down(settings.shutdown_grace_s)
    leave_now()


def leave_now() -> NoReturn:
    """Exit 0 at once, after a shutdown: every output and temp file is deleted, the usage log
    and the database are closed. Left out: a GPU step still running after the grace period
    (it cannot be interrupted), and the interpreter's own teardown of torch, gradio and the
    rest, which took 11-19 s on a loaded 2-core machine (SIGTERM to exit: 18-34 s against a
    10 s grace) and frees nothing the system would not."""
    from zimage.privacy.temp_folder import release_all

    release_all()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def __getattr__(name: str) -> gr.Blocks:
    # `demo` for tools that import it (e.g. `gradio app.py`), built only when asked for.
    if name == "demo":
        return build(Settings.from_env()).demo
    raise AttributeError(name)


if __name__ == "__main__":
    sys.exit(main())
