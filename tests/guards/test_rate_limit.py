import threading

import pytest

from zimage.guards.rate_limit import RateLimited, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limit_per_sliding_minute_with_time_to_wait() -> None:
    clock = Clock()
    limiter = RateLimiter(3, clock)
    for _ in range(3):
        limiter.admit("203.0.113.5")
        clock.now += 10
    with pytest.raises(RateLimited, match=r"3 images a minute\. Try again in 30 s"):
        limiter.admit("203.0.113.5")
    limiter.admit("203.0.113.6")  # another visitor has its own minute
    clock.now += 30  # the first request leaves the window
    limiter.admit("203.0.113.5")


def test_zero_means_off() -> None:
    limiter = RateLimiter(0)
    assert not limiter.enabled
    for _ in range(1000):
        limiter.admit("203.0.113.5")


def test_no_raw_address_is_held() -> None:
    limiter = RateLimiter(5)
    limiter.admit("203.0.113.77")
    assert "203.0.113.77" not in repr(limiter._recent)


def test_concurrent_requests_never_exceed_the_limit() -> None:
    limiter = RateLimiter(50)
    admitted = []

    def hammer() -> None:
        for _ in range(20):
            try:
                limiter.admit("203.0.113.9")
                admitted.append(1)
            except RateLimited:
                pass

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 50


def test_the_wait_is_told_in_whole_seconds_rounded_up_and_never_below_one() -> None:
    clock = Clock()
    limiter = RateLimiter(1, clock)
    limiter.admit("203.0.113.5")
    clock.now += 59.5  # half a second left
    with pytest.raises(RateLimited, match=r"Try again in 1 s\.$"):
        limiter.admit("203.0.113.5")
    assert str(limiter.refusal(0.0)).endswith("Try again in 1 s.")
    assert str(limiter.refusal(-3.0)).endswith("Try again in 1 s.")
    assert str(limiter.refusal(1.01)).endswith("Try again in 2 s.")
