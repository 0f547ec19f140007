"""Generated images: no metadata in the PNG, and the file stops being served within the lifetime
the notice announces."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from zimage.audit.client import OPTED_OUT
from zimage.audit.events import GradioCopy, files_in
from zimage.audit.model import AuditError, Promise, Result
from zimage.audit.progress import Waits
from zimage.audit.served_policy import ServedPolicy

NO_METADATA = Promise(
    "outputs.no_metadata",
    "Generated PNGs carry no metadata (no text, EXIF, time or profile chunks)",
    "README Privacy; PRIVACY.md §7",
)
LIFETIME = Promise(
    "outputs.lifetime",
    "A generated image stops being served within the lifetime the notice announces",
    "PRIVACY.md §7",
)
PROMISES = (NO_METADATA, LIFETIME)

# The cheapest image a visitor can ask for.
SMALL_IMAGE = {"resolution": "256x256", "steps": 1, "seed": 1}
PROMPT = "a lighthouse on a cliff, audit"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Chunks that hold the picture and how to show it; anything else is metadata.
IMAGE_CHUNKS = frozenset(
    {
        b"IHDR",
        b"PLTE",
        b"IDAT",
        b"IEND",
        b"tRNS",
        b"gAMA",
        b"cHRM",
        b"sRGB",
        b"sBIT",
        b"bKGD",
        b"pHYs",
    }
)
TEXT_CHUNKS = frozenset({b"tEXt", b"zTXt", b"iTXt"})
# A timer deletes expired outputs: allow it this long past the lifetime.
LATE_S = 10.0
POLL_S = 1.0


@dataclass(frozen=True)
class MadeImage:
    """An image the audit had made: where it is served, where the copy keeps it, when the
    answer came, its bytes."""

    path: str
    server_path: str
    made_at: float
    png: bytes

    @property
    def server_folder(self) -> str:
        """The folder the copy serves its files from (each file has a folder of its own)."""
        return str(PurePosixPath(self.server_path).parent.parent)


def make_image(copy: GradioCopy, waits: Waits) -> MadeImage:
    """One small image through the script endpoint `/text_to_image`, fetched at once."""
    data = copy.inputs("text_to_image", {"prompt": PROMPT, **SMALL_IMAGE})
    output = copy.succeeded("text_to_image", data, OPTED_OUT)
    made_at = waits.clock()
    file = first_file(output)
    path = copy.file_path(file)
    answer = copy.client.get(path)
    if answer.status_code != 200:
        raise AuditError(f"the new image was not served: {path} answered {answer.status_code}")
    return MadeImage(path, file["path"], made_at, answer.content)


def first_file(output: list[Any]) -> dict[str, Any]:
    for file in files_in(output):
        return file
    raise AuditError("the answer held no file")


def png_chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of each chunk of a PNG file."""
    if not png.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    chunks, offset = [], len(PNG_SIGNATURE)
    while offset + 8 <= len(png):
        length, kind = struct.unpack(">I4s", png[offset : offset + 8])
        chunks.append((kind, png[offset + 8 : offset + 8 + length]))
        offset += 12 + length
    return chunks


def check_metadata(image: MadeImage) -> Result:
    try:
        chunks = png_chunks(image.png)
    except ValueError:
        return NO_METADATA.not_checked(f"the output is not a PNG file ({image.png[:8]!r})")
    extra = [_described(kind, data) for kind, data in chunks if kind not in IMAGE_CHUNKS]
    names = ", ".join(dict.fromkeys(kind.decode("latin-1") for kind, _ in chunks))
    if extra:
        return NO_METADATA.broken(f"{len(image.png)} bytes; metadata chunks: {'; '.join(extra)}")
    return NO_METADATA.kept(f"{len(image.png)} bytes; chunks: {names}")


def _described(kind: bytes, data: bytes) -> str:
    name = kind.decode("latin-1")
    if kind in TEXT_CHUNKS:
        keyword = data.split(b"\0", 1)[0].decode("latin-1")
        return f"{name} {keyword!r}"
    return f"{name} ({len(data)} bytes)"


def check_lifetime(
    copy: GradioCopy,
    image: MadeImage,
    policy: ServedPolicy,
    waits: Waits,
    wait_limit_s: float | None,
) -> Result:
    """Wait for the announced lifetime, then poll until the image is gone or `LATE_S` passed.
    An image whose lifetime passed during the other checks is replaced by a new one first. With
    a `wait_limit_s`, a longer wait is skipped."""
    ttl = policy.output_ttl_s
    if ttl is None:
        return LIFETIME.not_checked("the notice announces no lifetime for generated images")
    if wait_limit_s is not None and ttl + LATE_S > wait_limit_s:
        return LIFETIME.not_checked(
            f"skipped (--quick): the announced lifetime is {ttl:g} s, a wait over the "
            f"{wait_limit_s:g} s limit"
        )
    if waits.clock() >= image.made_at + ttl:
        image = make_image(copy, waits)
    waits.until(image.made_at + ttl, "waiting for the announced image lifetime", image.made_at)
    while True:
        status = copy.client.get(image.path).status_code
        age = waits.clock() - image.made_at
        if age > ttl + LATE_S:
            if status == 200:
                return LIFETIME.broken(f"announced {ttl:g} s; still served {age:.0f} s after")
            return LIFETIME.not_checked(
                f"the audit looked only {age:.0f} s after (announced {ttl:g} s)"
            )
        if status != 200:
            return LIFETIME.kept(f"announced {ttl:g} s; answered {status} {age:.0f} s after")
        waits.pause(POLL_S)
