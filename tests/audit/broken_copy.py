"""`python tests/audit/broken_copy.py BREAKAGE app.py`: the app with one promise deliberately broken,
for the audit's tests (tests/audit/test_audit_broken_copies.py), started with tests/launcher.py's
`command=`. Each breakage patches one thing before app.py runs; zimage/ itself is untouched.
"""

from __future__ import annotations

import runpy
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
THIRD_PARTY_SCRIPT = "https://cdn.example.com/tracker.js"
# How much longer than announced the copy with a longer lifetime keeps its images.
LONGER = 20


def longer_lifetime() -> None:
    """Images live LONGER times the lifetime the notice announces."""
    from zimage.privacy.output_cache import OutputCache

    original = OutputCache.__init__

    def keeping_longer(self: OutputCache, *args: object, **options: object) -> None:
        original(self, *args, **options)  # type: ignore[arg-type]
        self.ttl_s *= LONGER

    OutputCache.__init__ = keeping_longer  # type: ignore[method-assign]


def metadata_in_pngs() -> None:
    """Every PNG gets a text chunk naming its maker."""
    import struct
    import zlib

    from zimage.service import service

    original = service.encode_png
    payload = b"Software\0zimage with metadata"
    chunk = struct.pack(">I", len(payload)) + b"tEXt" + payload
    chunk += struct.pack(">I", zlib.crc32(b"tEXt" + payload))

    def with_text(image: object) -> bytes:
        png = original(image)  # type: ignore[arg-type]
        return png[:33] + chunk + png[33:]  # after the signature and IHDR

    service.encode_png = with_text


def gpc_ignored() -> None:
    """Sec-GPC: 1 is no longer an opt-out (DNT: 1 still is)."""
    from zimage.privacy import policy

    policy._OPT_OUT_HEADERS = ("dnt",)


def third_party_script() -> None:
    """The page's head loads a script from another host."""
    from zimage import page

    page.PAGE_HEAD += f'<script src="{THIRD_PARTY_SCRIPT}"></script>'


def changed_policy_text() -> None:
    """The English policy shown says 900 days where PRIVACY.md says 90."""
    from zimage.page import language

    text = (ROOT / "PRIVACY.md").read_text(encoding="utf-8").replace("90 days", "900 days")
    changed = Path(tempfile.mkdtemp(prefix="policy-")) / "PRIVACY.md"
    changed.write_text(text, encoding="utf-8")
    language.POLICY_FILES["en"] = changed


BREAKAGES: dict[str, Callable[[], None]] = {
    "lifetime": longer_lifetime,
    "metadata": metadata_in_pngs,
    "gpc": gpc_ignored,
    "third_party": third_party_script,
    "policy_text": changed_policy_text,
}


if __name__ == "__main__":
    breakage, script = sys.argv[1], sys.argv[2]
    sys.path[0] = str(ROOT)  # as `python app.py` has it, not this folder
    BREAKAGES[breakage]()
    sys.argv = [script]
    runpy.run_path(script, run_name="__main__")
