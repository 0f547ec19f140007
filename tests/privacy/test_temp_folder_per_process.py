"""Each process its own temp folder (issue 13.4): two real `python app.py` and a kill -9.

Before, every instance of one user shared one folder: A's sweeper (short lifetime) and A's
shutdown deleted B's outputs and uploads, and after kill -9 the dead process's files were
served by the next one until their lifetime ran out.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
from gradio_client import handle_file

from tests.gradio_http import run
from tests.launcher import ROOT, WAIT_S, AppProcess, start_app, wait_until
from zimage.privacy.temp_folder import process_temp_dir, release

SAMPLE = ROOT / "examples" / "house.png"


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


def start_instance(temp_base: Path, folder: Path, ttl_s: int) -> AppProcess:
    """An instance of the same user: its own data folder, the same temp folder as the others."""
    settings = {"GRADIO_TEMP_DIR": str(temp_base), "ZIMAGE_OUTPUT_TTL_S": str(ttl_s)}
    return start_app(folder, settings, wait=False, name=folder.name)


def own_folder(temp_base: Path, app: AppProcess) -> Path:
    (folder,) = temp_base.glob(f"zimage-{app.process.pid}-*")
    return folder


def edit_with_an_upload(app: AppProcess) -> None:
    client = app.client()
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


def output_path(app: AppProcess) -> Path:
    """One /text_to_image; where the app keeps its output."""
    gallery, _ = run(app.url, "text_to_image", ["a kite", "256x256", 1, False, 1, 3.0, 1, False])
    return Path(gallery[0]["image"]["path"])


def test_two_instances_keep_their_files_apart_and_a_killed_ones_are_not_served(
    tmp_path,
) -> None:
    temp_base = tmp_path / "gradio"
    a = start_instance(temp_base, tmp_path / "a", ttl_s=2)
    b = start_instance(temp_base, tmp_path / "b", ttl_s=600)
    c = None
    try:
        a.wait_serving()
        b.wait_serving()
        b_folder = own_folder(temp_base, b)
        assert own_folder(temp_base, a) != b_folder

        edit_with_an_upload(b)
        b_files = [p for p in b_folder.rglob("*") if p.is_file()]
        assert len(b_files) >= 2, b_files  # the upload and the output
        output = next(p for p in b_files if p.name == "zimage.png")
        # Once A's sweeper has deleted A's own output, newer than B's files, it has swept past
        # its 2 s lifetime with B's files in reach.
        a_output = output_path(a)
        wait_until(lambda: not a_output.exists(), WAIT_S, "A never deleted its own output")
        assert a.stop() == 0
        assert all(p.exists() for p in b_files), "A's sweeper or shutdown deleted B's files"
        assert httpx.get(f"{b.url}/gradio_api/file={output}").status_code == 200

        b.stop(signal.SIGKILL)
        assert b_folder.exists()  # nothing ran at B's death
        c = start_instance(temp_base, tmp_path / "c", ttl_s=600)
        c.wait_serving()
        assert not b_folder.exists(), "the killed instance's files are removed at the next start"
        assert httpx.get(f"{c.url}/gradio_api/file={output}").status_code in (403, 404)
        c_folder = own_folder(temp_base, c)
        assert c.stop() == 0
        assert not c_folder.exists(), "each instance removes its own folder at exit"
    finally:
        for app in (a, b, c):
            if app is not None and app.process.poll() is None:
                app.stop(signal.SIGKILL)
