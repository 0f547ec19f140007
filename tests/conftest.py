"""Shared fixtures: the preview engine and the app served on 127.0.0.1."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Before gradio is imported anywhere: a private temp folder and no analytics.
TEST_FOLDER = tempfile.mkdtemp(prefix="zimage-tests-")
atexit.register(shutil.rmtree, TEST_FOLDER, ignore_errors=True)
os.environ.setdefault("GRADIO_TEMP_DIR", os.path.join(TEST_FOLDER, "gradio"))
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402

from tests.launcher import free_port  # noqa: E402
from zimage.engine.engine import Engine  # noqa: E402
from zimage.engine.loading import create_preview_engine  # noqa: E402
from zimage.settings import Settings  # noqa: E402


@pytest.fixture(scope="session")
def preview_engine() -> Engine:
    return create_preview_engine()


def make_service(engine: Engine, limits: Any = None, usage_log: Any = None) -> Any:
    """A service with a roomy in-memory cache, as app.build wires it."""
    from zimage.privacy.output_cache import OutputCache
    from zimage.service.images import ImageLimits
    from zimage.service.service import ZImageService

    cache = OutputCache(
        ttl_s=600,
        max_bytes=64 * 1024 * 1024,
        max_entries_per_owner=32,
        files_dir=os.environ["GRADIO_TEMP_DIR"],
    )
    return ZImageService(engine, limits or ImageLimits(), cache, usage_log)


@dataclass
class RunningApp:
    url: str
    settings: Settings
    space: Any

    @property
    def usage_db(self) -> Path:
        """The usage database, with every row recorded so far stored (rows are written by a
        background thread, a few milliseconds after each request)."""
        usage_log = self.space.service.usage_log
        if usage_log is not None:
            usage_log.flush()
        return Path(self.settings.data_dir) / "usage.sqlite3"

    @contextmanager
    def counting_steps(self) -> Iterator[list[int]]:
        """The denoising steps the engine runs in the block, one entry each (a step is one
        transformer forward): what ran, told by order rather than by time."""
        steps: list[int] = []
        transformer = self.space.service.engine.pipeline.transformer
        hook = transformer.register_forward_hook(lambda *_: steps.append(len(steps) + 1))
        try:
            yield steps
        finally:
            hook.remove()


def serve(environ: dict[str, str]) -> Iterator[RunningApp]:
    """Build and launch the app as `python app.py` would, on a free local port."""
    import app

    settings = Settings.from_env(
        {
            "ZIMAGE_ENGINE": "preview",
            "ZIMAGE_DATA_DIR": tempfile.mkdtemp(prefix="data-", dir=TEST_FOLDER),
            "GRADIO_TEMP_DIR": os.environ["GRADIO_TEMP_DIR"],
            **environ,
        }
    )
    space = app.build(settings)
    app.launch(space, settings, server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield RunningApp(space.demo.local_url.rstrip("/"), settings, space)
    finally:
        space.close()


@pytest.fixture(scope="session")
def running_app() -> Iterator[RunningApp]:
    yield from serve({})


@pytest.fixture(scope="session")
def client(running_app: RunningApp):
    from gradio_client import Client

    return Client(
        running_app.url,
        verbose=False,
        analytics_enabled=False,
        download_files=tempfile.mkdtemp(prefix="downloads-", dir=TEST_FOLDER),
    )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A real PostgreSQL server (tests/postgres_server.py), shared by the session."""
    from tests.postgres_server import PostgresServer, require_postgres_bin

    server = PostgresServer(require_postgres_bin())
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def gradio_temp_dir() -> Path:
    return Path(os.environ["GRADIO_TEMP_DIR"])
