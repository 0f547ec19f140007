"""Give memory freed by expired or evicted outputs back to the operating system."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def release_free_memory() -> bool:
    """Return free heap pages to the system (glibc `malloc_trim`); False where unavailable.

    Freed PNGs of evicted outputs leave holes in the heap that glibc keeps; without this the
    resident memory of the output cache creeps well past its byte cap under churn (see
    bench/cache_memory.py). It runs on the housekeeping timer, off the request path.
    """
    if _TRIM is None:
        return False
    return bool(_TRIM(0))


class TrimAfterFrees:
    """`release_free_memory` on a timer, only when outputs were freed since the last time.

    A trim hands every free heap page back, and the next request takes them again, page by
    page: +6 ms of CPU (3,700 more page faults) for a 256x256 preview generation right after a
    trim, on the 2-core test machine; the trim itself takes 0.1 ms. The holes the trim is for
    are those of evicted and expired outputs, so it runs after those only; under churn at the
    cap, as before, on every tick.
    """

    def __init__(
        self, freed_bytes: Callable[[], int], trim: Callable[[], bool] = release_free_memory
    ) -> None:
        self.freed_bytes = freed_bytes
        self.trim = trim
        self._trimmed_at = 0

    def __call__(self) -> bool:
        """Trim if anything was freed since the last call; True when it trimmed."""
        freed = self.freed_bytes()
        if freed == self._trimmed_at:
            return False
        self._trimmed_at = freed
        return self.trim()
