"""Input image validation and normalisation, and metadata-free PNG output.

Every edit path reads user images through `load_input_image` / `load_mask`, so the
limits below (upload size, decompression bombs, minimum side, output megapixels) hold
for the UI and the API alike.
"""

from __future__ import annotations

import io
import math
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import ExifTags, Image, ImageChops

from zimage.presets import (
    DECODE_BYTES_PER_EDIT_MEGAPIXEL,
    DEFAULT_EDIT_MAX_MEGAPIXELS,
    DEFAULT_MAX_UPLOAD_MB,
    EDIT_MIN_SIDE,
    MAX_DECODE_BYTES,
    MAX_DECODE_PIXELS,
    SIZE_MULTIPLE,
)

_MB = 1024 * 1024
_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
_NOT_AN_IMAGE = "This file is not an image we can read (PNG, JPEG, WebP, BMP, GIF or TIFF)."
_DAMAGED = "The image file is damaged or incomplete."
# What Pillow's decoders raise on broken data (besides its own bomb error/warning).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)
# Modes Image.reduce cannot average (palette indices, 1-bit, 16-bit) and what they are
# converted to first, at full size ("P" with transparency becomes "RGBA").
_REDUCIBLE_MODE = {"P": "RGB", "PA": "RGBA", "1": "L", "I;16": "I", "I;16L": "I", "I;16B": "I"}
# The modes with an alpha band that the formats above decode to (TIFF's associated alpha comes
# as RGBA). Not every band called "A" is alpha: CIELab's is the green-red axis.
_WITH_ALPHA = ("RGBA", "LA", "PA")
# Decoders that hold whole-image buffers of their own beside Pillow's: libwebp's RGBA canvas,
# the frame it hands over as bytes and its conversion (measured: 16-17 bytes a pixel in all);
# libtiff's strip, which may be the whole image at up to 64 bits a sample.
_DECODER_BUFFER_BYTES_PER_PIXEL = {"WEBP": 12, "TIFF": 8}
# The EXIF orientation tag's values as the transposition that makes the image upright.
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

Source = str | os.PathLike[str] | bytes


class ImageInputError(ValueError):
    """A user-facing, readable reason why an input image was refused."""


class EmptyMaskError(ImageInputError):
    """The mask marks no pixel."""


@dataclass(frozen=True)
class ImageLimits:
    """Limits applied to every input image."""

    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * _MB
    max_megapixels: float = DEFAULT_EDIT_MAX_MEGAPIXELS  # normalised output is at most this
    max_decode_pixels: int = MAX_DECODE_PIXELS  # checked on the header, before decoding
    min_side: int = EDIT_MIN_SIDE

    @property
    def max_decode_bytes(self) -> int:
        """Memory a decode may take: a multiple of what the edit uses, and never above a cap."""
        return min(MAX_DECODE_BYTES, round(DECODE_BYTES_PER_EDIT_MEGAPIXEL * self.max_megapixels))


def load_input_image(source: Source, limits: ImageLimits = ImageLimits()) -> Image.Image:
    """Read, validate and normalise an input image to RGB with sides multiples of 16.

    The result is at most `limits.max_megapixels`, never upscaled, fully loaded, and
    carries no metadata. Raises ImageInputError with a readable reason otherwise.
    """
    im = _open(source, limits)
    w, h = im.size
    if min(w, h) < limits.min_side:
        raise ImageInputError(
            f"The image is {w}x{h} px; each side must be at least {limits.min_side} px."
        )
    tw, th = _target_size(w, h, limits)
    im = _decode(im, tw * th, limits)  # rebinding drops the full-size pixels
    im = _to_rgb(im)
    size = _target_size(im.width, im.height, limits)
    if im.size != size:
        # Resize (never crop) so that a mask drawn on the original maps onto the result
        # with a plain resize; flooring to 16 bends the aspect ratio by under 16 px a side.
        im = im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return _clean_copy(im)


def load_mask(
    source: Source | Image.Image,
    size: tuple[int, int],
    limits: ImageLimits = ImageLimits(),
) -> Image.Image:
    """Read a mask, binarise it to 0/255 and resize it to `size` (mode "L").

    A mask with transparency (e.g. a Gradio ImageEditor layer) is read from its alpha
    channel; a fully opaque one from its brightness. Raises ImageInputError if nothing
    is marked.
    """
    if isinstance(source, Image.Image):
        im = _upright(source, _orientation(source))
    else:
        im = _decode(_open(source, limits), size[0] * size[1], limits)
    try:
        if im.mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "L")
        if im.mode in _WITH_ALPHA:
            alpha = im.getchannel("A")
            marks = alpha if alpha.getextrema() != (255, 255) else im.convert("L")
        else:
            marks = im.convert("L")
    except ValueError as e:
        raise ImageInputError(f"This mask's colour mode ({im.mode}) is not supported.") from e
    marks = marks.point(lambda v: 255 if v >= 128 else 0)
    if marks.getextrema()[1] == 0:
        raise EmptyMaskError("The mask is empty: paint the area to change.")
    return _clean_copy(marks.resize(size, Image.Resampling.NEAREST))


