"""Issue 13 item 7: a full temp folder gives a readable answer, and the Space recovers.

`python app.py` runs with its temp folder on a private 4 MiB tmpfs, mounted in a user and mount
namespace of its own (`unshare -Urm`, no root needed where user namespaces are allowed): the
disk really fills, as /dev/shm does on a busy Space. The test reads the folder through
/proc/<pid>/root, since the mount exists only in the app's namespace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.launcher import WAIT_S, AppProcess, launched_app, wait_until

MB = 1024 * 1024
UNUSED_S = 5
OUT_OF_SPACE = "out of temporary space"


def private_tmpfs_possible() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt || exit 1"],
        capture_output=True,
    )
    return probe.returncode == 0


pytestmark = [
    pytest.mark.skipif(
        not private_tmpfs_possible(), reason="needs unprivileged user and mount namespaces"
    ),
    pytest.mark.xdist_group("full_temp_folder"),  # its fixtures built once, on one worker
]


@dataclass
class FullableApp:
    """`python app.py` with its temp folder on a 4 MiB tmpfs."""

    app: AppProcess

    @property
    def url(self) -> str:
        return self.app.url

    @property
    def folder_as_the_app_sees_it(self) -> Path:
        return Path(f"/proc/{self.app.process.pid}/root") / self.app.temp_dir.relative_to("/")

    def partial_files(self) -> list[str]:
        """Files at the top of the app's own folder, where Gradio streams an upload."""
        (own,) = self.folder_as_the_app_sees_it.glob("zimage-*")
        return [p.name for p in own.iterdir() if p.is_file()]

    def bytes_used(self) -> int:
        """What the app's tmpfs has in use, open-but-deleted files included."""
        stats = os.statvfs(self.folder_as_the_app_sees_it)
        return (stats.f_blocks - stats.f_bfree) * stats.f_frsize

    def files(self) -> list[Path]:
        return [p for p in self.folder_as_the_app_sees_it.rglob("*") if p.is_file()]


@pytest.fixture
def empty_app(app_on_a_small_tmpfs: FullableApp) -> FullableApp:
    """The app once the previous test's files have expired."""
    app = app_on_a_small_tmpfs
    wait_until(lambda: app.files() == [], WAIT_S, "files of the previous test remain")
    return app


@pytest.fixture(scope="module")
def app_on_a_small_tmpfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FullableApp]:
    folder = tmp_path_factory.mktemp("small-tmpfs")
    temp_dir = folder / "gradio"
    temp_dir.mkdir()
    settings = {
        "GRADIO_TEMP_DIR": str(temp_dir),
        "ZIMAGE_MAX_UPLOAD_MB": "4",
        "ZIMAGE_UPLOAD_VISITOR_MB": "1000",
        "ZIMAGE_CACHE_MAX_MB": "1000",
        "ZIMAGE_UPLOAD_TOTAL_MB": "1000",  # far above the disk: the disk fills first
        "ZIMAGE_UPLOAD_UNUSED_S": str(UNUSED_S),
    }
    mount_then_run = 'mount -t tmpfs -o size=4m,mode=0700 tmpfs "$0" && exec "$@"'
    command = [
        "unshare",
        "-Urm",
        "sh",
        "-c",
        mount_then_run,
        str(temp_dir),
        sys.executable,
        "app.py",
    ]
    with launched_app(folder, settings, command=command) as app:
        yield FullableApp(app)
    assert "Traceback" not in app.output(), app.output()[-3000:]


def upload(app: FullableApp, size: int) -> httpx.Response:
    return httpx.post(
        f"{app.url}/gradio_api/upload",
        files={"files": ("f.bin", os.urandom(size))},
        timeout=WAIT_S,
    )


def generate(app: FullableApp) -> str:
    """One /text_to_image over the plain HTTP API: "ok" or the error message."""
    data = ["a kite", "256x256", 1, False, 1, 3.0, 1, False]
    url = f"{app.url}/gradio_api/call/text_to_image"
    started = httpx.post(url, json={"data": data}, timeout=WAIT_S)
    assert started.status_code == 200, started.text
    stream = httpx.get(f"{url}/{started.json()['event_id']}", timeout=WAIT_S)
    kind, _, answer = stream.text.strip().rsplit("event: ", 1)[-1].partition("\n")
    return "ok" if kind == "complete" else answer


@contextmanager
def filled_leaving(app: FullableApp, free_bytes: int) -> Iterator[None]:
    """The tmpfs filled but for `free_bytes` by a file of the test's own, beside the app's folder
    (the Space deletes nothing there): full for as long as the block runs, however slow."""
    filler = app.folder_as_the_app_sees_it / "filler.bin"
    stats = os.statvfs(app.folder_as_the_app_sees_it)
    filler.write_bytes(bytes(stats.f_bavail * stats.f_frsize - free_bytes))
    try:
        yield
    finally:
        filler.unlink()


def test_upload_into_a_full_folder_says_so_and_recovers(empty_app: FullableApp) -> None:
    app = empty_app
    with filled_leaving(app, 2 * MB):
        assert upload(app, int(1.5 * MB)).status_code == 200  # nobody uses it
        before = app.bytes_used()
        refused = upload(app, int(2.5 * MB))  # the disk fills while Gradio writes it
        assert refused.status_code == 507  # was 500 "Internal Server Error"
        assert OUT_OF_SPACE in refused.json()["detail"]
        assert int(refused.headers["retry-after"]) == UNUSED_S
        assert app.partial_files() == [], "the half-written file must not stay"
        # Its space is free at once, although Gradio's abandoned parser still holds it open.
        assert app.bytes_used() < before + 256 * 1024
        # Once the Space deletes the unused first upload, there is room again.
        wait_until(lambda: upload(app, int(1.5 * MB)).status_code == 200, WAIT_S, "no recovery")


def test_an_output_that_cannot_be_written_says_so_and_recovers(empty_app: FullableApp) -> None:
    app = empty_app
    with filled_leaving(app, 64 * 1024):  # less than one 256x256 output
        answer = generate(app)
        assert OUT_OF_SPACE in answer, answer
        assert "Something went wrong" not in answer
    wait_until(lambda: generate(app) == "ok", WAIT_S, "never recovered")
