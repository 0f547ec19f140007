"""Peak memory of reading one upload: the worst inputs each format allows, measured alone.

    python bench/decode_peak.py FILE [--edit-max-mp 1.0] [--app-root CHECKOUT]

runs `load_input_image` on FILE in this fresh process and prints one JSON line: the peak
resident memory it added over the process after its imports (VmHWM minus VmRSS before, in
MB), and "ok WxH" or the refusal message. `worst_cases(folder)` writes, for the
default limits, the largest image of each kind that is still accepted; `measure(path)` runs
this script on one of them in a subprocess.
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
MB = 1e6


@dataclass(frozen=True)
class Case:
    """One kind of input and the side of its largest accepted square at the default limits."""

    name: str
    file_name: str
    side: int
    write: Callable[[Path, int], None]


def _save(mode: str, colour: object, **params: object) -> Callable[[Path, int], None]:
    def write(path: Path, side: int) -> None:
        Image.new(mode, (side, side), colour).save(path, **params)

    return write


def _gif(path: Path, side: int) -> None:
    Image.new("P", (side, side), 3).save(path)


def _rle8_bmp(path: Path, side: int) -> None:
    """An 8-bit run-length BMP (Pillow writes none): tiny on disk, `side` squared pixels."""
    runs = b"".join(bytes((min(255, side - x), 1)) for x in range(0, side, 255))
    pixels = (runs + b"\x00\x00") * side + b"\x00\x01"  # end of each line, end of bitmap
    palette = b"".join(bytes((i, i, i, 0)) for i in range(256))
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, side, side, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    header = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
    path.write_bytes(header + info + palette + pixels)


# Sides from zimage.service.images' memory model at ZIMAGE_EDIT_MAX_MP=1 (192 MiB for a decode): each
# the largest square that model accepts, give or take 1%; the baseline JPEG is at the pixel
# limit (it is decoded at 1/8 scale).
CASES = [
    Case("PNG RGBA 8-bit", "rgba.png", 5000, _save("RGBA", (90, 140, 200, 128), compress_level=1)),
    Case("PNG grey 16-bit", "grey16.png", 5780, _save("I;16", 40000, compress_level=1)),
    Case(
        "TIFF float32, one strip",
        "float.tif",
        4096,
        _save("F", 0.5, compression="tiff_deflate", strip_size=2**31),
    ),
    Case(
        "TIFF grey 16-bit, one strip",
        "grey16.tif",
        3780,
        _save("I;16", 40000, compression="tiff_deflate", strip_size=2**31),
    ),
    Case(
        "JPEG progressive 4:4:4",
        "progressive.jpg",
        5600,
        _save("RGB", (90, 140, 200), progressive=True, subsampling=0, quality=90),
    ),
    Case("JPEG baseline", "baseline.jpg", 8192, _save("RGB", (90, 140, 200), quality=90)),
    Case(
        "WebP RGBA lossless", "rgba.webp", 3160, _save("RGBA", (90, 140, 200, 128), lossless=True)
    ),
    Case("GIF", "palette.gif", 6300, _gif),
    Case("BMP 8-bit run-length", "rle8.bmp", 6300, _rle8_bmp),
]


# The inputs issue 13 found: each far beyond what an edit uses, and refused now.
OVERSIZED = [
    Case("PNG RGBA 8192x8192", "huge-rgba.png", 8192, CASES[0].write),
    Case("TIFF float32 8192x8192", "huge-float.tif", 8192, CASES[2].write),
]


def worst_cases(folder: Path, cases: list[Case] = CASES) -> dict[str, Path]:
    """Write every case into `folder` (once); name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for case in cases:
        path = folder / case.file_name
        if not path.exists():
            case.write(path, case.side)
        paths[case.name] = path
    return paths


def measure(
    path: Path, edit_max_mp: float = 1.0, app_root: Path = ROOT, timeout_s: float = 300
) -> dict[str, object]:
    """Run this script on `path` in a fresh interpreter, reading with `app_root`'s zimage."""
    completed = subprocess.run(
        [
            sys.executable,
            __file__,
            str(path),
            "--edit-max-mp",
            str(edit_max_mp),
            "--app-root",
            str(app_root),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _memory_status_bytes(field: str) -> int:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the process that forked us.
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--edit-max-mp", type=float, default=1.0)
    parser.add_argument("--app-root", type=Path, default=ROOT, help="checkout whose zimage reads")
    args = parser.parse_args()
    sys.path.insert(0, str(args.app_root))
    from zimage.service.images import ImageInputError, ImageLimits, load_input_image

    limits = ImageLimits(max_megapixels=args.edit_max_mp)
    before = _memory_status_bytes("VmRSS")
    try:
        image = load_input_image(args.file, limits)
        outcome = f"ok {image.width}x{image.height}"
    except ImageInputError as error:
        outcome = f"refused: {error}"
    peak = _memory_status_bytes("VmHWM")
    result = {
        "file": args.file.name,
        "file_mb": round(args.file.stat().st_size / MB, 2),
        "peak_added_mb": round(max(0, peak - before) / MB, 1),
        "outcome": outcome,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
