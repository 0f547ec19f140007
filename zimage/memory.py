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
