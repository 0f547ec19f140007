"""Each server process gets its own temp folder, held by a lock for its life, removed at exit.

Two instances of the same user used to share one folder (`/dev/shm/zimage-space-<uid>`, or
the operator's GRADIO_TEMP_DIR): A's sweeper and shutdown deleted B's outputs and uploads. Now
each process claims `<base>/zimage-<pid>-<random>` and keeps an exclusive flock on it until it
ends (the kernel drops the lock when a process dies, kill -9 included). At start a process
deletes the folders of processes that are gone (lock free, and no process of the pid in the
name) and never one whose lock is held. Gradio serves files only from its own GRADIO_TEMP_DIR,
so a dead process's leftovers are not served even before they are deleted.

A folder deleted from outside (a temp cleaner, an operator) while its process runs is made
again by the next file written into it, but without the lock, which stayed on the deleted
folder: another instance starting then would have taken it for a dead process's and deleted
it, outputs and all. So the name's pid must also be gone, and the process takes its lock again
on the new folder (`keep_held`, on the housekeeping timer every 2 s).
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import re
import secrets
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)

_CLAIMED = re.compile(r"^zimage-\d+-[0-9a-f]+$")
_CLAIMING_PREFIX = ".claiming-"  # made, not yet locked and renamed: never a dead process's

_held: dict[Path, int] = {}  # this process's folders -> the descriptor holding each lock


def process_temp_dir(base: Path) -> Path:
    """This process's own folder inside `base` (made once per base, mode 0700).

    `base` may already be this process's folder (a second app built in the same process
    reads it back from GRADIO_TEMP_DIR): it is returned as it is.
    """
    base = Path(os.path.realpath(base))
    if base in _held:
        return base
    for folder in _held:
        if folder.parent == base:
            return folder
    base.mkdir(parents=True, exist_ok=True)
    remove_dead_folders(base)
    folder, descriptor = _claim(base)
    _held[folder] = descriptor
    if len(_held) == 1:
        atexit.register(release_all)
    return folder


def _claim(base: Path) -> tuple[Path, int]:
    token = secrets.token_hex(4)
    claiming = base / f"{_CLAIMING_PREFIX}{os.getpid()}-{token}"
    claiming.mkdir(mode=0o700)
    descriptor = os.open(claiming, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    folder = base / f"zimage-{os.getpid()}-{token}"
    os.rename(claiming, folder)  # the lock belongs to the folder, not its name
    return folder, descriptor


def remove_dead_folders(base: Path) -> int:
    """Delete the folders of processes that have ended; how many."""
    removed = 0
    for entry in os.scandir(base):
        if not (entry.is_dir(follow_symlinks=False) and _CLAIMED.match(entry.name)):
            continue
        try:
            descriptor = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue  # vanished meanwhile
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(descriptor)
            continue  # its process is alive
        if _process_alive(int(entry.name.split("-")[1])):
            os.close(descriptor)  # its process lost the lock (the folder was made again)
            continue
        try:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed += 1
            logger.info("removed the temp folder of an ended process: %s", entry.path)
        finally:
            os.close(descriptor)
    return removed


def keep_held(folder: Path) -> bool:
    """Hold `folder` again if it was deleted (or replaced) since this process locked it: make
    it if missing and lock the folder now at its path. True when it had to."""
    descriptor = _held.get(folder)
    if descriptor is None:
        return False
    try:
        if os.path.samestat(os.fstat(descriptor), os.stat(folder, follow_symlinks=False)):
            return False
    except FileNotFoundError:
        pass
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        renewed = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as error:
        logger.warning("the temp folder %s was deleted and cannot be made again: %s", folder, error)
        return False
    try:
        fcntl.flock(renewed, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(renewed)
        return False  # another process holds it now: try again at the next tick
    _held[folder] = renewed
    os.close(descriptor)
    logger.warning("the temp folder %s was deleted from outside: made again and held", folder)
    return True


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def release(folder: Path) -> None:
    """Delete this process's `folder` and drop its lock (also done at exit)."""
    descriptor = _held.pop(folder, None)
    shutil.rmtree(folder, ignore_errors=True)
    if descriptor is not None:
        os.close(descriptor)


def release_all() -> None:
    """Delete every folder this process holds (at exit, or before leaving without one)."""
    for folder in list(_held):
        release(folder)
