"""Only the Space's own files are ever deleted: a request that names a file Gradio serves
directly (the bundled examples) must not cost that file when its output expires, is evicted
or purged, or when the Space stops (issue 12, item 1)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from tests.gradio_http import completed, file_data, fn_index, join
from tests.launcher import ROOT, WAIT_S, launched_app, wait_until
from zimage.privacy.output_cache import OutputCache
from zimage.tools.edit import Edit

TTL_S = 3


def make_cache(files_dir: Path, per_owner: int = 10) -> OutputCache:
    return OutputCache(
        ttl_s=60, max_bytes=10**6, max_entries_per_owner=per_owner, files_dir=files_dir
    )


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    private, outside = tmp_path / "private", tmp_path / "examples"
    private.mkdir()
    outside.mkdir()
    (outside / "house.png").write_bytes(b"sample")
    return private, outside


@pytest.mark.parametrize("how", ["expire", "evict", "purge_owner", "purge_all", "attach_late"])
def test_cache_deletes_only_inside_its_private_folder(folders, how: str) -> None:
    private, outside = folders
    now = [0.0]
    cache = OutputCache(
        ttl_s=60, max_bytes=10**6, max_entries_per_owner=1, files_dir=private, clock=lambda: now[0]
    )
    own = private / "upload" / "in.png"
    own.parent.mkdir()
    own.write_bytes(b"upload")
    entry = cache.put("alice", b"png", 1, {})
    named = [outside / "house.png", private / ".." / "examples" / "house.png", own]
    if how == "attach_late":
        now[0] += 60
        cache.attach_files(entry.key, named)
    else:
        cache.attach_files(entry.key, named)
        if how == "expire":
            now[0] += 60
            assert cache.sweep_expired() == 1
        elif how == "evict":
            cache.put("alice", b"png", 2, {})
        elif how == "purge_owner":
            assert cache.purge_owner("alice") == 1
        else:
            assert cache.purge_all() == 1
    assert (outside / "house.png").read_bytes() == b"sample"
    assert not own.exists(), "the cache must still delete its own files"


def test_cache_never_deletes_through_a_symlink_out_of_its_folder(folders) -> None:
    private, outside = folders
    (private / "linked-folder").symlink_to(outside, target_is_directory=True)
    (private / "linked-file.png").symlink_to(outside / "house.png")
    cache = make_cache(private)
    entry = cache.put("alice", b"png", 1, {})
    cache.attach_files(
        entry.key, [private / "linked-folder" / "house.png", private / "linked-file.png"]
    )
    cache.purge_all()
    assert (outside / "house.png").read_bytes() == b"sample"
    # The link itself is the Space's own entry: it goes, what it points to stays.
    assert not (private / "linked-file.png").is_symlink()


def copy_of_the_app(folder: Path) -> Path:
    """The app as a Space holds it, in a folder of its own, so the attack hits only copies."""
    app = folder / "app"
    ignore = shutil.ignore_patterns("__pycache__")
    app.mkdir()
    for name in ("app.py", "PRIVACY.md", "PRIVACY.zh.md"):
        shutil.copy2(ROOT / name, app / name)
    for name in ("zimage", "examples"):
        shutil.copytree(ROOT / name, app / name, ignore=ignore)
    return app


def test_edit_naming_a_served_example_never_deletes_it(tmp_path: Path) -> None:
    app_folder = copy_of_the_app(tmp_path)
    examples = {path: path.read_bytes() for path in (app_folder / "examples").glob("*.png")}
    house = app_folder / "examples" / "house.png"
    still_life = app_folder / "examples" / "still_life.png"
    settings = {
        "ZIMAGE_DEVICE": "cpu",
        "ZIMAGE_OUTPUT_TTL_S": str(TTL_S),
        "ZIMAGE_CACHE_MAX_PER_VISITOR": "1",
    }
    session = uuid.uuid4().hex[:12]  # one script session: one owner in the cache
    with launched_app(tmp_path, settings, cwd=app_folder) as app:

        def edit(image: Path) -> Path | None:
            data = Edit.endpoint_values(
                image=file_data(str(image)), instruction="snow", seed=1, steps=2
            )
            message = completed(join(app.url, fn_index(app.url, "edit"), data, session))
            return Path(message["output"]["data"][0]["path"]) if message["success"] else None

        first = edit(house)
        second = edit(still_life)  # the visitor cap of 1 evicts the first output
        assert first and second, "the edits naming the examples should run"
        assert not first.exists(), "eviction must still delete the Space's own output"
        wait_until(lambda: not second.exists(), WAIT_S, "output outlived its TTL")
        edit(house)
        assert app.stop() == 0  # shutdown purges everything
    assert [path.name for path in examples if not path.exists()] == [], "examples deleted"
    assert all(path.read_bytes() == data for path, data in examples.items())
    assert "outside the private temp folder" in app.output()  # the guard, not luck, kept them
    assert app.temp_files() == [], "the Space's own files must still all go"
