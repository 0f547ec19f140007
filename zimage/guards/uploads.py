"""Bounds on what visitors may send: a byte budget per visitor, and the uploads held on disk.

`UploadBudget` counts the bytes each visitor sent over a sliding window (keyed by a hash of the
address, never the address). `HeldUploads` follows the files the upload route wrote into the
temp folder until a request uses them or an output owns them, and deletes those nobody used
within a short time. Plain Python; `zimage/guards/upload_guard.py` applies both to HTTP requests.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

# A file takes at least one page of a tmpfs, however small: a flood of tiny files costs that.
MIN_FILE_CHARGE = 4096
# Byte counts closer together than this share one slot of the sliding window; other visitors'
# old slots are dropped at most this often (every chunk of every upload calls in).
_SLOT_S = 1.0

OUT_OF_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
OUT_OF_SPACE_MESSAGE = (
    "The Space is out of temporary space right now. It frees space on its own as older files "
    "expire: please try again in a few minutes."
)


def is_out_of_space(error: BaseException) -> bool:
    """Whether an exception means a full disk or quota (the temp folder is full)."""
    return isinstance(error, OSError) and error.errno in OUT_OF_SPACE_ERRNOS


class UploadBudget:
    """At most ``max_bytes`` sent per visitor in any ``window_s`` seconds."""

    def __init__(
        self, max_bytes: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_bytes = max_bytes
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._sent: dict[str, deque[list[float]]] = {}  # visitor -> [time, bytes] slots
        self._totals: dict[str, int] = {}
        self._pruned_at = -math.inf

    def remaining(self, visitor: str) -> int:
        with self._lock:
            self._forget_old(self._clock(), visitor)
            return self.max_bytes - self._totals.get(visitor, 0)

    def charge(self, visitor: str, nbytes: int) -> bool:
        """Count bytes that arrived; False once the visitor is over the budget."""
        now = self._clock()
        with self._lock:
            self._forget_old(now, visitor)
            slots = self._sent.setdefault(visitor, deque())
            if slots and now - slots[-1][0] < _SLOT_S:
                slots[-1][1] += nbytes
            else:
                slots.append([now, nbytes])
            total = self._totals.get(visitor, 0) + nbytes
            self._totals[visitor] = total
            return total <= self.max_bytes

    def seconds_until(self, visitor: str, nbytes: int) -> int:
        """Seconds until ``nbytes`` more would fit (at least 1)."""
        now = self._clock()
        with self._lock:
            self._forget_old(now, visitor)
            excess = self._totals.get(visitor, 0) + nbytes - self.max_bytes
            wait = 0.0
            for sent_at, amount in self._sent.get(visitor, ()):
                if excess <= 0:
                    break
                excess -= int(amount)
                wait = sent_at + self.window_s - now
        if excess > 0:  # more than the whole budget: never fits
            wait = self.window_s
        return max(1, math.ceil(wait))

    def _forget_old(self, now: float, visitor: str) -> None:
        """Drop slots older than the window: this visitor's, and everyone's once a slot."""
        if now - self._pruned_at >= _SLOT_S:
            self._pruned_at = now
            visitors = list(self._sent)
        else:
            visitors = [visitor] if visitor in self._sent else []
        cutoff = now - self.window_s
        for name in visitors:
            slots = self._sent[name]
            while slots and slots[0][0] <= cutoff:
                self._totals[name] -= int(slots.popleft()[1])
            if not slots:
                del self._sent[name]
                del self._totals[name]


@dataclass
class _HeldFile:
    size: int
    stored_at: float
    used: bool = False
    # Keyed addresses of the visitors who uploaded it (the same bytes make the same file).
    uploaders: set[str] = field(default_factory=set)


class ExpiringBlobs(dict):
    """Gradio's image-editor blob store, with a lifetime.

    Gradio 6.31's ImageEditor keeps the image blobs a browser sends to /component_server in a
    plain dict until an edit uses (and removes) them: blobs no edit used stay in memory for
    ever. This dict forgets an entry ``ttl_s`` after it was last written.
    """

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.ttl_s = ttl_s
        self._clock = clock
        self._written: dict[object, float] = {}

    def __setitem__(self, key: object, value: object) -> None:
        super().__setitem__(key, value)
        self._written[key] = self._clock()

    def __delitem__(self, key: object) -> None:
        super().__delitem__(key)
        self._written.pop(key, None)

    def pop(self, key: object, *default: object) -> object:
        self._written.pop(key, None)
        return super().pop(key, *default)

    def sweep(self) -> int:
        """Forget entries older than the lifetime; returns how many."""
        cutoff = self._clock() - self.ttl_s
        stale = [key for key, at in list(self._written.items()) if at <= cutoff]
        for key in stale:
            self.pop(key, None)
        return len(stale)

    def nbytes(self) -> int:
        return sum(_blob_bytes(value) for value in list(self.values()))


def _blob_bytes(value: object) -> int:
    """Bytes held by one entry (Gradio's EditorDataBlobs: background, layers, composite)."""
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, (list, tuple)):
        return sum(_blob_bytes(item) for item in value)
    fields = getattr(value, "__dict__", None)
    return sum(_blob_bytes(item) for item in fields.values()) if fields else 0


