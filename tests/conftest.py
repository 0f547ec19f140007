"""Shared fixtures: the preview engine and the app served on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Before gradio is imported anywhere: a private temp folder and no analytics.
os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="zimage-test-gradio-"))
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402

from zimage.engine import Engine, create_preview_engine  # noqa: E402
from zimage.settings import Settings  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def preview_engine() -> Engine:
    return create_preview_engine()


class RunningApp:
    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings


def serve(environ: dict[str, str]) -> Iterator[RunningApp]:
    """Build and launch the app as `python app.py` would, on a free local port."""
    import app

    settings = Settings.from_env({"ZIMAGE_ENGINE": "preview", **environ})
    demo = app.build(settings)
    app.launch(demo, settings, server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield RunningApp(demo.local_url.rstrip("/"), settings)
    finally:
        demo.close()


@pytest.fixture(scope="session")
def running_app() -> Iterator[RunningApp]:
    yield from serve({})


@pytest.fixture(scope="session")
def client(running_app: RunningApp):
    from gradio_client import Client

    return Client(
        running_app.url, verbose=False, analytics_enabled=False, download_files=tempfile.mkdtemp()
    )


@pytest.fixture
def gradio_temp_dir() -> Path:
    return Path(os.environ["GRADIO_TEMP_DIR"])
