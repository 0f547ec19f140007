"""Server-side deletion on timers: expired outputs and their files, temp files, old usage rows.

Runs in the server process (never in the browser), starts with the app and stops with it;
on shutdown every output and temp file is deleted.
"""

from __future__ import annotations

import logging
from pathlib import Path

from zimage.engine.prompt_embeddings import PromptEmbeddingCache
from zimage.guards.uploads import HeldUploads
from zimage.privacy.heap_trim import TrimAfterFrees
from zimage.privacy.output_cache import OutputCache, delete_files_older_than, delete_tree_contents
from zimage.privacy.temp_folder import keep_held
from zimage.privacy.usage_log import UsageLog

logger = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 2.0
RETENTION_INTERVAL_S = 3600.0


class Housekeeping:
    def __init__(
        self,
        cache: OutputCache,
        usage_log: UsageLog | None,
        temp_dir: Path,
        prompt_embeddings: PromptEmbeddingCache | None = None,
        uploads: HeldUploads | None = None,
    ) -> None:
        self.cache = cache
        self.usage_log = usage_log
        self.temp_dir = temp_dir
        self.uploads = uploads
        if uploads is not None:
            cache.add_sweep_task(self.sweep_unused_uploads)
        cache.add_sweep_task(self.sweep_temp_dir)
        if prompt_embeddings is not None:
            cache.add_sweep_task(prompt_embeddings.sweep_expired)
        cache.add_sweep_task(TrimAfterFrees(lambda: cache.freed_png_bytes))

    def sweep_unused_uploads(self) -> int:
        """Delete uploads no request used in time; outputs own (and count) the ones they use."""
        assert self.uploads is not None
        return self.uploads.sweep(owned=self.cache.live_files())

    def sweep_temp_dir(self) -> int:
        """Delete temp files (outputs, uploads, downloads) older than the output lifetime, and
        hold the folder again if it was deleted from outside (zimage/privacy/temp_folder.py)."""
        keep_held(self.temp_dir)
        return delete_files_older_than(
            self.temp_dir, self.cache.ttl_s, keep=self.cache.live_files()
        )

    def start(self) -> None:
        self.cache.start_sweeper(SWEEP_INTERVAL_S)
        if self.usage_log is not None:
            self.usage_log.start_retention_job(RETENTION_INTERVAL_S)

    def stop(self) -> None:
        """Stop the timers and delete every output and temp file now."""
        self.cache.stop_sweeper()
        if self.usage_log is not None:
            self.usage_log.close()
        outputs = self.cache.purge_all()
        files = delete_tree_contents(self.temp_dir) if self.temp_dir.is_dir() else 0
        logger.info("shutdown: deleted %d outputs and %d temp files", outputs, files)
