"""`python app.py`, as README's launch command runs it, serves the preview within a minute."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from gradio_client import Client

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


def test_app_serves_generate_and_stops_on_sigterm(tmp_path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_TEMP_DIR": str(tmp_path / "gradio"),
        "ZIMAGE_DEVICE": "cpu",
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
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read().decode()
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the app did not serve within 60 s"
            time.sleep(0.5)
        client = Client(url, verbose=False, analytics_enabled=False, download_files=str(tmp_path))
        image_path, seed_used = client.predict(
            prompt="a kite",
            resolution="256x256",
            seed=5,
            randomize_seed=False,
            steps=2,
            shift=3.0,
            api_name="/generate",
        )
        assert Path(image_path).read_bytes().startswith(b"\x89PNG")
        assert seed_used == 5
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
