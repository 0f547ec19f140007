import platform

import pytest

from zimage.memory import release_free_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_freed_heap_pages_are_returned_to_the_system() -> None:
    # Below glibc's mmap threshold, so these live on the heap and leave free pages behind.
    blocks = [bytearray(64 * 1024) for _ in range(1000)]
    del blocks
    assert release_free_memory() is True
