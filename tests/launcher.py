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
from typing import Any, Literal

import httpx

ROOT = Path(__file__).resolve().parent.parent
# An operator's usual umask, whatever the test process's became (the app built in-process sets
# 077): what the app creates must be owner-only because of the app, not of its parent.
OPERATOR_UMASK = 0o022
# A cold start (torch, diffusers and gradio imports, the preview pipeline built) takes 10-60 s
# on a loaded 2-core machine, minutes where other work crowds it; the bound only turns a hang
# into a failure.
START_TIMEOUT_S = 600.0
STOP_TIMEOUT_S = 60.0
# The bound on waiting for what the app does on its own (a sweep, a deletion, a reconnection),
# for the same reason: tests assert what happens and in which order, never how fast.
WAIT_S = 60.0


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


# Settings as environment variables; a value of None removes the variable.
EnvironmentSettings = Mapping[str, str | None]


def app_environment(folder: Path, settings: EnvironmentSettings | None = None) -> dict[str, str]:
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

    name: str
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

    def temp_files(self) -> list[Path]:
        """Every file in the app's temp folder (outputs, uploads, downloads)."""
        return [path for path in self.temp_dir.rglob("*") if path.is_file()]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_serving(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while not serving(self.url):
            assert self.process.poll() is None, f"{self.name} exited:\n{self.output()[-4000:]}"
            assert time.monotonic() < deadline, f"{self.name} not serving:\n{self.output()[-4000:]}"
            time.sleep(0.25)

    def client(self, downloads: Path | Literal[False] | None = None, **options: Any) -> Any:
        """A gradio_client Client; files it gets go to `downloads` (by default `folder/downloads`;
        False: not downloaded)."""
        from gradio_client import Client

        if downloads is None:
            downloads = self.folder / "downloads"
        return Client(
            self.url,
            verbose=False,
            analytics_enabled=False,
            download_files=False if downloads is False else str(downloads),
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
    settings: EnvironmentSettings | None = None,
    *,
    wait: bool = True,
    command: Sequence[str] | None = None,
    cwd: Path = ROOT,
    name: str = "app",
) -> AppProcess:
    """Start `python app.py` (or `command`, which ends with it) in `cwd` on a free port; its
    output goes to `folder/<name>.log`. `wait`: return once it serves."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = app_environment(folder, {"GRADIO_SERVER_PORT": str(port), **(settings or {})})
    log = folder / f"{name}.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            list(command or [sys.executable, "app.py"]),
            cwd=cwd,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            umask=OPERATOR_UMASK,
        )
    app = AppProcess(name, f"http://127.0.0.1:{port}", process, log, folder, env)
    if wait:
        try:
            app.wait_serving()
        except BaseException:
            app.stop(signal.SIGKILL)
            raise
    return app


@contextmanager
def launched_app(
    folder: Path, settings: EnvironmentSettings | None = None, **options: Any
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


def refused_start(folder: Path, settings: EnvironmentSettings, timeout: float = 120) -> list[str]:
    """Run `python app.py` with settings it must refuse: it exits 2 without a traceback.
    Returns the lines it wrote to stderr."""
    completed = subprocess.run(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env=app_environment(folder, settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        umask=OPERATOR_UMASK,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 2, output
    assert "Traceback" not in output, output
    return completed.stderr.strip().splitlines()
