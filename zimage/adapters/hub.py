"""Adapters from the Hugging Face Hub: the operator's at start, and visitor-named ones when
ZIMAGE_LORA_FROM_HUB is on.

A visitor-named adapter is fetched by one background thread, never inside the GPU slot: the
request waits for it (seeing the bytes come in) or leaves, and the download goes on for whoever
asks next. Each file is at most `max_bytes` (checked against the Hub's listing, then again while
the bytes arrive); the last `keep` files are kept on disk and the least recently used goes
first. Only safetensors files are fetched. All traffic goes through huggingface_hub's own client
(HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE apply as everywhere).
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import re
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi, hf_hub_download, hf_hub_url
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import build_hf_headers, get_session

from zimage.adapters.catalog import SAFETENSORS_SUFFIX
from zimage.engine.errors import Cancelled, EngineError
from zimage.tools.checks import InputError

logger = logging.getLogger(__name__)

MB = 1024 * 1024
# How often a waiting request looks at the download (progress, a stop asked for).
WAIT_POLL_S = 0.5
CHUNK_BYTES = 1024 * 1024
_NOT_ON_HUB = (RepositoryNotFoundError, RevisionNotFoundError, GatedRepoError, EntryNotFoundError)


def operator_file(repo_id: str, filename: str) -> str:
    """A file of the operator's Hub adapter, from the local Hub cache (README's
    `preload_from_hub` puts it there at build) or downloaded into it at start."""
    return hf_hub_download(repo_id, filename)


@dataclass
class _Download:
    """One file coming in, as waiting requests see it."""

    done_bytes: int = 0
    total_bytes: int = 0


class HubAdapters:
    """Visitor-named adapters fetched from the Hub into `folder`."""

    def __init__(self, folder: Path, max_bytes: int, keep: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.keep = keep
        # What an earlier process left (one that was killed) is nobody's: start empty.
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        self._lock = threading.Lock()
        self._files: OrderedDict[str, str] = OrderedDict()  # Hub id -> file, least recent first
        self._downloads: dict[str, tuple[_Download, concurrent.futures.Future[str]]] = {}
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="hub-adapters")

    def fetch(
        self,
        repo_id: str,
        progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> str:
        """The local file of the adapter `repo_id`, fetched first if it is not kept; reports
        (bytes, total) while it comes; Cancelled when `should_stop()` turns true meanwhile."""
        with self._lock:
            kept = self._files.get(repo_id)
            if kept is not None and Path(kept).is_file():
                self._files.move_to_end(repo_id)
                return kept
            if repo_id not in self._downloads:
                download = _Download()
                future = self._worker.submit(self._download, repo_id, download)
                self._downloads[repo_id] = (download, future)
            download, future = self._downloads[repo_id]
        while True:
            try:
                return future.result(timeout=WAIT_POLL_S)
            except concurrent.futures.TimeoutError:
                if should_stop():
                    raise Cancelled() from None
                if progress is not None and download.total_bytes:
                    progress(download.done_bytes, download.total_bytes)

    def _download(self, repo_id: str, download: _Download) -> str:
        try:
            file = self._fetch_file(repo_id, download)
        finally:
            with self._lock:
                self._downloads.pop(repo_id, None)
        with self._lock:
            self._files[repo_id] = file
            while len(self._files) > self.keep:
                _, oldest = self._files.popitem(last=False)
                Path(oldest).unlink(missing_ok=True)
        return file

    def _fetch_file(self, repo_id: str, download: _Download) -> str:
        filename, size, revision = self._listed_file(repo_id)
        if size > self.max_bytes:
            raise InputError(
                f"The adapter {repo_id} is {size / MB:.0f} MB; this Space takes adapters of up to "
                f"{self.max_bytes / MB:.0f} MB."
            )
        download.total_bytes = size
        target = self.folder / f"{_safe(repo_id)}-{revision[:12]}{SAFETENSORS_SUFFIX}"
        partial = target.with_suffix(".part")
        url = hf_hub_url(repo_id, filename, revision=revision)
        try:
            with (
                get_session().stream(
                    "GET", url, headers=build_hf_headers(), follow_redirects=True, timeout=60
                ) as response,
                open(partial, "wb") as out,
            ):
                response.raise_for_status()
                for chunk in response.iter_bytes(CHUNK_BYTES):
                    download.done_bytes += len(chunk)
                    if download.done_bytes > self.max_bytes:
                        raise InputError(
                            f"The adapter {repo_id} is larger than the Hub said; this Space "
                            f"takes adapters of up to {self.max_bytes / MB:.0f} MB."
                        )
                    out.write(chunk)
            os.replace(partial, target)
        except InputError:
            raise
        except Exception as error:  # noqa: BLE001 - any network failure reads the same to a visitor
            logger.warning("a Hub adapter download failed: %s", error.__class__.__name__)
            raise EngineError(
                "The adapter could not be downloaded from the Hub. Please try again."
            ) from None
        finally:
            partial.unlink(missing_ok=True)
        return str(target)

    def _listed_file(self, repo_id: str) -> tuple[str, int, str]:
        """The repo's one safetensors file: (name, bytes, commit)."""
        try:
            info = HfApi().model_info(repo_id, files_metadata=True)
        except _NOT_ON_HUB:
            raise InputError(f"There is no public model {repo_id} on the Hub.") from None
        except (OfflineModeIsEnabled, LocalEntryNotFoundError):
            raise EngineError("This Space cannot reach the Hub now.") from None
        except Exception as error:  # noqa: BLE001 - network failures of every kind
            logger.warning("a Hub adapter lookup failed: %s", error.__class__.__name__)
            raise EngineError("The Hub could not be reached. Please try again.") from None
        weights = [
            sibling
            for sibling in info.siblings or []
            if sibling.rfilename.endswith(SAFETENSORS_SUFFIX)
        ]
        if len(weights) != 1:
            raise InputError(
                f"The model {repo_id} has {len(weights) or 'no'} .safetensors files; an adapter "
                "here is a repo with exactly one."
            )
        size = weights[0].size if weights[0].size is not None else self.max_bytes + 1
        return weights[0].rfilename, size, info.sha or "main"

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(self.folder, ignore_errors=True)


def _safe(repo_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "--", repo_id)