class HeldUploads:
    """Uploads held until used: the files the upload route wrote, and image-editor blobs.

    A file no request has named within ``unused_s`` is deleted. One that a request named is
    left to the output lifetime (the temp-folder sweep) and stops counting here once an output
    owns it (the cache counts it then). Editor blobs are forgotten after ``unused_s`` unless an
    edit used them first. ``held_bytes`` is what the total cap and the output cache's memory
    budget see.
    """

    def __init__(
        self,
        folder: Path,
        max_bytes: int,
        unused_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.folder = Path(os.path.realpath(folder))
        self._prefix = str(self.folder) + os.sep
        self.max_bytes = max_bytes
        self.unused_s = unused_s
        self._clock = clock
        self._lock = threading.Lock()
        self._files: dict[str, _HeldFile] = {}
        self._held = 0
        self._blob_stores: list[ExpiringBlobs] = []

    def expire_editor_blobs(self, blocks: Iterable[object]) -> int:
        """Give every image editor among ``blocks`` an expiring blob store; returns how many."""
        for block in blocks:
            if isinstance(getattr(block, "blob_storage", None), dict):
                store = ExpiringBlobs(self.unused_s)
                block.blob_storage = store  # type: ignore[attr-defined]
                self._blob_stores.append(store)
        return len(self._blob_stores)

    def held_bytes(self) -> int:
        with self._lock:
            files = self._held
        return files + sum(store.nbytes() for store in self._blob_stores)

    def room_for(self, nbytes: int) -> bool:
        return self.held_bytes() + nbytes <= self.max_bytes

    def add(self, paths: Iterable[str], uploader: str = "") -> None:
        """Follow files the upload route just wrote (only those inside the folder) for the
        visitor with the keyed address ``uploader``."""
        now = self._clock()
        for path in paths:
            resolved = self._key(path)
            if resolved is None:
                continue
            try:
                size = max(os.lstat(resolved).st_size, MIN_FILE_CHARGE)
            except OSError:
                continue
            with self._lock:
                held = self._files.get(resolved)
                if held is None:
                    held = self._files[resolved] = _HeldFile(size, now)
                    self._held += size
                held.uploaders.add(uploader)

    def is_inside(self, path: str) -> bool:
        """Whether ``path`` names a file in the temp folder."""
        return self._key(path) is not None

    def uploaded_by(self, path: str, uploader: str) -> bool:
        """Whether the visitor with the keyed address ``uploader`` uploaded the held file."""
        key = self._key(path)
        with self._lock:
            held = self._files.get(key) if key is not None else None
            return held is not None and uploader in held.uploaders

    def mark_used(self, paths: Iterable[str]) -> int:
        """Note that a request named these files; returns how many were held uploads."""
        keys = [self._key(path) for path in paths]
        used = 0
        with self._lock:
            for key in keys:
                held = self._files.get(key) if key is not None else None
                if held is not None and not held.used:
                    held.used = True
                    used += 1
        return used

    def hand_over(self, paths: Iterable[str | Path]) -> None:
        """Stop counting files an output now owns (the output cache counts them from now)."""
        keys = [self._key(str(path)) for path in paths]
        with self._lock:
            for key in keys:
                held = self._files.pop(key, None) if key is not None else None
                if held is not None:
                    self._held -= held.size

    def sweep(self, owned: Collection[str | Path] = ()) -> int:
        """Delete uploads nobody used in time; forget those an output owns or that are gone.

        Returns the number of files deleted.
        """
        owned_paths = {self._key(str(p)) for p in owned}
        cutoff = self._clock() - self.unused_s
        doomed: list[str] = []
        with self._lock:
            for path, held in list(self._files.items()):
                gone = not os.path.lexists(path)
                stale = not held.used and held.stored_at <= cutoff
                if path in owned_paths or gone or stale:
                    del self._files[path]
                    self._held -= held.size
                    if stale and not gone and path not in owned_paths:
                        doomed.append(path)
        for store in self._blob_stores:
            store.sweep()
        deleted = sum(_delete_with_empty_parent(path) for path in doomed)
        return deleted + self._delete_partial_files(older_than=cutoff)

    def delete_partial_files(self) -> int:
        """Delete what aborted uploads left at the top of the folder (call with none running)."""
        return self._delete_partial_files(older_than=math.inf)

    def _delete_partial_files(self, older_than: float) -> int:
        # Gradio streams each upload into a temporary file at the top of the folder and moves
        # it into a sub-folder when complete; a refused or failed upload leaves it behind, still
        # open in Gradio's abandoned parser until garbage collection: emptied first, so that its
        # space is free at once (an unlinked open file keeps its blocks).
        deleted = 0
        try:
            names = os.listdir(self.folder)
        except OSError:
            return 0
        for name in names:
            path = os.path.join(self.folder, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_mtime <= older_than:
                _empty(path)
                deleted += _delete_with_empty_parent(path, remove_parent=False)
        return deleted

    def _key(self, path: str) -> str | None:
        """The path with its folder resolved, if it lies inside the temp folder; else None."""
        if not isinstance(path, str) or "\x00" in path:
            return None
        key = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
        return key if key.startswith(self._prefix) else None


def _empty(path: str) -> None:
    """Truncate a regular file to nothing (never through a link)."""
    with contextlib.suppress(OSError):
        descriptor = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
        try:
            os.ftruncate(descriptor, 0)
        finally:
            os.close(descriptor)


def _delete_with_empty_parent(path: str, remove_parent: bool = True) -> int:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return 0
    except OSError as exc:
        logger.warning("could not delete upload %s: %s", path, exc)
        return 0
    if remove_parent:
        try:
            os.rmdir(os.path.dirname(path))  # Gradio's one-file folder (named by content)
        except OSError:
            pass
    return 1
