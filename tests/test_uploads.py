"""The upload budget, the ledger of held uploads and the expiring editor-blob store, with a
fake clock and real files. The same bounds through the launched app: test_security_uploads.py.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest

from zimage.cache import OutputCache
from zimage.uploads import (
    MIN_FILE_CHARGE,
    ExpiringBlobs,
    HeldUploads,
    UploadBudget,
    is_out_of_space,
)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_budget_counts_bytes_per_visitor_over_a_sliding_window() -> None:
    clock = Clock()
    budget = UploadBudget(100, 60, clock)
    assert budget.charge("a", 60)
    clock.now += 30
    assert budget.charge("a", 40)
    assert budget.remaining("a") == 0
    assert not budget.charge("a", 1)  # over: refused, and the byte still counts
    assert budget.remaining("b") == 100  # another visitor has its own budget
    assert budget.seconds_until("a", 10) == 30  # when the first 60 bytes leave the window
    clock.now += 30
    assert budget.remaining("a") == 100 - 41
    assert budget.seconds_until("a", 500) == 60  # more than the whole budget: never fits


def test_budget_forgets_visitors_whose_bytes_left_the_window() -> None:
    clock = Clock()
    budget = UploadBudget(100, 60, clock)
    for n in range(50):
        budget.charge(f"visitor-{n}", 10)
    clock.now += 61
    budget.remaining("anyone")
    assert budget._sent == {} and budget._totals == {}


def write(folder: Path, name: str, size: int) -> str:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"u" * size)
    return str(path)


def test_unused_uploads_are_deleted_after_their_time(tmp_path: Path) -> None:
    clock = Clock(time.time())
    held = HeldUploads(tmp_path, 10**6, unused_s=120, clock=clock)
    unused = write(tmp_path, "aaa/unused.png", 5000)
    named = write(tmp_path, "bbb/named.png", 7000)
    owned = write(tmp_path, "ccc/owned.png", 100)  # tiny: charged one page
    held.add([unused, named, owned])
    assert held.held_bytes() == 5000 + 7000 + MIN_FILE_CHARGE
    assert held.mark_used([named, str(tmp_path / "not-an-upload.png")]) == 1
    clock.now += 119
    assert held.sweep(owned=[owned]) == 0
    assert held.held_bytes() == 5000 + 7000  # an output owns (and counts) `owned` now
    clock.now += 1
    assert held.sweep() == 1
    assert not os.path.exists(unused) and not (tmp_path / "aaa").exists()
    assert os.path.exists(named) and os.path.exists(owned)
    assert held.held_bytes() == 7000  # named by a request: left to the output lifetime
    os.unlink(named)
    held.sweep()
    assert held.held_bytes() == 0


def test_only_files_inside_the_folder_are_followed_or_deleted(tmp_path: Path) -> None:
    folder = tmp_path / "temp"
    outside = write(tmp_path, "outside.png", 5000)
    clock = Clock(time.time())
    held = HeldUploads(folder, 10**6, unused_s=1, clock=clock)
    held.add([outside, str(folder / ".." / "outside.png"), str(folder / "missing.png")])
    assert held.held_bytes() == 0
    clock.now += 5
    held.sweep()
    assert os.path.exists(outside)


def test_partial_files_of_aborted_uploads_are_deleted(tmp_path: Path) -> None:
    clock = Clock(time.time())
    held = HeldUploads(tmp_path, 10**6, unused_s=120, clock=clock)
    partial = write(tmp_path, "tmpab12cd", 3000)  # Gradio's temporary name, at the top
    complete = write(tmp_path, "0123abcd/photo.png", 3000)
    held.sweep()
    assert os.path.exists(partial)  # may still be arriving
    assert held.delete_partial_files() == 1
    assert not os.path.exists(partial) and os.path.exists(complete)
    with open(write(tmp_path, "tmpopen", 3000), "ab") as still_open:  # Gradio's parser
        assert held.delete_partial_files() == 1
        assert os.fstat(still_open.fileno()).st_size == 0  # its space is free already
    stale = write(tmp_path, "tmpzz99", 10)
    os.utime(stale, (clock.now - 200, clock.now - 200))
    held.sweep()
    assert not os.path.exists(stale)


def test_room_counts_what_is_held(tmp_path: Path) -> None:
    held = HeldUploads(tmp_path, 10_000, unused_s=120)
    held.add([write(tmp_path, "a/one.png", 6000)])
    assert held.room_for(4000)
    assert not held.room_for(4001)


def test_editor_blobs_expire_and_count(tmp_path: Path) -> None:
    clock = Clock()

    class EditorBlobs:  # the shape of Gradio's EditorDataBlobs
        def __init__(self, background: bytes, layers: list[bytes | None]) -> None:
            self.background = background
            self.layers = layers
            self.composite = None

    class Editor:
        def __init__(self) -> None:
            self.blob_storage: dict = {}

    held = HeldUploads(tmp_path, 10**6, unused_s=120)
    editor, other = Editor(), object()
    assert held.expire_editor_blobs([editor, other]) == 1
    store = editor.blob_storage
    assert isinstance(store, ExpiringBlobs)
    store._clock = clock
    store["old"] = EditorBlobs(b"b" * 1000, [b"l" * 200, None])
    clock.now += 100
    store["new"] = EditorBlobs(b"b" * 10, [])
    assert held.held_bytes() == 1210
    clock.now += 20
    held.sweep()
    assert list(store) == ["new"] and held.held_bytes() == 10
    assert store.pop("new").background == b"b" * 10  # what Gradio does when an edit uses it
    assert store._written == {}


def test_cache_cap_counts_attached_files_and_reserved_uploads(tmp_path: Path) -> None:
    reserved = {"bytes": 0}
    cache = OutputCache(
        ttl_s=600,
        max_bytes=10_000,
        max_entries_per_owner=10,
        files_dir=tmp_path,
        reserved_bytes=lambda: reserved["bytes"],
    )
    first = cache.put("alice", b"p" * 1000, 1, {})
    cache.attach_files(first.key, [write(tmp_path, "a/upload.png", 6000)])
    assert cache.total_bytes == 7000
    second = cache.put("bob", b"p" * 1000, 2, {})
    cache.attach_files(second.key, [write(tmp_path, "b/upload.png", 2500)])  # 10,500: over
    assert [e.owner for e in cache.entries_for("alice")] == []
    assert not (tmp_path / "a" / "upload.png").exists()
    assert cache.total_bytes == 3500
    reserved["bytes"] = 7000  # uploads waiting to be used need room too
    cache.put("carol", b"p" * 100, 3, {})
    assert cache.entries_for("bob") == [] and cache.total_bytes == 100


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
        (OSError(errno.EACCES, "Permission denied"), False),
        (ValueError("no"), False),
    ],
)
def test_out_of_space_is_recognised(error: BaseException, expected: bool) -> None:
    assert is_out_of_space(error) is expected


def test_an_output_that_keeps_an_upload_takes_over_its_count(tmp_path: Path) -> None:
    held = HeldUploads(tmp_path, 10**6, unused_s=120)
    cache = OutputCache(
        ttl_s=600,
        max_bytes=10**6,
        max_entries_per_owner=10,
        files_dir=tmp_path,
        reserved_bytes=held.held_bytes,
        files_owned=held.hand_over,
    )
    upload = write(tmp_path, "a/upload.png", 6000)
    held.add([upload])
    entry = cache.put("alice", b"p" * 1000, 1, {})
    assert cache.total_bytes + held.held_bytes() == 1000 + 6000
    cache.attach_files(entry.key, [upload])
    assert held.held_bytes() == 0 and cache.total_bytes == 7000  # counted once, at once