def painted_mask(
    layers: Sequence[Source], size: tuple[int, int], limits: ImageLimits = ImageLimits()
) -> Image.Image | None:
    """The union of brush layers (e.g. Gradio ImageEditor's) as a mask; None if none is painted."""
    union: Image.Image | None = None
    for layer in layers:
        try:
            marks = load_mask(layer, size, limits)
        except EmptyMaskError:
            continue
        union = marks if union is None else ImageChops.lighter(union, marks)
    return union


def encode_png(image: Image.Image) -> bytes:
    """Encode as PNG with no metadata chunks; the same image always gives the same bytes."""
    clean = image.copy()
    clean.info = {}  # no text, ICC profile, transparency or EXIF from the source
    buf = io.BytesIO()
    # Level 1: a quarter of level 6's encoding time at 1 MP for ~20% larger files; it runs
    # inside the one-at-a-time GPU slot, so it delays the next request too.
    clean.save(buf, format="PNG", optimize=False, compress_level=1)
    return buf.getvalue()


def _read_bytes(source: Source, limits: ImageLimits) -> bytes:
    if isinstance(source, bytes):
        _check_upload_size(len(source), limits)
        return source
    try:
        with open(source, "rb") as f:
            _check_upload_size(os.fstat(f.fileno()).st_size, limits)
            data = f.read(limits.max_upload_bytes + 1)
    except OSError as e:
        raise ImageInputError("The image file could not be read.") from e
    _check_upload_size(len(data), limits)  # in case the file grew after the stat
    return data


def _check_upload_size(n: int, limits: ImageLimits) -> None:
    if n > limits.max_upload_bytes:
        raise ImageInputError(
            f"The image is {n / _MB:.1f} MB; the limit is {limits.max_upload_bytes / _MB:g} MB."
        )


