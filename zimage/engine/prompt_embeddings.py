"""Text-encoder outputs kept per visitor and prompt, so a new seed skips the text encoder.

A prompt is personal data, so its embedding follows the output cache's rules: it belongs to
one owner, is never used for another, lives at most the output lifetime and goes when the
owner deletes their data.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import torch

Embeddings = list[torch.Tensor]


class PromptEmbeddingCache:
    def __init__(
        self, ttl_s: float, max_entries: int = 64, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str], tuple[float, Embeddings]] = OrderedDict()

    def get(self, owner: str, prompt: str) -> Embeddings | None:
        with self._lock:
            found = self._entries.get((owner, prompt))
            if found is None or self._clock() - found[0] >= self.ttl_s:
                return None
            self._entries.move_to_end((owner, prompt))
            return found[1]

    def put(self, owner: str, prompt: str, embeddings: Embeddings) -> None:
        with self._lock:
            self._entries[(owner, prompt)] = (self._clock(), embeddings)
            self._entries.move_to_end((owner, prompt))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def forget_owner(self, owner: str) -> int:
        with self._lock:
            keys = [key for key in self._entries if key[0] == owner]
            for key in keys:
                del self._entries[key]
            return len(keys)

    def sweep_expired(self) -> int:
        cutoff = self._clock() - self.ttl_s
        with self._lock:
            keys = [key for key, (created, _) in self._entries.items() if created <= cutoff]
            for key in keys:
                del self._entries[key]
            return len(keys)

    def __len__(self) -> int:
        return len(self._entries)
