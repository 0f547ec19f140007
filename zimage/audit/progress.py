"""Waiting in front of the person who runs the audit: a progress bar on stderr (one line at the
start and one at the end where stderr is not a terminal, as in CI)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

BAR_WIDTH = 30


class Waits:
    """Sleeps of the audit, shown on `stream` (None: shown nowhere)."""

    def __init__(
        self,
        stream: TextIO | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.stream = stream
        self.clock = clock
        self._sleep = sleep
        self._live = bool(stream is not None and stream.isatty())

    def wait(self, seconds: float, why: str) -> None:
        """Sleep `seconds`, showing `why`."""
        self.until(self.clock() + seconds, why, start=self.clock())

    def until(self, deadline: float, why: str, start: float) -> None:
        """Sleep until `deadline` (of `clock`); the bar runs from `start` to `deadline`."""
        if self.clock() >= deadline:
            return
        total = deadline - start
        self._say(f"{why}: {deadline - self.clock():.0f} s\n", live_only=False)
        while (now := self.clock()) < deadline:
            done = min(1.0, (now - start) / total)
            filled = round(done * BAR_WIDTH)
            bar = "#" * filled + "." * (BAR_WIDTH - filled)
            self._say(f"\r  [{bar}] {now - start:.0f}/{total:.0f} s", live_only=True)
            self._sleep(min(1.0, deadline - now))
        self._say(f"\r  [{'#' * BAR_WIDTH}] {total:.0f}/{total:.0f} s\n", live_only=True)

    def pause(self, seconds: float) -> None:
        """Sleep without a word (between the polls of something announced)."""
        self._sleep(seconds)

    def _say(self, text: str, live_only: bool) -> None:
        if self.stream is None or (live_only and not self._live):
            return
        self.stream.write(text)
        self.stream.flush()