def _open(source: Source, limits: ImageLimits) -> Image.Image:
    """Open lazily (header only) and refuse images that declare too many pixels."""
    data = _read_bytes(source, limits)
    if not data:
        raise ImageInputError(_NOT_AN_IMAGE)
    try:
        im = Image.open(io.BytesIO(data), formats=_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        # Pillow's own guard fired before ours could (only when warnings are errors, or
        # for sizes far above any sensible limit).
        raise ImageInputError(_too_many_pixels_message(None, limits)) from e
    except Image.UnidentifiedImageError as e:
        raise ImageInputError(_NOT_AN_IMAGE) from e
    except _DECODE_ERRORS as e:
        raise ImageInputError(_DAMAGED) from e
    if im.width * im.height > limits.max_decode_pixels:
        raise ImageInputError(_too_many_pixels_message(im.size, limits))
    return im


def _too_many_pixels_message(size: tuple[int, int] | None, limits: ImageLimits) -> str:
    limit = f"the limit is {limits.max_decode_pixels / 1e6:.1f} megapixels"
    if size is None:
        return f"The image declares too many pixels to open safely; {limit}."
    w, h = size
    return f"The image is {w}x{h} px ({w * h / 1e6:.1f} megapixels); {limit}."


def _decode(im: Image.Image, wanted_pixels: int, limits: ImageLimits) -> Image.Image:
    """Decode the first frame, shrunk early towards `wanted_pixels`, upright (EXIF).

    JPEG is decoded at 1/2, 1/4 or 1/8 scale where that still gives the wanted size;
    other formats are decoded whole and box-reduced by a whole factor at once, so the
    full-size pixels are held only once. Refused before decoding when that would take more
    memory than `limits.max_decode_bytes`.
    """
    coded_size = im.size
    if im.format == "JPEG":
        # draft never goes below the requested size.
        scale = math.sqrt(wanted_pixels / (im.width * im.height))
        im.draft(im.mode, (math.ceil(im.width * scale), math.ceil(im.height * scale)))
    needed = _decode_memory(im, coded_size)
    if needed > limits.max_decode_bytes:
        raise ImageInputError(_too_much_memory_message(coded_size, needed, limits))
    try:
        orientation = _orientation(im)
        im.load()
        factor = math.isqrt(im.width * im.height // max(wanted_pixels, 1))
        if factor >= 2:
            mode = im.mode
            if mode in _REDUCIBLE_MODE:
                im = im.convert(_reducible_mode(im))
            im = im.reduce(factor)
            if mode.startswith("I;16"):
                im = im.convert("I;16")  # so that _to_rgb still reads it as 16-bit
        return _upright(im, orientation)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageInputError(_too_many_pixels_message(None, limits)) from e
    except _DECODE_ERRORS as e:
        raise ImageInputError(_DAMAGED) from e


def _decode_memory(im: Image.Image, coded_size: tuple[int, int]) -> int:
    """Bytes that decoding an opened, not yet loaded image takes at its peak (an upper bound).

    Pillow holds 1 byte a pixel for modes 1, L and P, 2 for 16-bit grey and 4 for every
    other mode; modes that cannot be box-reduced are converted at full size first; reducing
    an image with alpha makes a premultiplied full-size copy; some decoders keep whole-image
    buffers of their own. `coded_size` is the size in the file, before a JPEG draft.
    """
    per_pixel = _stored_bytes_per_pixel(im.mode)
    reduced_mode = _reducible_mode(im)
    if reduced_mode != im.mode:
        per_pixel += _stored_bytes_per_pixel(reduced_mode)
    if reduced_mode in ("LA", "RGBA"):
        per_pixel += 4
    per_pixel += _DECODER_BUFFER_BYTES_PER_PIXEL.get(im.format or "", 0)
    needed = im.width * im.height * per_pixel
    if im.format == "JPEG" and im.info.get("progressive"):
        needed += _progressive_jpeg_coefficient_bytes(im, coded_size[0] * coded_size[1])
    return needed


def _reducible_mode(im: Image.Image) -> str:
    if im.mode == "P" and "transparency" in im.info:
        return "RGBA"
    return _REDUCIBLE_MODE.get(im.mode, im.mode)


def _stored_bytes_per_pixel(mode: str) -> int:
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode.startswith("I;16") else 4


def _progressive_jpeg_coefficient_bytes(im: Image.Image, coded_pixels: int) -> int:
    # libjpeg keeps every DCT coefficient (2 bytes) of a progressive image until its last
    # scan, whatever the draft scale; chroma planes may be subsampled (e.g. 4:2:0).
    layers = getattr(im, "layer", None) or [("", 1, 1, 0)] * len(im.getbands())
    h_max = max(layer[1] for layer in layers)
    v_max = max(layer[2] for layer in layers)
    share = sum(layer[1] * layer[2] for layer in layers) / (h_max * v_max)
    return math.ceil(coded_pixels * share * 2)


def _too_much_memory_message(size: tuple[int, int], needed: int, limits: ImageLimits) -> str:
    w, h = size
    scale = math.sqrt(limits.max_decode_bytes / needed)
    fits = f"{int(w * scale)}x{int(h * scale)}"
    return (
        f"The image is {w}x{h} px ({w * h / 1e6:.1f} megapixels); reading it "
        f"would take {needed / _MB:.0f} MB of memory; edits use at most "
        f"{limits.max_megapixels:g} MP, so the limit is "
        f"{limits.max_decode_bytes / _MB:.0f} MB. Please scale it down (to about {fits} px) "
        "and try again."
    )


def _orientation(im: Image.Image) -> int:
    return int(im.getexif().get(ExifTags.Base.Orientation, 1))


def _upright(im: Image.Image, orientation: int) -> Image.Image:
    method = _UPRIGHT.get(orientation)
    return im.transpose(method) if method is not None else im


def _to_rgb(im: Image.Image) -> Image.Image:
    """Convert any mode to RGB; transparent areas become white."""
    if im.mode in _WITH_ALPHA or "transparency" in im.info:
        rgba = im if im.mode == "RGBA" else im.convert("RGBA")
        rgb = Image.new("RGB", im.size, (255, 255, 255))
        rgb.paste(rgba, mask=rgba.getchannel("A"))
        return rgb
    if im.mode.startswith("I;16"):
        return _gray_to_rgb(np.asarray(im).astype(np.uint16) >> 8)
    if im.mode == "I":
        # 32-bit integer images come from 16-bit sources in practice; keep 8-bit ones as is.
        a = np.asarray(im).clip(0, 65535)
        if a.max() > 255:
            a >>= 8
        return _gray_to_rgb(a)
    if im.mode == "F":
        # In place: a float image is 4 bytes a pixel, and each copy would count.
        a = np.nan_to_num(np.asarray(im), nan=0.0, posinf=255.0, neginf=0.0)
        if a.max() <= 1.0:  # float images are usually 0..1; anything larger is read as 0..255
            a *= 255
        return _gray_to_rgb(np.rint(a.clip(0, 255, out=a), out=a))
    try:
        return im.convert("RGB")
    except ValueError as e:
        raise ImageInputError(f"This image's colour mode ({im.mode}) is not supported.") from e


def _gray_to_rgb(a: np.ndarray) -> Image.Image:
    return Image.fromarray(a.astype(np.uint8)).convert("RGB")


def _target_size(w: int, h: int, limits: ImageLimits) -> tuple[int, int]:
    """Scale down to the megapixel cap (never up), then floor both sides to 16."""
    scale = min(1.0, math.sqrt(limits.max_megapixels * 1e6 / (w * h)))
    tw = int(w * scale) // SIZE_MULTIPLE * SIZE_MULTIPLE
    th = int(h * scale) // SIZE_MULTIPLE * SIZE_MULTIPLE
    if min(tw, th) < limits.min_side:
        # Only very elongated images get here: scaling to the cap shrinks the short side.
        raise ImageInputError(
            f"The image is {w}x{h} px, too elongated: scaled to "
            f"{limits.max_megapixels:g} megapixels its short side would be under "
            f"{limits.min_side} px."
        )
    return tw, th


def _clean_copy(im: Image.Image) -> Image.Image:
    """A fresh image with the same pixels and no info, EXIF or file handle."""
    return Image.frombytes(im.mode, im.size, im.tobytes())
