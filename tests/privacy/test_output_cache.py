"""OutputCache retention, eviction, file deletion and temp-folder hygiene (fake clock)."""

from __future__ import annotations

import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.launcher import WAIT_S, wait_until
from zimage.privacy.output_cache import (
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


def stops_within_the_wait(stop: Callable[[], None]) -> bool:
    """Whether `stop()` returns within WAIT_S (it is left running in a daemon thread if not)."""
    stopping = threading.Thread(target=stop, daemon=True)
    stopping.start()
    stopping.join(WAIT_S)
    return not stopping.is_alive()


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
        # The entry goes first, its file just after (outside the lock): wait for both.
        wait_until(lambda: len(cache) == 0 and not out.exists(), WAIT_S, "never swept")
    finally:
        cache.stop_sweeper()
    assert not started[0].is_alive()
    cache.stop_sweeper()  # idempotent


def test_stop_is_immediate_with_long_interval(clock: FakeClock) -> None:
    cache = make_cache(clock)
    cache.start_sweeper(interval_s=3600)  # a stop that waited for the tick would take an hour
    assert stops_within_the_wait(cache.stop_sweeper)


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
        wait_until(lambda: calls["bad"] >= 3 and calls["good"] >= 3, WAIT_S, "stopped sweeping")
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


# -- promises the mutation run found untested (issue 18) ------------------------------------------


@pytest.mark.parametrize(
    ("ttl_s", "max_bytes", "per_owner"),
    [(0, 1, 1), (-1, 1, 1), (0.5, 0, 1), (0.5, -1, 1), (0.5, 1, 0)],
)
def test_limits_one_step_past_the_edge_are_refused_with_what_is_needed(
    ttl_s: float, max_bytes: int, per_owner: int
) -> None:
    with pytest.raises(ValueError) as refused:
        OutputCache(ttl_s, max_bytes, per_owner, files_dir=NO_FILES)
    assert str(refused.value) == "need ttl_s > 0, max_bytes > 0 and max_entries_per_owner >= 1"


def test_the_smallest_limits_are_accepted_and_kept(clock: FakeClock) -> None:
    cache = OutputCache(0.5, 1, 1, files_dir=NO_FILES, clock=clock)
    first = put(cache, size=1)
    assert cache.get(first.key, "alice") is first
    second = put(cache, size=1)  # one entry per owner, one byte in all: the first goes
    assert len(cache) == 1 and cache.get(first.key, "alice") is None
    clock.advance(0.49)
    assert cache.get(second.key, "alice") is second
    clock.advance(0.01)
    assert cache.get(second.key, "alice") is None


def test_stopping_a_sweeper_that_never_started_is_harmless(clock: FakeClock) -> None:
    cache = make_cache(clock)
    cache.stop_sweeper()
    cache.stop_sweeper()


def test_entry_keys_are_url_safe_and_carry_192_random_bits(clock: FakeClock) -> None:
    cache = make_cache(clock)
    keys = {put(cache, owner=f"o{n}").key for n in range(50)}
    assert len(keys) == 50
    for key in keys:
        assert len(key) == 32 and all(c.isalnum() or c in "-_" for c in key), key


def test_an_expired_output_goes_with_its_files_when_the_next_is_stored(
    clock: FakeClock, tmp_path: Path
) -> None:
    cache = make_cache(clock, files_dir=tmp_path)
    old = put(cache, owner="bob")
    old_file = touch(tmp_path, "old.png")
    cache.attach_files(old.key, [old_file])
    clock.advance(TTL)
    new = put(cache)  # no sweeper ran: storing is enough
    assert len(cache) == 1 and cache.get(new.key, "alice") is new
    assert not old_file.exists()
    assert cache.total_bytes == 100


def test_attaching_files_to_an_older_output_evicts_others_never_that_output(
    clock: FakeClock, tmp_path: Path
) -> None:
    cache = make_cache(clock, max_bytes=1_000, files_dir=tmp_path)
    target = put(cache, size=100)
    clock.advance(1)
    newer = put(cache, size=100)
    big = tmp_path / "big.png"
    big.write_bytes(b"x" * 850)
    cache.attach_files(target.key, [big])  # the target is now the least recently used
    assert cache.get(target.key, "alice") is target
    assert cache.get(newer.key, "alice") is None
    assert big.exists()
    assert cache.total_bytes == 950


def test_files_attached_in_several_calls_all_count_and_all_leave_with_the_entry(
    clock: FakeClock, tmp_path: Path
) -> None:
    owned: list[list[Path]] = []
    cache = OutputCache(TTL, 10_000, 10, files_dir=tmp_path, clock=clock, files_owned=owned.append)
    entry = put(cache, size=100)
    first, second = touch(tmp_path, "a.png"), touch(tmp_path, "b.png")  # 4 bytes each
    cache.attach_files(entry.key, [first])
    cache.attach_files(entry.key, [second, first])  # the first again: counted once
    assert entry.size_bytes == cache.total_bytes == 108
    assert owned == [[first], [second]], "each file reported once, when it became owned"
    assert cache.purge_all() == 1
    assert cache.total_bytes == 0, "no byte left counted for what is gone"
    assert not first.exists() and not second.exists()


def test_a_file_that_does_not_exist_adds_nothing_to_the_count(
    clock: FakeClock, tmp_path: Path
) -> None:
    cache = make_cache(clock, files_dir=tmp_path)
    entry = put(cache, size=100)
    cache.attach_files(entry.key, [tmp_path / "not-written-yet.png"])
    assert cache.total_bytes == 100


def test_attaching_to_an_expired_output_deletes_all_its_files_and_the_output(
    clock: FakeClock, tmp_path: Path
) -> None:
    cache = make_cache(clock, files_dir=tmp_path)
    entry = put(cache)
    earlier, late = touch(tmp_path, "earlier.png"), touch(tmp_path, "late.png")
    cache.attach_files(entry.key, [earlier])
    clock.advance(TTL)
    cache.attach_files(entry.key, [late])
    assert not earlier.exists() and not late.exists()
    assert len(cache) == 0 and cache.total_bytes == 0


def test_uploads_waiting_to_be_used_share_the_byte_cap(clock: FakeClock) -> None:
    reserved = {"bytes": 0}
    cache = OutputCache(
        TTL, 1_000, 10, files_dir=NO_FILES, clock=clock, reserved_bytes=lambda: reserved["bytes"]
    )
    first = put(cache, size=300)
    reserved["bytes"] = 600
    second = put(cache, size=300)  # 300 + 300 + 600 held: the oldest output makes room
    assert cache.get(first.key, "alice") is None
    assert cache.get(second.key, "alice") is second
    reserved["bytes"] = 0
    third = put(cache, size=300)
    assert cache.get(second.key, "alice") is second and cache.get(third.key, "alice") is third


def test_the_sweeper_runs_every_two_seconds_by_default(clock: FakeClock) -> None:
    cache = make_cache(clock)
    put(cache)
    clock.advance(TTL)
    began = time.monotonic()
    cache.start_sweeper()
    try:
        wait_until(lambda: len(cache) == 0, WAIT_S, "never swept")
        assert time.monotonic() - began >= 2.0  # its first tick, not at once
    finally:
        cache.stop_sweeper()


def test_the_sweeper_never_keeps_the_process_alive(clock: FakeClock) -> None:
    cache = make_cache(clock)
    before = set(threading.enumerate())  # other tests' apps in this process have theirs
    cache.start_sweeper(interval_s=60)
    try:
        started = set(threading.enumerate()) - before
        (thread,) = [t for t in started if t.name == "output-cache-sweeper"]
        assert thread.daemon
    finally:
        cache.stop_sweeper()


def test_a_failing_sweep_task_is_logged_by_name_with_its_traceback(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    cache = make_cache(clock)
    failed = threading.Event()

    def bad() -> None:
        failed.set()
        raise RuntimeError("boom")

    cache.add_sweep_task(bad)
    with caplog.at_level("ERROR", logger="zimage.privacy.output_cache"):
        cache.start_sweeper(interval_s=0.01)
        try:
            assert failed.wait(WAIT_S)
            wait_until(lambda: caplog.records != [], WAIT_S, "not logged")
        finally:
            cache.stop_sweeper()
    record = caplog.records[0]
    assert record.getMessage() == f"sweep task {bad!r} failed"
    assert record.exc_info is not None and "boom" in str(record.exc_info[1])


def test_a_file_outside_the_private_folder_is_kept_and_named_in_a_warning(
    clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    private, example = tmp_path / "private", touch(tmp_path, "examples/cat.png")
    private.mkdir()
    cache = make_cache(clock, files_dir=private)
    entry = put(cache)
    cache.attach_files(entry.key, [example])
    with caplog.at_level("WARNING", logger="zimage.privacy.output_cache"):
        cache.purge_all()
    assert example.exists()
    assert [r.getMessage() for r in caplog.records] == [
        f"not deleting {example}: outside the private temp folder"
    ]


def test_nothing_is_inside_a_folder_but_entries_below_it(tmp_path: Path) -> None:
    from zimage.privacy.output_cache import is_inside

    assert is_inside(tmp_path / "a.png", tmp_path)
    assert is_inside(tmp_path / "x" / "a.png", tmp_path)
    assert not is_inside(tmp_path, tmp_path), "the folder itself is not one of its entries"
    assert not is_inside(tmp_path.parent / "a.png", tmp_path)
    assert not is_inside(tmp_path / ".." / "a.png", tmp_path)
    assert not is_inside("/", Path("/")), "not even the root folder"


# -- the private temp folder: where it is looked for, and how it is made -------------------------


@pytest.fixture
def system_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system temp folder, moved to a fresh folder."""
    folder = tmp_path / "system-temp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.mark.skipif(
    not os.access("/dev/shm", os.W_OK | os.X_OK), reason="this machine has no writable /dev/shm"
)
def test_the_private_temp_folder_is_in_memory_where_dev_shm_is_writable(
    system_temp: Path,
) -> None:
    folder = Path("/dev/shm") / f"zimage-space-{os.getuid()}"
    existed = folder.exists()  # the app's own folder on this machine, if it ran here
    try:
        assert default_temp_dir() == folder
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    finally:
        if not existed:
            folder.rmdir()


def test_a_read_only_dev_shm_leaves_the_folder_in_the_system_temp_folder(
    system_temp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_access = os.access

    def dev_shm_read_only(path: object, mode: int, **kwargs: object) -> bool:
        if str(path) == "/dev/shm":
            return not mode & os.W_OK
        return real_access(path, mode, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "access", dev_shm_read_only)
    assert default_temp_dir() == system_temp / f"zimage-space-{os.getuid()}"


def test_a_fresh_private_temp_folder_is_never_open_to_others_even_for_a_moment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    changed: list[object] = []
    monkeypatch.setattr(os, "chmod", lambda *args, **kwargs: changed.append(args))
    old_umask = os.umask(0)
    try:
        folder = default_temp_dir([tmp_path])
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert changed == [], "made owner-only, not opened and then closed"
    assert default_temp_dir([tmp_path]) == folder and changed == []


def test_each_refused_temp_folder_is_named_with_the_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"zimage-space-{os.getuid()}"
    not_a_folder, planted, own = tmp_path / "file", tmp_path / "planted", tmp_path / "own"
    not_a_folder.write_text("x")
    planted.mkdir()
    (planted / name).symlink_to(own, target_is_directory=True)
    own.mkdir()
    with caplog.at_level("WARNING", logger="zimage.privacy.output_cache"):
        assert default_temp_dir([not_a_folder, planted, own]) == own / name
    cannot, refusing = (r.getMessage() for r in caplog.records)
    assert cannot.startswith(f"cannot use temp folder {not_a_folder / name}: [Errno 20] ")
    assert refusing == f"refusing temp folder {planted / name}: not a folder of ours"


# -- deleting old files: the edge of the age, and files and folders that go meanwhile -----------


def test_a_file_exactly_the_maximum_age_is_kept_and_one_a_second_older_goes(
    tmp_path: Path,
) -> None:
    now = 1_000_000.0
    at_edge = touch(tmp_path, "edge/at-edge.png", now - 600)
    past_edge = touch(tmp_path, "past/past-edge.png", now - 601)
    os.utime(tmp_path / "edge", (now - 600, now - 600))
    os.utime(tmp_path / "past", (now - 601, now - 601))
    (tmp_path / "empty-at-edge").mkdir()
    os.utime(tmp_path / "empty-at-edge", (now - 600, now - 600))
    (tmp_path / "empty-past-edge").mkdir()
    os.utime(tmp_path / "empty-past-edge", (now - 601, now - 601))
    assert delete_files_older_than(tmp_path, 600, now=now) == 1
    assert at_edge.exists() and not past_edge.exists()
    assert (tmp_path / "empty-at-edge").is_dir()
    assert not (tmp_path / "empty-past-edge").exists()


def test_a_file_that_vanishes_during_the_sweep_does_not_stop_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = time.time() - 3600
    names = [f"f{n}.png" for n in range(8)]
    paths = [touch(tmp_path, name, old) for name in names]
    vanished = str(paths[3])
    real_lstat = os.lstat

    def lstat(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if str(path) == vanished:
            raise FileNotFoundError(path)
        return real_lstat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "lstat", lstat)
    assert delete_files_older_than(tmp_path, 600) == 7
    assert [p.name for p in tmp_path.iterdir()] == [paths[3].name]


def test_a_folder_that_vanishes_during_the_sweep_is_left_to_whoever_removed_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "going").mkdir()
    kept = touch(tmp_path, "kept.png")
    real_lstat = os.lstat

    def lstat(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if str(path) == str(tmp_path / "going"):
            raise FileNotFoundError(path)
        return real_lstat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "lstat", lstat)
    assert delete_files_older_than(tmp_path, 600) == 0
    assert kept.exists()


def test_files_someone_else_removed_first_are_not_counted_and_undeletable_ones_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    old = time.time() - 3600
    gone_first, stuck, plain = (touch(tmp_path, n, old) for n in ("gone.png", "stuck.png", "a.png"))
    real_unlink = os.unlink

    def unlink(path: object, *args: object, **kwargs: object) -> None:
        if str(path) == str(gone_first):
            real_unlink(path, *args, **kwargs)  # type: ignore[arg-type]
            raise FileNotFoundError(path)  # another sweep was quicker
        if str(path) == str(stuck):
            raise PermissionError(1, "Operation not permitted")
        real_unlink(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "unlink", unlink)
    with caplog.at_level("WARNING", logger="zimage.privacy.output_cache"):
        assert delete_files_older_than(tmp_path, 600) == 1
    assert not plain.exists() and stuck.exists()
    assert [r.getMessage() for r in caplog.records] == [
        f"could not delete {stuck}: [Errno 1] Operation not permitted"
    ]
    caplog.clear()
    with caplog.at_level("WARNING", logger="zimage.privacy.output_cache"):
        assert delete_tree_contents(tmp_path) == 0
    assert [r.getMessage() for r in caplog.records] == [
        f"could not delete {stuck}: [Errno 1] Operation not permitted"
    ]


def test_emptying_a_folder_removes_every_subfolder_beside_a_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    for parent in range(5):
        folder = root / f"p{parent}"
        for child in range(4):
            (folder / f"empty{child}").mkdir(parents=True)
        (folder / "link").symlink_to(outside, target_is_directory=True)
    assert delete_tree_contents(root) == 5
    assert list(root.iterdir()) == [] and outside.is_dir()


def test_a_folder_that_cannot_be_removed_is_reported_and_the_rest_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (tmp_path / "other").mkdir()
    real_rmdir = os.rmdir

    def rmdir(path: object, *args: object, **kwargs: object) -> None:
        if str(path) == str(busy):
            raise OSError(16, "Device or resource busy")  # a mount point
        real_rmdir(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "rmdir", rmdir)
    with caplog.at_level("WARNING", logger="zimage.privacy.output_cache"):
        delete_tree_contents(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["busy"]
    assert [r.getMessage() for r in caplog.records] == [
        f"could not remove folder {busy}: [Errno 16] Device or resource busy"
    ]
