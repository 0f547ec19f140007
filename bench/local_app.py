"""Start-up details shared by the benchmarks that run `python app.py` on 127.0.0.1."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def preview_app_env(folder: Path, port: int) -> dict[str, str]:
    """The environment for `python app.py` on the preview engine, local only, files in folder."""
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_TEMP_DIR": str(folder / "gradio"),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "ZIMAGE_ENGINE": "preview",
        "ZIMAGE_DATA_DIR": str(folder / "data"),
    }
    env.pop("SPACE_ID", None)
    return env
