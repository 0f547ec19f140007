"""Generated images held in memory only, deleted on a timer together with their files.

Retention (policy section 7): an output lives in this cache and in the files the web
framework wrote for it; both go when the entry expires, is evicted, or is purged. A visitor's
other files (live preview frames, the data download) live here too, for the same lifetime at
most, and go with the visitor's data.
The byte cap counts every file once, however many outputs or visitors hold it (the served
copy, the uploads an output was made from, preview frames, downloads): they live in the temp
folder, which is memory where it is /dev/shm. Once an output is served from a file, its PNG is
kept in that file only.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# Who holds a file: an output (its key) or a visitor's own files ("visitor", owner).
Holder = str | tuple[str, str]
# A visitor's own files (preview frames, downloads) one address may hold at once: fresh
# sessions are free to make, so the bound per visitor alone would not bound an address.
VISITOR_FILES_PER_ADDRESS = 256


@dataclass
class CacheEntry:
    """One generated image and everything that belongs to it. ``png`` is empty once the
    image is served from its file (the first of ``files``)."""

    key: str
    owner: str
    png: bytes
    seed: int
    settings: dict[str, Any]
    created_at: float
    files: list[Path] = field(default_factory=list)
    last_used: float = 0.0
    file_bytes: int = 0
    # The keyed address of the visitor it was made for: its files are given to that address.
    given_to: str = ""

    @property
    def size_bytes(self) -> int:
        return len(self.png) + self.file_bytes


@dataclass
class _File:
    """One file of the temp folder that something here holds, counted once."""

    size: int
    holders: set[Holder] = field(default_factory=set)
    # Keyed addresses of the visitors the Space gave the file to (who may name it again).
    given_to: set[str] = field(default_factory=set)


@dataclass
class _VisitorFile:
    """A file a visitor holds outside their outputs, under one or more kinds."""

    kinds: set[str]
    created_at: float
    given_to: str


class OutputCache:
    """Thread-safe store of outputs and visitors' files, bounded by age, total bytes and
    entries per owner.

    An entry expires ``ttl_s`` after creation; reading it does not extend its life.
    Over the byte cap, the least recently used entries (any owner) are evicted first.
    ``reserved_bytes`` tells what else shares the cap (uploads not yet used), so entries make
    room for it; ``files_owned`` hears of files the cache now holds (and counts). An entry
    larger than ``max_bytes`` on its own is accepted and evicts all others. ``len()`` counts
    the entries held and ``total_bytes`` what is held (PNGs still in memory, every file once),
    including expired entries that have not been swept yet.

    A visitor's own files (``keep_visitor_files``: preview frames, downloads) are grouped by
    kind, expire like entries, go with ``purge_owner``, and number at most
    ``max_entries_per_owner`` per visitor and VISITOR_FILES_PER_ADDRESS per address (the
    oldest go first).

    Files are deleted only when nothing holds them any more, and only when they lie inside
    ``files_dir`` (the app's private temp folder), reached without a symlink out of it: a
    request can name any path Gradio serves (the bundled examples), and that must never cost
    the file.
    """

    def __init__(
        self,
        ttl_s: float,
        max_bytes: int,
        max_entries_per_owner: int,
        *,
        files_dir: str | Path,
        clock: Callable[[], float] = time.monotonic,
        reserved_bytes: Callable[[], int] = lambda: 0,
        files_owned: Callable[[list[Path]], object] = lambda paths: None,
    ) -> None:
        if ttl_s <= 0 or max_bytes <= 0 or max_entries_per_owner < 1:
            raise ValueError("need ttl_s > 0, max_bytes > 0 and max_entries_per_owner >= 1")
        self.files_dir = Path(os.path.realpath(files_dir))
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self.max_entries_per_owner = max_entries_per_owner
        self._clock = clock
        self._reserved_bytes = reserved_bytes
        self._files_owned = files_owned
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()  # least recently used first
        self._by_owner: dict[str, list[str]] = {}  # keys, oldest first
        self._files: dict[Path, _File] = {}
        self._visitor_files: dict[str, dict[Path, _VisitorFile]] = {}  # owner -> oldest first
        self._address_files: dict[str, dict[tuple[str, Path], None]] = {}  # oldest first
        self._total = 0
        self._freed_png_bytes = 0
        self._tasks: list[Callable[[], object]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- entries ---------------------------------------------------------------

    def put(
        self, owner: str, png: bytes, seed: int, settings: dict[str, Any], given_to: str = ""
    ) -> CacheEntry:
        """Store an output, evicting expired, over-cap and least recently used entries.
        ``given_to``: the keyed address of the visitor it is made for."""
        now = self._clock()
        with self._lock:
            key = secrets.token_urlsafe(24)
            entry = CacheEntry(key, owner, bytes(png), seed, dict(settings), now, [], now)
            entry.given_to = given_to
            expired = [k for k, e in self._entries.items() if self._expired(e, now)]
            doomed = [f for k in expired for f in self._pop(k)]
            self._entries[key] = entry
            self._by_owner.setdefault(owner, []).append(key)
            self._total += len(entry.png)
            owned = self._by_owner[owner]
            while len(owned) > self.max_entries_per_owner:
                doomed.extend(self._pop(owned[0]))
            doomed.extend(self._evict_over_cap(keep=key))
        self._delete_owned(doomed)
        return entry

    def attach_files(self, key: str, paths: Iterable[str | Path], *, serves: bool = False) -> None:
        """Record files to delete with the entry (each counts once against the cap, however
        many entries hold it); delete them now if the entry is gone.

        ``serves``: the first path is the file the image is served from. It goes first in
        the entry's files, and the PNG is no longer kept in memory.
        """
        new = list(dict.fromkeys(_norm(p) for p in paths))
        now = self._clock()
        counted: list[Path] = []
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and not self._expired(entry, now):
                added = [p for p in new if p not in entry.files]
                for path in added:
                    size, is_new = self._hold(path, key, entry.given_to)
                    entry.file_bytes += size
                    if is_new:
                        counted.append(path)
                entry.files.extend(added)
                if serves and new:
                    entry.files.remove(new[0])
                    entry.files.insert(0, new[0])
                    self._forget_png(entry)
                doomed = self._evict_over_cap(keep=key)
            else:
                old = self._pop(key) if entry is not None else []
                doomed = [p for p in dict.fromkeys([*new, *old]) if p not in self._files]
        if counted:
            self._files_owned(counted)
        self._delete_owned(doomed)

    def get(self, key: str, owner: str) -> CacheEntry | None:
        """The owner's live entry for ``key`` (marking it used), else None."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.owner != owner:
                return None
            if not self._expired(entry, now):
                entry.last_used = now
                self._entries.move_to_end(key)
                return entry
            doomed = self._pop(key)
        self._delete_owned(doomed)
        return None

    def entries_for(self, owner: str) -> list[CacheEntry]:
        """The owner's unexpired entries, newest first."""
        now = self._clock()
        with self._lock:
            entries = [self._entries[k] for k in reversed(self._by_owner.get(owner, []))]
        return [e for e in entries if not self._expired(e, now)]

    def seconds_left(self, entry: CacheEntry) -> float:
        """Seconds until ``entry`` expires, never negative."""
        return max(0.0, entry.created_at + self.ttl_s - self._clock())

    def live_files(self) -> set[Path]:
        """Files held by entries or visitors (for sweeps that must spare them)."""
        with self._lock:
            return set(self._files)

    def given(self, path: str | Path, address_key: str) -> bool:
        """Whether the file at ``path`` is held here and was given to the visitor with that
        keyed address (an output made for them, a preview or download sent to them)."""
        with self._lock:
            held = self._files.get(_norm(path))
            return held is not None and address_key in held.given_to

    # -- a visitor's other files -----------------------------------------------

    def keep_visitor_files(
        self,
        owner: str,
        kind: str,
        paths: Iterable[str | Path],
        *,
        given_to: str = "",
        replace: bool = False,
    ) -> None:
        """Hold files the Space wrote for a visitor outside an output (preview frames of a
        run, a download), under ``kind``; ``replace`` lets go of the owner's earlier files of
        that kind first. Past the bounds per visitor and per address, the oldest go."""
        new = list(dict.fromkeys(_norm(p) for p in paths))
        now = self._clock()
        holder: Holder = ("visitor", owner)
        counted: list[Path] = []
        with self._lock:
            doomed = self._drop_kind(owner, kind) if replace else []
            mine = self._visitor_files.setdefault(owner, {})
            for path in new:
                if path in mine:
                    mine[path].kinds.add(kind)
                    continue
                mine[path] = _VisitorFile({kind}, now, given_to)
                self._address_files.setdefault(given_to, {})[(owner, path)] = None
                if self._hold(path, holder, given_to)[1]:
                    counted.append(path)
            while len(mine) > self.max_entries_per_owner:
                doomed.extend(self._drop_visitor_file(owner, next(iter(mine))))
            address = self._address_files.get(given_to, {})
            while len(address) > VISITOR_FILES_PER_ADDRESS:
                doomed.extend(self._drop_visitor_file(*next(iter(address))))
            doomed.extend(self._evict_over_cap(keep=None))
            # A file let go of (``replace``) and kept again is held once more.
            doomed = [p for p in dict.fromkeys(doomed) if p not in self._files]
        if counted:
            self._files_owned(counted)
        self._delete_owned(doomed)

    def drop_visitor_files(self, owner: str, kind: str) -> None:
        """Let go of the owner's files of ``kind`` (deleted unless something else holds them)."""
        with self._lock:
            doomed = self._drop_kind(owner, kind)
        self._delete_owned(doomed)

    # -- deletion --------------------------------------------------------------

    def purge_owner(self, owner: str) -> int:
        """Delete all of an owner's entries and files now; return how many entries."""
        return self._remove_where(lambda e: e.owner == owner, lambda o, _f: o == owner)

    def sweep_expired(self) -> int:
        """Delete expired entries and visitors' files, and their files; return how many
        entries."""
        now = self._clock()
        return self._remove_where(
            lambda e: self._expired(e, now), lambda _o, f: now - f.created_at >= self.ttl_s
        )

    def purge_all(self) -> int:
        """Delete every entry and file (shutdown); return how many entries."""
        return self._remove_where(lambda e: True, lambda _o, _f: True)

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return self._total

    @property
    def file_bytes(self) -> int:
        """Bytes of the files held (each once)."""
        with self._lock:
            return sum(held.size for held in self._files.values())

    @property
    def freed_png_bytes(self) -> int:
        """PNG bytes let go of so far (entries removed, or served from their file since):
        grows by what the process's heap got back, never shrinks."""
        with self._lock:
            return self._freed_png_bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    # -- background sweeper ----------------------------------------------------

    def add_sweep_task(self, task: Callable[[], object]) -> None:
        """Run ``task`` on every sweeper tick, after expiring entries."""
        with self._lock:
            self._tasks.append(task)

    def start_sweeper(self, interval_s: float = 2.0) -> None:
        """Start the daemon sweeper thread (no-op if it is already running)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._sweep_loop,
                args=(interval_s, self._stop),
                name="output-cache-sweeper",
                daemon=True,
            )
            self._thread.start()

    def stop_sweeper(self) -> None:
        """Stop the sweeper thread and wait for it; safe to call more than once."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _sweep_loop(self, interval_s: float, stop: threading.Event) -> None:
        while not stop.wait(interval_s):
            with self._lock:
                tasks = [self.sweep_expired, *self._tasks]
            for task in tasks:
                try:
                    task()
                except Exception:
                    logger.exception("sweep task %r failed", task)

    # -- helpers (callers of the methods below hold the lock) ------------------

    def _hold(self, path: Path, holder: Holder, given_to: str) -> tuple[int, bool]:
        """Count ``path`` as held by ``holder``: (its size, whether it is newly counted)."""
        held = self._files.get(path)
        is_new = held is None
        if held is None:
            held = self._files[path] = _File(_file_size(path))
            self._total += held.size
        held.holders.add(holder)
        if given_to:
            held.given_to.add(given_to)
        return held.size, is_new

    def _release(self, holder: Holder, paths: Iterable[Path]) -> list[Path]:
        """Let ``holder`` go of ``paths``; those nobody holds any more (to delete)."""
        unheld = []
        for path in paths:
            held = self._files.get(path)
            if held is None:
                continue
            held.holders.discard(holder)
            if not held.holders:
                del self._files[path]
                self._total -= held.size
                unheld.append(path)
        return unheld

    def _evict_over_cap(self, keep: str | None) -> list[Path]:
        """Pop least recently used entries other than ``keep`` while over the byte cap; the
        files that frees."""
        doomed: list[Path] = []
        while self._total + self._reserved_bytes() > self.max_bytes:
            oldest = next((k for k in self._entries if k != keep), None)
            if oldest is None:
                break
            doomed.extend(self._pop(oldest))
        return doomed

    def _expired(self, entry: CacheEntry, now: float) -> bool:
        return now - entry.created_at >= self.ttl_s

    def _forget_png(self, entry: CacheEntry) -> None:
        self._total -= len(entry.png)
        self._freed_png_bytes += len(entry.png)
        entry.png = b""

    def _pop(self, key: str) -> list[Path]:
        """Remove an entry; the files nobody holds any more."""
        entry = self._entries.pop(key)
        self._forget_png(entry)
        keys = self._by_owner[entry.owner]
        keys.remove(key)
        if not keys:
            del self._by_owner[entry.owner]
        return self._release(key, entry.files)

    def _drop_visitor_file(self, owner: str, path: Path) -> list[Path]:
        mine = self._visitor_files[owner]
        kept = mine.pop(path)
        if not mine:
            del self._visitor_files[owner]
        address = self._address_files[kept.given_to]
        del address[(owner, path)]
        if not address:
            del self._address_files[kept.given_to]
        return self._release(("visitor", owner), [path])

    def _drop_kind(self, owner: str, kind: str) -> list[Path]:
        doomed: list[Path] = []
        for path, kept in list(self._visitor_files.get(owner, {}).items()):
            kept.kinds.discard(kind)
            if not kept.kinds:
                doomed.extend(self._drop_visitor_file(owner, path))
        return doomed

    def _remove_where(
        self,
        entry_goes: Callable[[CacheEntry], bool],
        visitor_file_goes: Callable[[str, _VisitorFile], bool],
    ) -> int:
        with self._lock:
            removed = [k for k, e in list(self._entries.items()) if entry_goes(e)]
            doomed = [f for k in removed for f in self._pop(k)]
            for owner, mine in list(self._visitor_files.items()):
                for path, kept in list(mine.items()):
                    if visitor_file_goes(owner, kept):
                        doomed.extend(self._drop_visitor_file(owner, path))
        self._delete_owned(doomed)
        return len(removed)

    def _delete_owned(self, paths: Iterable[Path]) -> None:
        for path in paths:
            if is_inside(path, self.files_dir):
                _unlink(path)
            else:
                logger.warning("not deleting %s: outside the private temp folder", path)


# -- temp folder hygiene ---------------------------------------------------------


def default_temp_dir(bases: Sequence[Path] | None = None, uid: int | None = None) -> Path:
    """A private (0o700) folder for the framework's temp files, in RAM when possible.

    The folder ``zimage-space-<uid>`` in the first of ``bases`` (default: /dev/shm when
    writable, then the system temp folder) where it is, or can be made, a real folder of
    ``uid`` (default: this process's user), never a symlink.
    """
    uid = os.getuid() if uid is None else uid
    if bases is None:
        bases = [Path("/dev/shm")] if os.access("/dev/shm", os.W_OK | os.X_OK) else []
        bases.append(Path(tempfile.gettempdir()))
    for base in bases:
        folder = base / f"zimage-space-{uid}"
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            st = os.lstat(folder)
            # In a shared /tmp someone else may have planted the name (or a symlink).
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid:
                logger.warning("refusing temp folder %s: not a folder of ours", folder)
                continue
            if stat.S_IMODE(st.st_mode) != 0o700:
                os.chmod(folder, 0o700)
            return folder
        except OSError as exc:
            logger.warning("cannot use temp folder %s: %s", folder, exc)
    raise RuntimeError("no private temp folder available")


def delete_files_older_than(
    folder: Path,
    max_age_s: float,
    now: float | None = None,
    *,
    keep: Collection[str | Path] = (),
) -> int:
    """Delete regular files under ``folder`` older than ``max_age_s``, then empty sub-folders.

    Symlinks are neither followed nor deleted; paths in ``keep`` are spared.
    Returns the number of files deleted.
    """
    cutoff = (time.time() if now is None else now) - max_age_s
    root = os.path.realpath(folder)
    kept = {str(_norm(p)) for p in keep}
    deleted = 0
    emptied: set[str] = set()  # folders this pass removed something from
    for dirpath, _dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue  # vanished meanwhile
            old = stat.S_ISREG(st.st_mode) and st.st_mtime < cutoff
            if old and path not in kept and _unlink(path):
                deleted += 1
                emptied.add(dirpath)
        # A fresh empty folder may be about to receive a file, so only remove old
        # ones or those this pass emptied.
        if dirpath != root and (dirpath in emptied or _mtime(dirpath) < cutoff):
            try:
                os.rmdir(dirpath)
                emptied.add(os.path.dirname(dirpath))
            except OSError:
                pass  # not empty, or already gone
    return deleted


def delete_tree_contents(folder: Path) -> int:
    """Delete everything inside ``folder`` (not the folder); return the number of files."""
    deleted = 0
    for dirpath, dirnames, filenames in os.walk(folder, topdown=False):
        for name in filenames:
            deleted += _unlink(os.path.join(dirpath, name))
        for name in dirnames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                deleted += _unlink(path)  # remove the link, never what it points to
                continue
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                logger.warning("could not remove folder %s: %s", path, exc)
    return deleted


def is_inside(path: str | Path, folder: Path) -> bool:
    """Whether ``path`` names an entry below ``folder`` (a resolved path), following any
    symlinks in its folders (a link to elsewhere is outside) but not in its last part."""
    resolved = _norm(path)
    return resolved.name not in ("", ".", "..") and resolved.parent.is_relative_to(folder)


def _norm(path: str | Path) -> Path:
    # Resolve the folder only: a symlinked file must never lead us to delete its target.
    path = Path(os.path.abspath(path))
    return Path(os.path.realpath(path.parent)) / path.name


def _file_size(path: Path) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


def _mtime(path: str) -> float:
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return float("inf")


def _unlink(path: str | Path) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        logger.warning("could not delete %s: %s", path, exc)
        return False
    return True
