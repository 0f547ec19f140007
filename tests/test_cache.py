"""OutputCache retention, eviction, file deletion and temp-folder hygiene (fake clock)."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest

from zimage.cache import (
    OutputCache,
    default_temp_dir,
    delete_files_older_than,
    delete_tree_contents,
)

TTL = 60.0
# The private temp folder of caches whose tests attach no files.
NO_FILES = Path("/nonexistent/zimage-private-temp")
SETTINGS = {"endpoint": "generate", "prompt": "a cat", "resolution": "512x512", "steps": 8}


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_cache(
    clock: FakeClock,
    max_bytes: int = 10_000,
    per_owner: int = 10,
    files_dir: Path = NO_FILES,
) -> OutputCache:
    return OutputCache(
        ttl_s=TTL,
        max_bytes=max_bytes,
        max_entries_per_owner=per_owner,
        files_dir=files_dir,
        clock=clock,
    )


def put(cache: OutputCache, owner: str = "alice", size: int = 100, seed: int = 1):
    return cache.put(owner, b"x" * size, seed, SETTINGS)


def touch(folder: Path, name: str, mtime: float | None = None) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"data")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_rejects_nonsense_limits() -> None:
    with pytest.raises(ValueError):
        OutputCache(ttl_s=0, max_bytes=1, max_entries_per_owner=1, files_dir=NO_FILES)
    with pytest.raises(ValueError):
        OutputCache(ttl_s=1, max_bytes=1, max_entries_per_owner=0, files_dir=NO_FILES)


def test_entry_fields_and_copy_of_settings(clock: FakeClock) -> None:
    cache = make_cache(clock)
    settings = dict(SETTINGS)
    entry = cache.put("alice", b"png-bytes", 42, settings)
    settings["prompt"] = "changed"
    assert entry.owner == "alice" and entry.seed == 42 and entry.png == b"png-bytes"
    assert entry.settings["prompt"] == "a cat"
    assert entry.size_bytes == 9
    assert entry.created_at == entry.last_used == clock.now
    assert len(entry.key) >= 32
    assert put(cache).key != entry.key


def test_expiry_and_seconds_left(clock: FakeClock) -> None:
    cache = make_cache(clock)
    entry = put(cache)
    assert cache.seconds_left(entry) == TTL
    clock.advance(TTL - 0.5)
    assert cache.get(entry.key, "alice") is entry
    assert cache.entries_for("alice") == [entry]
    assert cache.seconds_left(entry) == pytest.approx(0.5)
    clock.advance(0.5)
    assert cache.seconds_left(entry) == 0.0
    assert cache.entries_for("alice") == []
    assert cache.get(entry.key, "alice") is None
    clock.advance(100)
    assert cache.seconds_left(entry) == 0.0
    assert len(cache) == 0 and cache.total_bytes == 0


def test_get_does_not_extend_life(clock: FakeClock) -> None:
    cache = make_cache(clock)
    entry = put(cache)
    clock.advance(TTL / 2)
    assert cache.get(entry.key, "alice") is entry
    assert entry.last_used == clock.now
    clock.advance(TTL / 2)
    assert cache.get(entry.key, "alice") is None


def test_get_by_other_owner_or_unknown_key_is_none(clock: FakeClock) -> None:
    cache = make_cache(clock)
    entry = put(cache, "alice")
    assert cache.get(entry.key, "bob") is None
    assert cache.get("no-such-key", "alice") is None
    assert cache.get(entry.key, "alice") is entry


def test_entries_for_newest_first_and_isolated(clock: FakeClock) -> None:
    cache = make_cache(clock)
    a1 = put(cache, "alice")
    clock.advance(1)
    b1 = put(cache, "bob")
    clock.advance(1)
    a2 = put(cache, "alice")
    a3 = put(cache, "alice")  # same timestamp: insertion order still decides
    assert cache.entries_for("alice") == [a3, a2, a1]
    assert cache.entries_for("bob") == [b1]
    assert cache.entries_for("carol") == []


def test_byte_cap_evicts_least_recently_used(clock: FakeClock) -> None:
    cache = make_cache(clock, max_bytes=300)
    a = put(cache, "alice")
    b = put(cache, "bob")
    c = put(cache, "carol")
    clock.advance(1)
    assert cache.get(a.key, "alice") is a  # protects a; b is now least recently used
    d = put(cache, "alice")
    assert cache.get(b.key, "bob") is None
    for kept in (a, c, d):
        assert cache.get(kept.key, kept.owner) is kept
    assert cache.total_bytes == 300 and len(cache) == 3


def test_oversize_entry_is_kept_alone(clock: FakeClock) -> None:
    cache = make_cache(clock, max_bytes=300)
    small = [put(cache, owner) for owner in ("alice", "bob")]
    big = put(cache, "carol", size=500)
    assert all(cache.get(e.key, e.owner) is None for e in small)
    assert cache.get(big.key, "carol") is big
    assert cache.total_bytes == 500 and len(cache) == 1


def test_per_owner_cap_evicts_that_owners_oldest(clock: FakeClock) -> None:
    cache = make_cache(clock, per_owner=2)
    a1 = put(cache, "alice")
    b1 = put(cache, "bob")
    clock.advance(1)
    a2 = put(cache, "alice")
    assert cache.get(a1.key, "alice") is a1  # recently used, but still the oldest
    a3 = put(cache, "alice")
    assert cache.entries_for("alice") == [a3, a2]
    assert cache.entries_for("bob") == [b1]
    assert cache.total_bytes == 300


def test_files_deleted_on_expiry(clock: FakeClock, tmp_path: Path) -> None:
    cache = make_cache(clock, files_dir=tmp_path)
    entry = put(cache)
    files = [touch(tmp_path, "out.png"), touch(tmp_path, "up/in.webp")]
    cache.attach_files(entry.key, [str(files[0]), files[1]])
    assert entry.files == files
    assert cache.sweep_expired() == 0
    assert all(f.exists() for f in files)
    clock.advance(TTL)
    assert cache.sweep_expired() == 1
    assert not any(f.exists() for f in files)
    assert len(cache) == 0


def test_files_deleted_on_eviction(clock: FakeClock, tmp_path: Path) -> None:
    cache = make_cache(
        clock, max_bytes=210, per_owner=2, files_dir=tmp_path
    )  # two entries and their 4-byte files
    by_bytes = put(cache, "bob")
    cache.attach_files(by_bytes.key, [touch(tmp_path, "bob.png")])
    by_cap = put(cache, "alice")
    cache.attach_files(by_cap.key, [touch(tmp_path, "alice1.png")])
    put(cache, "alice")  # byte cap: evicts bob
    assert not (tmp_path / "bob.png").exists()
    assert (tmp_path / "alice1.png").exists()
    put(cache, "alice", size=50)  # owner cap: evicts alice's oldest
    assert not (tmp_path / "alice1.png").exists()


def test_files_deleted_when_expired_entry_is_read(clock: FakeClock, tmp_path: Path) -> None:
    cache = make_cache(clock, files_dir=tmp_path)
    entry = put(cache)
    cache.attach_files(entry.key, [touch(tmp_path, "out.png")])
    clock.advance(TTL)
    assert cache.get(entry.key, "alice") is None
    assert not (tmp_path / "out.png").exists()


def test_attach_after_expiry_or_unknown_key_deletes_now(clock: FakeClock, tmp_path: Path) -> None:
    cache = make_cache(clock, files_dir=tmp_path)
    entry = put(cache)
    clock.advance(TTL)
    late = touch(tmp_path, "late.png")
    cache.attach_files(entry.key, [late])
    assert not late.exists()
    stray = touch(tmp_path, "stray.png")
    cache.attach_files("no-such-key", [stray])
    assert not stray.exists()
    cache.attach_files("no-such-key", [tmp_path / "never-existed.png"])  # no error


def test_file_shared_with_live_entry_survives(clock: FakeClock, tmp_path: Path) -> None:
    cache = make_cache(clock, files_dir=tmp_path)
    shared = touch(tmp_path, "same-hash/image.png")
    old = put(cache)
    cache.attach_files(old.key, [shared])
    clock.advance(TTL / 2)
    new = put(cache)
    cache.attach_files(new.key, [shared])
    clock.advance(TTL / 2)
    assert cache.sweep_expired() == 1
    assert shared.exists()
    assert cache.live_files() == {shared}
    clock.advance(TTL / 2)
    assert cache.sweep_expired() == 1
    assert not shared.exists()


def test_already_missing_files_are_ignored(clock: FakeClock, tmp_path: Path) -> None:
    cache = make_cache(clock, files_dir=tmp_path)
    entry = put(cache)
    gone = touch(tmp_path, "gone.png")
    cache.attach_files(entry.key, [gone])
    gone.unlink()
    assert cache.purge_all() == 1


def test_purge_owner_only_touches_that_owner(clock: FakeClock, tmp_path: Path) -> None:
    cache = make_cache(clock, files_dir=tmp_path)
    alice = [put(cache, "alice") for _ in range(3)]
    bob = put(cache, "bob")
    for i, entry in enumerate([*alice, bob]):
        cache.attach_files(entry.key, [touch(tmp_path, f"{entry.owner}{i}.png")])
    assert cache.purge_owner("alice") == 3
    assert cache.entries_for("alice") == []
    assert cache.entries_for("bob") == [bob]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bob3.png"]
    assert cache.total_bytes == 100 + len(b"data")  # bob's PNG and his attached file
    assert cache.purge_owner("nobody") == 0


def test_purge_all(clock: FakeClock, tmp_path: Path) -> None:
    cache = make_cache(clock, files_dir=tmp_path)
    for i, owner in enumerate(["alice", "bob", "carol"]):
        cache.attach_files(put(cache, owner).key, [touch(tmp_path, f"{i}.png")])
    assert cache.purge_all() == 3
    assert len(cache) == 0 and cache.total_bytes == 0
    assert list(tmp_path.iterdir()) == []
    assert cache.purge_all() == 0


def test_concurrent_use_stays_consistent(clock: FakeClock, tmp_path: Path) -> None:
    cache = make_cache(clock, max_bytes=5_000, per_owner=5, files_dir=tmp_path)
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def worker(n: int) -> None:
        try:
            start.wait()
            keys: list[str] = []
            for i in range(200):
                owner = f"owner{(n + i) % 4}"
                op = i % 5
                if op in (0, 1):
                    entry = cache.put(owner, b"x" * (50 + i), i, SETTINGS)
                    keys.append(entry.key)
                    cache.attach_files(entry.key, [touch(tmp_path, f"{n}-{i}.png")])
                elif op == 2 and keys:
                    cache.get(keys[-1], owner)
                    cache.entries_for(owner)
                elif op == 3:
                    cache.sweep_expired()
                    clock.advance(1)
                elif i % 40 == 4:
                    cache.purge_owner(owner)
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    cache.sweep_expired()
    entries = [e for o in range(4) for e in cache.entries_for(f"owner{o}")]
    assert cache.total_bytes == sum(e.size_bytes for e in entries) <= 5_000
    assert len(cache) == len(entries)
    assert all(len(cache.entries_for(f"owner{o}")) <= 5 for o in range(4))
    on_disk = {p for p in tmp_path.iterdir()}
    assert on_disk == {f for e in entries for f in e.files}
    cache.purge_all()
    assert list(tmp_path.iterdir()) == []


def wait_for(condition, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def test_sweeper_expires_entries_and_stops_promptly(clock: FakeClock, tmp_path: Path) -> None:
    cache = make_cache(clock, files_dir=tmp_path)
    entry = put(cache)
    out = touch(tmp_path, "out.png")
    cache.attach_files(entry.key, [out])
    threads_before = set(threading.enumerate())
    cache.start_sweeper(interval_s=0.01)
    cache.start_sweeper(interval_s=0.01)  # second start is a no-op
    started = [t for t in threading.enumerate() if t not in threads_before]
    assert [t.name for t in started] == ["output-cache-sweeper"]
    try:
        time.sleep(0.05)
        assert len(cache) == 1  # not expired yet: the sweeper must keep it
        clock.advance(TTL)
        assert wait_for(lambda: len(cache) == 0)
        assert not out.exists()
    finally:
        began = time.monotonic()
        cache.stop_sweeper()
        assert time.monotonic() - began < 0.5
    assert not started[0].is_alive()
    cache.stop_sweeper()  # idempotent


def test_stop_is_immediate_with_long_interval(clock: FakeClock) -> None:
    cache = make_cache(clock)
    cache.start_sweeper(interval_s=60)
    began = time.monotonic()
    cache.stop_sweeper()
    assert time.monotonic() - began < 0.5


def test_failing_sweep_task_does_not_stop_sweeper(clock: FakeClock, caplog) -> None:
    cache = make_cache(clock)
    calls = {"bad": 0, "good": 0}

    def bad() -> None:
        calls["bad"] += 1
        raise RuntimeError("boom")

    def good() -> None:
        calls["good"] += 1

    cache.add_sweep_task(bad)
    cache.add_sweep_task(good)
    cache.start_sweeper(interval_s=0.01)
    try:
        assert wait_for(lambda: calls["bad"] >= 3 and calls["good"] >= 3)
    finally:
        cache.stop_sweeper()
    assert "boom" in caplog.text


def test_delete_files_older_than(tmp_path: Path) -> None:
    now = time.time()
    old, new = now - 3600, now - 10
    root = tmp_path / "gradio"
    old_top = touch(root, "old.png", old)
    new_top = touch(root, "new.png", new)
    old_nested = touch(root, "a/b/old.webp", old)
    mixed_old = touch(root, "mixed/old.png", old)
    mixed_new = touch(root, "mixed/new.png", new)
    (root / "fresh-empty").mkdir()  # just created: may be about to receive a file
    outside = touch(tmp_path, "outside/secret.png", old)
    (root / "link-file").symlink_to(outside)
    (root / "link-dir").symlink_to(outside.parent, target_is_directory=True)

    assert delete_files_older_than(root, max_age_s=600, now=now) == 3
    assert not old_top.exists() and not old_nested.exists() and not mixed_old.exists()
    assert new_top.exists() and mixed_new.exists()
    assert not (root / "a").exists()  # emptied nested folders are removed
    assert (root / "mixed").is_dir() and (root / "fresh-empty").is_dir()
    assert root.is_dir()
    assert outside.exists()  # symlinks are not followed out of the folder
    assert (root / "link-file").is_symlink() and (root / "link-dir").is_symlink()

    # Everything is old an hour later; an old empty folder goes too, the root stays.
    assert delete_files_older_than(root, max_age_s=600, now=now + 3600) == 2
    assert sorted(p.name for p in root.iterdir()) == ["link-dir", "link-file"]
    assert outside.exists()


def test_delete_files_older_than_spares_kept_and_missing_folder(tmp_path: Path) -> None:
    old = time.time() - 3600
    live = touch(tmp_path, "h1/live.png", old)
    dead = touch(tmp_path, "h2/dead.png", old)
    assert delete_files_older_than(tmp_path, 600, keep={live}) == 1
    assert live.exists() and not dead.exists()
    assert delete_files_older_than(tmp_path / "missing", 600) == 0


def test_delete_tree_contents(tmp_path: Path) -> None:
    root = tmp_path / "gradio"
    for name in ("a.png", "x/b.png", "x/y/c.png"):
        touch(root, name)
    (root / "empty").mkdir()
    outside = touch(tmp_path, "outside/keep.png")
    (root / "link").symlink_to(outside.parent, target_is_directory=True)
    assert delete_tree_contents(root) == 4
    assert root.is_dir() and list(root.iterdir()) == []
    assert outside.exists()
    assert delete_tree_contents(tmp_path / "missing") == 0


def test_private_temp_folder_is_made_owner_only_in_a_fresh_base(tmp_path: Path) -> None:
    old_umask = os.umask(0)  # the most permissive umask: the mode must not depend on it
    try:
        folder = default_temp_dir([tmp_path])
    finally:
        os.umask(old_umask)
    assert folder == tmp_path / f"zimage-space-{os.getuid()}"
    assert folder.is_dir() and not folder.is_symlink()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert folder.stat().st_uid == os.getuid()
    assert default_temp_dir([tmp_path]) == folder, "found again at the next start"


def test_an_existing_private_temp_folder_that_is_open_to_others_is_closed(tmp_path: Path) -> None:
    folder = tmp_path / f"zimage-space-{os.getuid()}"
    folder.mkdir()
    folder.chmod(0o755)
    assert default_temp_dir([tmp_path]) == folder
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


@pytest.mark.parametrize("planted", ["symlink to a folder", "file"])
def test_a_name_planted_in_a_shared_base_is_never_used(
    tmp_path: Path, planted: str, caplog: pytest.LogCaptureFixture
) -> None:
    shared, own = tmp_path / "shared", tmp_path / "own"
    shared.mkdir()
    own.mkdir()
    name = f"zimage-space-{os.getuid()}"
    target = tmp_path / "attacker"
    target.mkdir()
    target.chmod(0o755)  # not mkdir's mode: the umask (the app sets 077) would narrow it
    if planted == "symlink to a folder":
        (shared / name).symlink_to(target, target_is_directory=True)
    else:
        (shared / name).write_text("x")
    with caplog.at_level("WARNING"):
        folder = default_temp_dir([shared, own])
    assert folder == own / name, "the next base is used instead"
    assert f"temp folder {shared / name}: " in caplog.text
    assert stat.S_IMODE(target.stat().st_mode) == 0o755, "what a link points to is left alone"


def test_a_folder_of_another_user_is_never_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other_user = os.getuid() + 1  # the folder below is ours, so it is not theirs
    planted = tmp_path / f"zimage-space-{other_user}"
    planted.mkdir()
    planted.chmod(0o755)
    with caplog.at_level("WARNING"), pytest.raises(RuntimeError):
        default_temp_dir([tmp_path], uid=other_user)
    assert f"refusing temp folder {planted}: not a folder of ours" in caplog.text
    assert stat.S_IMODE(planted.stat().st_mode) == 0o755, "left as it was"


def test_no_usable_base_means_no_temp_folder(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    (tmp_path / f"zimage-space-{os.getuid()}").symlink_to(tmp_path)
    with pytest.raises(RuntimeError, match="^no private temp folder available$"):
        default_temp_dir([not_a_folder, tmp_path])
