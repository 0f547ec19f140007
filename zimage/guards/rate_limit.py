"""Per-visitor rate limit: at most N images in any sliding minute.

Each request counts the images it asks for (a batch of 4 counts 4; an edit or a prompt
enhancement counts 1), so the limit is what its message says.

Visitors are told apart by a keyed hash of their address (the key exists only in this
process's memory), so the limiter never holds a raw IP address.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from zimage.guards.client_address import AddressKey

WINDOW_S = 60.0


class RateLimited(Exception):
    """The visitor made too many requests; the message says when to try again."""


class RateLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._visitor_key = AddressKey()
        self._lock = threading.Lock()
        self._recent: dict[str, deque[float]] = {}

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def admit(self, client_address: str, images: int = 1) -> None:
        """Count `images` for the visitor, or raise RateLimited if their minute has no room
        for that many (nothing is counted then)."""
        if not self.enabled:
            return
        self.refuse_more_than_a_minute(images)
        visitor = self._visitor_key(client_address)
        now = self._clock()
        with self._lock:
            self._forget_before(now - WINDOW_S)
            recent = self._recent.setdefault(visitor, deque())
            over = len(recent) + images - self.per_minute
            if over > 0:
                # Room comes when the `over`-th oldest image leaves the window.
                raise self.refusal(recent[over - 1] + WINDOW_S - now)
            recent.extend([now] * images)

    def refuse_more_than_a_minute(self, images: int) -> None:
        """A request for more images than the whole limit can never run: say so."""
        if images > self.per_minute:
            raise RateLimited(
                f"This Space makes at most {self.per_minute} images a minute per visitor: "
                f"please ask for {self.per_minute} or fewer."
            )

    def refusal(self, wait_s: float) -> RateLimited:
        """What a visitor who must wait `wait_s` seconds is told."""
        return RateLimited(
            f"Limit reached: {self.per_minute} images a minute. "
            f"Try again in {max(1, math.ceil(wait_s))} s."
        )

    def _forget_before(self, cutoff: float) -> None:
        for visitor in list(self._recent):
            recent = self._recent[visitor]
            while recent and recent[0] <= cutoff:
                recent.popleft()
            if not recent:
                del self._recent[visitor]
