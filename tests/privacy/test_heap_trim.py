import platform

import pytest

from zimage.privacy.heap_trim import release_free_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_freed_heap_pages_are_returned_to_the_system() -> None:
    # Below glibc's mmap threshold, so these live on the heap and leave free pages behind.
    blocks = [bytearray(64 * 1024) for _ in range(1000)]
    del blocks
    assert release_free_memory() is True


def test_the_timer_trims_only_after_outputs_were_freed(tmp_path) -> None:
    from zimage.privacy.heap_trim import TrimAfterFrees
    from zimage.privacy.output_cache import OutputCache

    now = [0.0]
    cache = OutputCache(
        ttl_s=10, max_bytes=1000, max_entries_per_owner=2, files_dir=tmp_path, clock=lambda: now[0]
    )
    trims: list[int] = []
    timer = TrimAfterFrees(lambda: cache.freed_png_bytes, trim=lambda: trims.append(1) or True)
    assert timer() is False  # nothing freed yet: no trim, the heap keeps its pages
    cache.put("a", b"x" * 100, 1, {})
    cache.put("a", b"x" * 100, 2, {})
    assert timer() is False and cache.freed_png_bytes == 0
    cache.put("a", b"x" * 100, 3, {})  # over the visitor's 2 entries: the oldest goes
    assert cache.freed_png_bytes == 100
    assert timer() is True and timer() is False  # once per free
    cache.put("b", b"x" * 900, 4, {})  # over the byte cap: evictions
    assert timer() is True
    now[0] = 11.0
    cache.sweep_expired()  # expiry frees too
    assert timer() is True
    cache.put("c", b"x" * 10, 5, {})
    cache.purge_owner("c")  # and a visitor's deletion
    assert cache.freed_png_bytes == 100 + 100 + 100 + 900 + 10
    assert timer() is True and len(trims) == 4
