"""`python app.py` and its files: folders it creates are 0700 and files 0600 (issue 12, item 6),
an empty browser-state key is replaced, and a key that can be neither read nor made stops
start-up with one line and exit status 2 (issue 13, item 5)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx
from gradio_client import Client, handle_file

from tests.app.test_process import serving, wait_until
from tests.conftest import free_port
from tests.gradio_http import run
from zimage.privacy.policy import BrowserKeys

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "house.png"


def app_environment(data_dir: Path, temp_dir: Path, port: int) -> dict[str, str]:
    env = {
        **os.environ,
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_TEMP_DIR": str(temp_dir),
        "ZIMAGE_DATA_DIR": str(data_dir),
        "ZIMAGE_ENGINE": "preview",
        "ZIMAGE_DEVICE": "cpu",
    }
    for name in ("SPACE_ID", "ZIMAGE_BROWSER_SECRET"):
        env.pop(name, None)
    return env


class AppProcess:
    def __init__(self, env: dict[str, str]) -> None:
        self.url = f"http://127.0.0.1:{env['GRADIO_SERVER_PORT']}"
        self.process = subprocess.Popen(
            [sys.executable, "app.py"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def __enter__(self) -> AppProcess:
        alive = lambda: self.process.poll() is None and serving(self.url)  # noqa: E731
        try:
            wait_until(alive, 90, "not serving within 90 s")
        except AssertionError:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def modes_under(root: Path) -> dict[str, str]:
    """Every folder and file below ``root`` (itself included) with its permission bits."""
    found = {}
    for path in [root, *root.rglob("*")]:
        mode = os.lstat(path).st_mode
        found[str(path.relative_to(root.parent))] = f"{'d' if stat.S_ISDIR(mode) else 'f'}" + oct(
            stat.S_IMODE(mode)
        )
    return found


def test_folders_and_files_the_space_creates_are_owner_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "operator" / "data" / "zimage"
    temp_dir = tmp_path / "operator" / "tmp" / "gradio"
    env = app_environment(data_dir, temp_dir, free_port())
    with AppProcess(env) as app:
        client = Client(app.url, verbose=False, analytics_enabled=False, download_files=False)
        client.predict(
            image=handle_file(str(SAMPLE)),  # an upload
            instruction="snow",
            mask=None,
            strength=0.6,
            seed=1,
            randomize_seed=False,
            steps=2,
            api_name="/edit",
        )
        client.close()
        browser = run(app.url, "on_page_load", [None])[0]
        run(
            app.url,
            "generate_in_browser",
            ["a kite", "256x256", 1, False, 2, 3.0, 1, False, browser, False],
        )
        run(app.url, "show_my_data", [browser])  # writes the JSON download
        modes = modes_under(tmp_path / "operator")
    assert {path for path in modes if path.endswith(("usage.sqlite3", "browser-state.key"))}
    assert len([path for path, mode in modes.items() if mode.startswith("f")]) >= 5, modes
    assert any(path.endswith("my-usage-data.json") for path in modes), modes
    wrong = {
        path: mode
        for path, mode in modes.items()
        if mode != ("d0o700" if mode.startswith("d") else "f0o600")
    }
    assert wrong == {}


def test_an_empty_key_file_is_replaced_and_then_kept(tmp_path: Path) -> None:
    data_dir, temp_dir = tmp_path / "data", tmp_path / "gradio"
    data_dir.mkdir()
    key_file = data_dir / "browser-state.key"
    key_file.write_bytes(b"")  # what a start on a full disk left behind
    env = app_environment(data_dir, temp_dir, free_port())
    with AppProcess(env) as app:
        key = key_file.read_text()
        assert len(key) >= 43
        assert oct(key_file.stat().st_mode & 0o777) == oct(0o600)
        config = httpx.get(f"{app.url}/config").text
        assert BrowserKeys(key).browser_state_secret in config
    with AppProcess(env):
        assert key_file.read_text() == key, "a restart must keep the key"


def start_refused(env: dict[str, str]) -> list[str]:
    completed = subprocess.run(
        [sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 2, completed.stderr
    assert "Traceback" not in completed.stderr
    return [line for line in completed.stderr.splitlines() if line.startswith("Cannot start")]


def test_a_key_that_can_be_neither_read_nor_made_stops_start_with_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "browser-state.key").mkdir(parents=True)  # unreadable as a key
    env = app_environment(data_dir, tmp_path / "gradio", free_port())
    assert start_refused(env) == [
        f"Cannot start: cannot read the browser-state key {data_dir / 'browser-state.key'}: "
        "Is a directory (or set ZIMAGE_BROWSER_SECRET)."
    ]
    unwritable = Path("/proc/zimage-space")  # cannot be made, not even by root
    env = app_environment(unwritable, tmp_path / "gradio", free_port())
    (line,) = start_refused(env)
    assert line.startswith(
        f"Cannot start: cannot store the browser-state key {unwritable / 'browser-state.key'}: "
    )
