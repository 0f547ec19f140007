"""The output cache's file accounting: each file counted once however many hold it, outputs
kept in their served file only, a visitor's own files (previews, downloads) counted, bounded,
expired and purged with their data, and who each file was given to (issue 24, items 1, 2, 7,
8 and 13; issue 28, item 4)."""

from __future__ import annotations

from pathlib import Path

from zimage.privacy.output_cache import VISITOR_FILES_PER_ADDRESS, CacheEntry, OutputCache

TTL = 60.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def put(cache: OutputCache, owner: str = "alice", size: int = 100) -> CacheEntry:
    return cache.put(owner, b"x" * size, 1, {})


def make(tmp_path: Path, clock: FakeClock, max_bytes: int = 100_000, per_owner: int = 10):
    return OutputCache(
        ttl_s=TTL,
        max_bytes=max_bytes,
        max_entries_per_owner=per_owner,
        files_dir=tmp_path,
        clock=clock,
    )


def file_of(folder: Path, name: str, size: int) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


def test_a_file_several_outputs_hold_counts_once_and_lives_while_one_holds_it(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    cache = make(tmp_path, clock, max_bytes=10_000)
    upload = file_of(tmp_path, "up/big.png", 5_000)
    entries = [put(cache, owner=f"session-{n}", size=100) for n in range(8)]
    for entry in entries:
        cache.attach_files(entry.key, [upload])
    assert cache.total_bytes == 8 * 100 + 5_000, "the upload counted once, not eight times"
    assert len(cache) == 8, "nothing evicted: the cap is not reached"
    for entry in entries[:-1]:
        cache.purge_owner(entry.owner)
        assert upload.exists(), "still held by a later output"
    cache.purge_owner(entries[-1].owner)
    assert not upload.exists()
    assert cache.total_bytes == 0


def test_an_output_served_from_its_file_keeps_no_png_in_memory(tmp_path: Path) -> None:
    clock = FakeClock()
    cache = make(tmp_path, clock)
    entry = put(cache, size=700)
    upload = file_of(tmp_path, "in.png", 50)
    cache.attach_files(entry.key, [upload])
    served = file_of(tmp_path, "out/zimage.png", 700)
    cache.attach_files(entry.key, [served], serves=True)
    assert entry.png == b""
    assert entry.files == [served, upload], "the served file first (the history shows it)"
    assert cache.total_bytes == 750, "the image once, as its file"
    assert cache.freed_png_bytes == 700, "the heap got its bytes back"
    cache.purge_all()
    assert cache.freed_png_bytes == 700 and not served.exists()


def test_a_visitors_files_count_and_go_with_their_data_or_their_kind(tmp_path: Path) -> None:
    clock = FakeClock()
    cache = make(tmp_path, clock)
    frames = [file_of(tmp_path, f"f{n}.png", 10) for n in range(3)]
    export = file_of(tmp_path, "export.json", 20)
    cache.keep_visitor_files("alice", "preview:run1", frames, given_to="A")
    cache.keep_visitor_files("alice", "export", [export], given_to="A")
    cache.keep_visitor_files("bob", "preview:run2", [frames[0]], given_to="B")  # same bytes
    assert cache.total_bytes == 50
    assert cache.live_files() == {*frames, export}
    cache.drop_visitor_files("alice", "preview:run1")
    assert frames[0].exists(), "bob's run shows the same frame"
    assert not frames[1].exists() and not frames[2].exists()
    assert cache.purge_owner("alice") == 0  # no outputs, but the download goes
    assert not export.exists()
    assert cache.total_bytes == 10
    cache.drop_visitor_files("bob", "preview:run2")
    assert not frames[0].exists() and cache.total_bytes == 0


def test_a_new_download_replaces_the_last_one(tmp_path: Path) -> None:
    cache = make(tmp_path, FakeClock())
    first, second = file_of(tmp_path, "1.json", 5), file_of(tmp_path, "2.json", 5)
    cache.keep_visitor_files("alice", "export", [first], replace=True)
    cache.keep_visitor_files("alice", "export", [second], replace=True)
    assert not first.exists() and second.exists()
    cache.keep_visitor_files("alice", "export", [second], replace=True)  # the same file again
    assert second.exists() and cache.total_bytes == 5


def test_a_visitors_files_expire_with_the_output_lifetime(tmp_path: Path) -> None:
    clock = FakeClock()
    cache = make(tmp_path, clock)
    frame = file_of(tmp_path, "frame.png", 10)
    cache.keep_visitor_files("alice", "preview:run", [frame])
    clock.advance(TTL - 1)
    cache.sweep_expired()
    assert frame.exists()
    clock.advance(1)
    cache.sweep_expired()
    assert not frame.exists() and cache.total_bytes == 0


def test_a_visitors_files_are_bounded_per_visitor_and_per_address(tmp_path: Path) -> None:
    cache = make(tmp_path, FakeClock(), per_owner=4)
    own = [file_of(tmp_path, f"own{n}.png", 1) for n in range(6)]
    for path in own:
        cache.keep_visitor_files("alice", "preview:run", [path], given_to="A")
    assert [p.exists() for p in own] == [False, False, True, True, True, True]
    # Fresh sessions from one address: each within its own bound, the address bounded too.
    others = [file_of(tmp_path, f"s{n}.json", 1) for n in range(VISITOR_FILES_PER_ADDRESS + 3)]
    for n, path in enumerate(others):
        cache.keep_visitor_files(f"session-{n}", "export", [path], given_to="M")
    assert sum(p.exists() for p in others) == VISITOR_FILES_PER_ADDRESS
    assert not any(p.exists() for p in others[:3]), "the address's oldest went first"
    assert all(p.exists() for p in own[2:]), "another address's files untouched"


def test_a_visitors_files_share_the_cap_with_outputs(tmp_path: Path) -> None:
    cache = make(tmp_path, FakeClock(), max_bytes=1_000)
    old = put(cache, owner="bob", size=600)
    cache.keep_visitor_files("alice", "preview:run", [file_of(tmp_path, "f.png", 500)])
    assert cache.get(old.key, "bob") is None, "over the cap: the oldest output made room"
    assert cache.total_bytes == 500


def test_a_file_is_given_to_the_addresses_it_was_made_for(tmp_path: Path) -> None:
    cache = make(tmp_path, FakeClock())
    output, frame = file_of(tmp_path, "out.png", 5), file_of(tmp_path, "frame.png", 5)
    entry = cache.put("alice", b"png", 1, {}, given_to="A")
    cache.attach_files(entry.key, [output], serves=True)
    cache.keep_visitor_files("bob", "preview:run", [frame], given_to="B")
    assert cache.given(output, "A") and not cache.given(output, "B")
    assert cache.given(str(frame), "B") and not cache.given(frame, "A")
    cache.purge_owner("alice")
    assert not cache.given(output, "A"), "a deleted file is given to no one"
