"""`python app.py` as README's launch command runs it: serves the preview within a minute,
deletes outputs from disk after their lifetime, and deletes everything on SIGTERM."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
TTL_S = 3


def wait_until(condition, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.25)


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


def serving(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_app_serves_expires_outputs_and_cleans_up_on_sigterm(tmp_path) -> None:
    port = free_port()
    temp_dir = tmp_path / "gradio"
    env = {
        **os.environ,
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_TEMP_DIR": str(temp_dir),
        "ZIMAGE_DATA_DIR": str(tmp_path / "data"),
        "ZIMAGE_DEVICE": "cpu",
        "ZIMAGE_OUTPUT_TTL_S": str(TTL_S),
    }
    env.pop("SPACE_ID", None)
    process = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: process.poll() is None and serving(url), 60, "not serving within 60 s")
        client = Client(url, verbose=False, analytics_enabled=False, download_files=str(tmp_path))

        def generate(seed: int) -> bytes:
            gallery, _ = client.predict(
                prompt="a kite",
                resolution="256x256",
                seed=seed,
                randomize_seed=False,
                steps=2,
                shift=3.0,
                api_name="/text_to_image",
            )
            return Path(gallery[0]["image"]).read_bytes()

        png = generate(5)
        assert png.startswith(b"\x89PNG")
        served = [path for path in files_under(temp_dir) if path.read_bytes() == png]
        assert len(served) == 1, "the output should be one file in the temp folder"
        file_url = f"{url}/gradio_api/file={served[0]}"
        assert httpx.get(file_url).content == png

        wait_until(lambda: not served[0].exists(), TTL_S + 8, "output file outlived its TTL")
        assert httpx.get(file_url).status_code in (403, 404)

        generate(6)
        assert files_under(temp_dir)
        client.close()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    output = process.stdout.read().decode()
    assert "Preview engine" in output
    assert files_under(temp_dir) == [], "SIGTERM must delete every temp file"


def test_sigterm_during_a_long_generation_answers_it_and_exits_cleanly(tmp_path) -> None:
    port = free_port()
    temp_dir = tmp_path / "gradio"
    env = {
        **os.environ,
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_TEMP_DIR": str(temp_dir),
        "ZIMAGE_DATA_DIR": str(tmp_path / "data"),
        "ZIMAGE_ENGINE": "preview",
        "ZIMAGE_SHUTDOWN_GRACE_S": "10",
    }
    env.pop("SPACE_ID", None)
    process = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: process.poll() is None and serving(url), 60, "not serving within 60 s")
        client = Client(url, verbose=False, analytics_enabled=False, download_files=str(tmp_path))
        job = client.submit(
            prompt="a long one",
            resolution="2048x1952",
            seed=1,
            randomize_seed=False,
            steps=50,
            api_name="/text_to_image",
        )
        wait_until(lambda: bool(job.status().progress_data), 120, "the job never started")
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        exit_code = process.wait(timeout=40)
        stopped_in = time.monotonic() - signalled
        with pytest.raises(Exception, match="restarting"):
            job.result(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    output = process.stdout.read().decode()
    assert exit_code == 0, output
    assert stopped_in < 10 + 10, output  # the grace, then the shutdown on a loaded machine
    assert "terminate called" not in output and "Traceback" not in output, output
    assert files_under(temp_dir) == [], "shutdown must delete every temp file"
