"""Each process its own temp folder (issue 13.4): two real `python app.py` and a kill -9.

Before, every instance of one user shared one folder: A's sweeper (short lifetime) and A's
shutdown deleted B's outputs and uploads, and after kill -9 the dead process's files were
served by the next one until their lifetime ran out.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from gradio_client import Client, handle_file

from bench.local_app import free_port, preview_app_env, serving, stop_app
from zimage.privacy.temp_folder import process_temp_dir, release

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "house.png"
START_TIMEOUT_S = 120  # this machine is shared: a start takes 10-40 s


def claim_in_child(base: Path, then: str) -> subprocess.Popen:
    """A process that claims its folder in `base`, prints it, then runs `then`."""
    code = (
        "import sys, time, os\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from pathlib import Path\n"
        "from zimage.privacy.temp_folder import process_temp_dir\n"
        f"folder = process_temp_dir(Path({str(base)!r}))\n"
        "(folder / 'upload.png').write_bytes(b'x')\n"
        "print(folder, flush=True)\n"
        f"{then}\n"
    )
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def test_a_process_claims_one_folder_and_removes_only_dead_ones(tmp_path) -> None:
    base = tmp_path / "shared"
    live = claim_in_child(base, "time.sleep(60)")
    # One after the other: a claim removes the folders of dead processes, the dead one's too.
    live_folder = Path(live.stdout.readline().strip())
    dead = claim_in_child(base, "os.kill(os.getpid(), 9)")
    dead_folder = Path(dead.stdout.readline().strip())
    dead.wait(30)
    assert dead.returncode == -signal.SIGKILL
    try:
        assert live_folder.is_dir() and dead_folder.is_dir()
        mine = process_temp_dir(base)
        assert mine.parent == base.resolve() and mine.stat().st_mode & 0o777 == 0o700
        assert not dead_folder.exists(), "a dead process's folder is removed at start"
        assert (live_folder / "upload.png").exists(), "a live process's folder is never touched"
        # Asked again, directly or through the folder itself: the same folder.
        assert process_temp_dir(base) == mine and process_temp_dir(mine) == mine
        release(mine)
        assert not mine.exists()
    finally:
        live.kill()
        live.wait()


def start_app(temp_base: Path, folder: Path, ttl_s: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **preview_app_env(folder, port),
        "GRADIO_TEMP_DIR": str(temp_base),
        "ZIMAGE_OUTPUT_TTL_S": str(ttl_s),
    }
    process = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return process, f"http://127.0.0.1:{port}"


def wait_serving(process: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not serving(url):
        assert process.poll() is None, "the app exited"
        assert time.monotonic() < deadline, "not serving in time"
        time.sleep(0.5)


def own_folder(temp_base: Path, process: subprocess.Popen) -> Path:
    (folder,) = temp_base.glob(f"zimage-{process.pid}-*")
    return folder


def test_two_instances_keep_their_files_apart_and_a_killed_ones_are_not_served(
    tmp_path,
) -> None:
    temp_base = tmp_path / "gradio"
    a, a_url = start_app(temp_base, tmp_path / "a", ttl_s=2)
    b, b_url = start_app(temp_base, tmp_path / "b", ttl_s=600)
    c = None
    try:
        wait_serving(a, a_url)
        wait_serving(b, b_url)
        b_folder = own_folder(temp_base, b)
        assert own_folder(temp_base, a) != b_folder

        client = Client(b_url, verbose=False, download_files=str(tmp_path / "downloads"))
        client.predict(
            image=handle_file(str(SAMPLE)),
            instruction="snow",
            mask=None,
            strength=0.6,
            seed=1,
            randomize_seed=False,
            steps=1,
            api_name="/edit",
        )
        client.close()
        b_files = [p for p in b_folder.rglob("*") if p.is_file()]
        assert len(b_files) >= 2, b_files  # the upload and the output
        output = next(p for p in b_files if p.name == "zimage.png")

        time.sleep(2 + 6)  # A's lifetime and a few of A's sweeps
        assert stop_app(a) == 0
        assert all(p.exists() for p in b_files), "A's sweeper or shutdown deleted B's files"
        assert httpx.get(f"{b_url}/gradio_api/file={output}").status_code == 200

        b.send_signal(signal.SIGKILL)
        b.wait(30)
        assert b_folder.exists()  # nothing ran at B's death
        c, c_url = start_app(temp_base, tmp_path / "c", ttl_s=600)
        wait_serving(c, c_url)
        assert not b_folder.exists(), "the killed instance's files are removed at the next start"
        assert httpx.get(f"{c_url}/gradio_api/file={output}").status_code in (403, 404)
        c_folder = own_folder(temp_base, c)
        assert stop_app(c) == 0
        assert not c_folder.exists(), "each instance removes its own folder at exit"
    finally:
        for process in (a, b, c):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
