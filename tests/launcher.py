"""`python app.py` in a process of its own, as README's launch command runs it: the one way the
tests start the real app across a process boundary (its own port, temp folder and data folder;
settings as environment variables).

    with launched_app(tmp_path, {"ZIMAGE_OUTPUT_TTL_S": "3"}) as app:
        client = app.client(tmp_path / "downloads")
        ...
    assert "Preview engine" in app.output()
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
# A cold start on a loaded 2-core machine (torch, diffusers and gradio imports, the preview
# pipeline built) takes 10-60 s; the bound only turns a hang into a failure.
START_TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 60.0


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serving(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(condition: Any, timeout: float, message: str, poll_s: float = 0.25) -> None:
    """Wait for `condition()` to hold; fail with `message` once `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(poll_s)


def app_environment(folder: Path, settings: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of an app process: the preview engine, its own temp and data folders
    under `folder`, not on a Space; `settings` on top (a value of None removes a variable)."""
    env = {
        **os.environ,
        "GRADIO_TEMP_DIR": str(folder / "gradio"),
        "ZIMAGE_DATA_DIR": str(folder / "data"),
        "ZIMAGE_ENGINE": "preview",
    }
    env.pop("SPACE_ID", None)
    for name, value in (settings or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


@dataclass
class AppProcess:
    """One running `python app.py`; its output goes to `log`."""

    url: str
    process: subprocess.Popen
    log: Path
    folder: Path
    env: dict[str, str]

    @property
    def temp_dir(self) -> Path:
        return Path(self.env["GRADIO_TEMP_DIR"])

    @property
    def data_dir(self) -> Path:
        return Path(self.env["ZIMAGE_DATA_DIR"])

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_serving(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while not serving(self.url):
            assert self.process.poll() is None, f"app exited:\n{self.output()[-4000:]}"
            assert time.monotonic() < deadline, f"not serving:\n{self.output()[-4000:]}"
            time.sleep(0.25)

    def client(self, downloads: Path | None = None, **options: Any) -> Any:
        from gradio_client import Client

        return Client(
            self.url,
            verbose=False,
            analytics_enabled=False,
            download_files=str(downloads or self.folder / "downloads"),
            **options,
        )

    def stop(self, signum: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> int:
        """Signal the process and wait for its exit code (killed if it does not exit)."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def start_app(
    folder: Path,
    settings: Mapping[str, str] | None = None,
    *,
    wait: bool = True,
    command: Sequence[str] | None = None,
    name: str = "app",
) -> AppProcess:
    """Start `python app.py` (or `command`, which ends with it) on a free port."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = app_environment(folder, {"GRADIO_SERVER_PORT": str(port), **(settings or {})})
    log = folder / f"{name}.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            list(command or [sys.executable, "app.py"]),
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    app = AppProcess(f"http://127.0.0.1:{port}", process, log, folder, env)
    if wait:
        try:
            app.wait_serving()
        except BaseException:
            app.stop(signal.SIGKILL)
            raise
    return app


@contextmanager
def launched_app(
    folder: Path, settings: Mapping[str, str] | None = None, **options: Any
) -> Iterator[AppProcess]:
    """`start_app`, stopped with SIGTERM (then killed) when the block ends."""
    app = start_app(folder, settings, **options)
    try:
        yield app
    finally:
        if app.process.poll() is None:
            try:
                app.stop()
            except subprocess.TimeoutExpired:
                pass


def refused_start(folder: Path, settings: Mapping[str, str], timeout: float = 120) -> str:
    """Run `python app.py` with settings it must refuse; its output (it must exit 2)."""
    env = app_environment(folder, settings)
    completed = subprocess.run(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert completed.returncode == 2, completed.stdout + completed.stderr
    return completed.stdout + completed.stderr
