"""A second instance on the same temp folder leaves a live one's files alone (issue 25.6): two
real `python app.py` on one GRADIO_TEMP_DIR. The first one's folder is deleted from outside and
made again by its next output; the second, starting then, used to take it for a dead process's
folder and delete it, so the first one's output URLs answered 403.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

import httpx

from tests.gpu_gate import join_values
from tests.gradio_http import run
from tests.launcher import launched_app, wait_until

WAIT_S = 120.0


def output_url(url: str) -> str:
    gallery, _ = run(url, "text_to_image", join_values(1))
    return gallery[0]["image"]["url"]


def locked_by_another_process(folder: Path) -> bool:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False


def test_a_folder_deleted_from_outside_is_held_again_and_a_second_instance_leaves_it(
    tmp_path: Path,
) -> None:
    base = tmp_path / "shared-temp"
    with launched_app(tmp_path / "first", {"GRADIO_TEMP_DIR": str(base)}) as first:
        assert httpx.get(output_url(first.url), timeout=WAIT_S).status_code == 200
        (folder,) = base.glob("zimage-*")
        shutil.rmtree(folder)  # a temp cleaner, or an operator
        url = output_url(first.url)  # written into the folder made again
        assert httpx.get(url, timeout=WAIT_S).status_code == 200
        wait_until(
            lambda: folder.is_dir() and locked_by_another_process(folder),
            WAIT_S,
            "the first instance never held its folder again",
        )
        with launched_app(tmp_path / "second", {"GRADIO_TEMP_DIR": str(base)}) as second:
            assert len(list(base.glob("zimage-*"))) == 2
            assert httpx.get(url, timeout=WAIT_S).status_code == 200
            assert httpx.get(output_url(second.url), timeout=WAIT_S).status_code == 200
        assert httpx.get(url, timeout=WAIT_S).status_code == 200
    assert "deleted from outside: made again and held" in first.output()
