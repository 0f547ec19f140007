"""Start-up details shared by the benchmarks that run `python app.py` on 127.0.0.1."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
from pathlib import Path

import httpx

STOP_TIMEOUT_S = 30


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


def serving(url: str) -> bool:
    """Whether the app answers GET url with 200."""
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def stop_app(process: subprocess.Popen) -> int:
    """SIGTERM, then kill if it has not ended within STOP_TIMEOUT_S; the exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]
