"""Tests for zimage.service.images: every fixture is built here with Pillow."""

from __future__ import annotations

import contextlib
import io
import os
import struct
import threading
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile
from PIL.PngImagePlugin import PngInfo

from tests.launcher import WAIT_S
from zimage.service.images import (
    ImageInputError,
    ImageLimits,
    encode_png,
    load_input_image,
    load_mask,
    painted_mask,
)

MB = 1024 * 1024
RED = (200, 30, 60)


def encode(im: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **params)
    return buf.getvalue()


def solid(size: tuple[int, int], colour=RED, mode: str = "RGB") -> Image.Image:
    return Image.new(mode, size, colour)


def noise(size: tuple[int, int], seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG declaring the given size (valid IHDR) whose pixel data is missing."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", b"")


def png_chunk_types(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    types, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        types.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return types


def centre(im: Image.Image) -> tuple[int, ...]:
    return im.getpixel((im.width // 2, im.height // 2))


def close(a, b, tol: int) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


# --- formats -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "params", "tol"),
    [
        ("PNG", {}, 0),
        ("JPEG", {"quality": 95}, 6),
        ("WEBP", {"quality": 95}, 6),
        ("BMP", {}, 0),
        ("GIF", {}, 0),
        ("TIFF", {}, 0),
    ],
)
@pytest.mark.parametrize("as_path", [False, True])
def test_each_format_is_read(tmp_path, fmt, params, tol, as_path):
    data = encode(solid((128, 96)), fmt, **params)
    source = data
    if as_path:
        source = tmp_path / f"in.{fmt.lower()}"
        source.write_bytes(data)
    out = load_input_image(source)
    assert out.mode == "RGB"
    assert out.size == (128, 96)
    assert close(centre(out), RED, tol)


def test_animated_gif_gives_first_frame():
    frames = [solid((96, 96), c) for c in [(255, 0, 0), (0, 0, 255), (0, 255, 0)]]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    assert centre(load_input_image(data)) == (255, 0, 0)


# --- modes -------------------------------------------------------------------------


def half_transparent(mode: str, opaque) -> Image.Image:
    """Left half fully transparent (with black colour), right half `opaque`."""
    im = Image.new(mode, (128, 64), 0)
    im.paste(opaque, (64, 0, 128, 64))
    return im


def p_with_transparency() -> Image.Image:
    im = Image.new("P", (128, 64), 0)
    im.putpalette([0, 0, 0, 10, 200, 30] + [0] * (256 * 3 - 6))
    im.paste(1, (64, 0, 128, 64))
    im.info["transparency"] = 0
    return im


def i16(value: int) -> Image.Image:
    return Image.fromarray(np.full((64, 128), value, dtype=np.uint16))


@pytest.mark.parametrize(
    ("im", "fmt", "left", "right"),
    [
        (half_transparent("RGBA", (10, 200, 30, 255)), "PNG", (255, 255, 255), (10, 200, 30)),
        (half_transparent("LA", (50, 255)), "PNG", (255, 255, 255), (50, 50, 50)),
        (p_with_transparency(), "PNG", (255, 255, 255), (10, 200, 30)),
        (solid((128, 64), 100, "L"), "PNG", (100,) * 3, (100,) * 3),
        (half_transparent("1", 1), "PNG", (0, 0, 0), (255, 255, 255)),
        (solid((128, 64), (0, 255, 255, 0), "CMYK"), "TIFF", (255, 0, 0), (255, 0, 0)),
        (i16(32768), "PNG", (128,) * 3, (128,) * 3),
        (i16(65535), "PNG", (255,) * 3, (255,) * 3),
        (i16(256), "TIFF", (1,) * 3, (1,) * 3),
        (solid((128, 64), 40000, "I"), "TIFF", (156,) * 3, (156,) * 3),
        (solid((128, 64), 0.5, "F"), "TIFF", (128,) * 3, (128,) * 3),
    ],
    ids=[
        "RGBA",
        "LA",
        "P+transparency",
        "L",
        "1",
        "CMYK",
        "I;16-mid",
        "I;16-max",
        "I;16-low",
        "I",
        "F",
    ],
)
def test_modes_become_rgb(im, fmt, left, right):
    data = encode(im, fmt)
    out = load_input_image(data)
    assert out.mode == "RGB"
    assert out.getpixel((10, 32)) == left
    assert out.getpixel((100, 32)) == right


def test_exif_orientation_is_applied_and_dropped():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    im = Image.new("RGB", (128, 64), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 64, 64))  # red on the left of the stored pixels
    out = load_input_image(encode(im, "JPEG", exif=exif, quality=95))
    assert out.size == (64, 128)
    assert close(out.getpixel((32, 16)), (255, 0, 0), 8)  # left became top
    assert out.info == {}
    assert not out.getexif()


def test_large_rotated_jpeg_is_decoded_small_and_oriented():
    exif = Image.Exif()
    exif[0x0112] = 6
    out = load_input_image(encode(solid((2400, 1200)), "JPEG", exif=exif, quality=90))
    assert out.size == (704, 1408)
    assert close(centre(out), RED, 6)


def test_result_is_loaded_and_carries_no_metadata(tmp_path):
    info = PngInfo()
    info.add_text("prompt", "secret")
    path = tmp_path / "in.png"
    path.write_bytes(encode(solid((64, 64)), "PNG", pnginfo=info, dpi=(300, 300)))
    out = load_input_image(path)
    path.unlink()
    assert out.info == {}
    assert out.getpixel((0, 0)) == RED


# --- rejections --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"hello, this is a text file\n", "not an image we can read"),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "not an image we can read"),
        (b"", "not an image we can read"),
        (encode(solid((64, 64)), "ICO"), "not an image we can read"),  # readable, not allowed
        (encode(noise((256, 256)), "PNG")[:20_000], "damaged or incomplete"),
        (encode(noise((256, 256)), "JPEG")[:5_000], "damaged or incomplete"),
        (png_header_only(256, 256) + b"\x00garbage" * 50, "damaged or incomplete"),
        (encode(solid((40, 500)), "PNG"), "The image is 40x500 px; each side must be at least 64"),
        (encode(solid((70, 20000), 255, "L"), "PNG"), "too elongated"),
    ],
    ids=[
        "text",
        "pdf",
        "empty",
        "ico",
        "truncated-png",
        "truncated-jpeg",
        "garbage-png",
        "too-small",
        "elongated",
    ],
)
def test_bad_inputs_are_refused_readably(data, message):
    with pytest.raises(ImageInputError, match=message):
        load_input_image(data)


def test_corrupted_png_data_is_refused():
    data = bytearray(encode(noise((128, 128)), "PNG"))
    data[200:260] = b"\xff" * 60  # inside the IDAT chunk
    with pytest.raises(ImageInputError, match="damaged or incomplete"):
        load_input_image(bytes(data))
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_upload_size_limit_is_checked_on_path_without_reading(tmp_path):
    path = tmp_path / "huge.png"
    with open(path, "wb") as f:
        f.truncate(int(25.3 * MB))  # sparse: nothing is written or read
    with pytest.raises(ImageInputError, match=r"^The image is 25\.3 MB; the limit is 20 MB\.$"):
        load_input_image(path)


def test_upload_size_limit_on_bytes():
    data = encode(noise((128, 128)), "PNG")
    with pytest.raises(ImageInputError, match="the limit is"):
        load_input_image(data, ImageLimits(max_upload_bytes=len(data) - 1))
    assert load_input_image(data, ImageLimits(max_upload_bytes=len(data))).size == (128, 128)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(ImageInputError, match="could not be read"):
        load_input_image(tmp_path / "nope.png")


@pytest.fixture
def forbid_decoding(monkeypatch):
    """Call to make any later pixel decoding fail the test."""

    def fail(self, *args, **kwargs):
        raise AssertionError("pixels were decoded")

    def forbid():
        monkeypatch.setattr(ImageFile.ImageFile, "load", fail)
        monkeypatch.setattr(Image.Image, "load", fail)

    return forbid


def test_bomb_is_refused_before_decoding(forbid_decoding):
    data = encode(solid((200, 150)), "PNG")
    forbid_decoding()
    with pytest.raises(ImageInputError, match=r"200x150 px \(0\.0 megapixels\)"):
        load_input_image(data, ImageLimits(max_decode_pixels=100 * 100))


def test_bomb_header_under_pillows_own_limit_is_refused(forbid_decoding):
    forbid_decoding()
    # 81 MP: above our 64 MiB-pixel limit, below Pillow's warning threshold.
    with pytest.raises(ImageInputError, match=r"9000x9000 px \(81\.0 megapixels\)"):
        load_input_image(png_header_only(9000, 9000))


def test_pillows_bomb_error_becomes_readable(forbid_decoding):
    forbid_decoding()
    with pytest.raises(ImageInputError, match="too many pixels"):
        load_input_image(png_header_only(100_000, 100_000))


def test_pillows_bomb_warning_as_error_becomes_readable():
    limits = ImageLimits(max_decode_pixels=10**9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageInputError, match="too many pixels"):
            load_input_image(png_header_only(10_000, 10_000), limits)
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # untouched


# --- scaling -----------------------------------------------------------------------


def test_wide_image_is_scaled_to_the_cap():
    out = load_input_image(encode(solid((3000, 1000)), "PNG"))
    w, h = out.size
    assert w % 16 == 0 and h % 16 == 0
    assert w * h <= 1_000_000
    assert abs((w / h) / 3.0 - 1) < 0.02
    assert centre(out) == RED


@pytest.mark.parametrize(
    ("size", "limits", "expected"),
    [
        ((640, 480), ImageLimits(), (640, 480)),
        ((650, 490), ImageLimits(), (640, 480)),
        ((100, 70), ImageLimits(), (96, 64)),
        ((1000, 1000), ImageLimits(), (992, 992)),
        ((2000, 1000), ImageLimits(max_megapixels=0.5), (992, 496)),
    ],
)
def test_output_sizes(size, limits, expected):
    assert load_input_image(encode(solid(size), "PNG"), limits).size == expected


def test_image_already_in_bounds_keeps_its_pixels():
    im = noise((640, 480))
    out = load_input_image(encode(im, "PNG"))
    assert np.array_equal(np.asarray(out), np.asarray(im))


# --- masks -------------------------------------------------------------------------


def test_mask_is_binarised_and_resized():
    gradient = np.tile(np.arange(256, dtype=np.uint8), (100, 1))
    data = encode(Image.fromarray(gradient), "PNG")
    out = load_mask(data, (128, 64))
    assert out.mode == "L" and out.size == (128, 64)
    values = np.asarray(out)
    assert set(np.unique(values)) == {0, 255}
    assert values[:, :63].max() == 0 and values[:, 65:].min() == 255


def test_alpha_strokes_are_the_mark():
    # A Gradio ImageEditor layer: transparent, with black (opaque) strokes.
    layer = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    layer.paste((0, 0, 0, 255), (20, 30, 60, 70))
    out = np.asarray(load_mask(encode(layer, "PNG"), (100, 100)))
    expected = np.zeros((100, 100), dtype=np.uint8)
    expected[30:70, 20:60] = 255
    assert np.array_equal(out, expected)


def test_opaque_rgba_mask_uses_brightness():
    mask = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    mask.paste((255, 255, 255, 255), (0, 0, 32, 64))
    out = np.asarray(load_mask(mask, (64, 64)))
    assert out[:, :32].min() == 255 and out[:, 32:].max() == 0


def test_mask_accepts_a_pil_image():
    mask = Image.new("L", (32, 32), 0)
    mask.paste(200, (0, 0, 16, 16))
    out = load_mask(mask, (64, 64))
    assert out.getpixel((0, 0)) == 255 and out.getpixel((40, 40)) == 0
    assert out.info == {}


@pytest.mark.parametrize(
    "mask",
    [
        Image.new("L", (64, 64), 0),
        Image.new("L", (64, 64), 127),
        Image.new("RGBA", (64, 64), (255, 255, 255, 0)),  # white but fully transparent
    ],
    ids=["black", "below-threshold", "transparent-white"],
)
def test_empty_mask_is_refused(mask):
    with pytest.raises(ImageInputError, match="The mask is empty: paint the area to change"):
        load_mask(encode(mask, "PNG"), (64, 64))


def test_mask_file_checks_apply():
    with pytest.raises(ImageInputError, match="not an image we can read"):
        load_mask(b"not an image", (64, 64))
    with pytest.raises(ImageInputError, match="the limit is"):
        load_mask(encode(solid((64, 64)), "PNG"), (64, 64), ImageLimits(max_upload_bytes=10))


# --- PNG output --------------------------------------------------------------------


def test_encode_png_has_no_metadata_and_is_deterministic():
    info = PngInfo()
    info.add_text("prompt", "secret")
    info.add_itxt("comment", "more", zip=True)
    exif = Image.Exif()
    exif[0x010E] = "description"
    src = Image.open(io.BytesIO(encode(noise((64, 48)), "PNG", pnginfo=info, exif=exif)))
    src.load()
    assert "prompt" in src.info  # the source really carries metadata

    data = encode_png(src)
    assert set(png_chunk_types(data)) <= {b"IHDR", b"IDAT", b"IEND"}
    assert encode_png(src) == data
    assert encode_png(src.copy()) == data
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), np.asarray(src))


# --- decode memory -----------------------------------------------------------------


def test_huge_rgba_png_is_refused_before_decoding_with_the_memory_it_would_take(
    forbid_decoding,
):
    # 8192x8192 RGBA: a few hundred KB on disk, 256 MiB as pixels, 256 MiB more to box-reduce.
    data = encode(Image.new("RGBA", (8192, 8192), (90, 140, 200, 128)), "PNG", compress_level=9)
    assert len(data) < 1 * MB
    forbid_decoding()
    with pytest.raises(
        ImageInputError,
        match=r"^The image is 8192x8192 px \(67\.1 megapixels\); reading it would take 512 MB "
        r"of memory; edits use at most 1 MP, so the limit is 192 MB\. "
        r"Please scale it down \(to about 5016x5016 px\) and try again\.$",
    ):
        load_input_image(data)


@pytest.mark.parametrize(
    ("mode", "fmt", "params", "largest_side"),
    [
        ("F", "TIFF", {"compression": "tiff_deflate"}, 4096),  # 4 + libtiff's 8 bytes a pixel
        ("I;16", "PNG", {}, 5792),  # 2 + 4 to reduce as 32-bit
        ("RGB", "WEBP", {"lossless": True}, 3547),  # 4 + libwebp's 12
        ("P", "GIF", {}, 6345),  # 1 + 4 to reduce as RGB
    ],
)
def test_the_decode_limit_counts_bytes_per_pixel_of_the_mode(
    forbid_decoding, mode, fmt, params, largest_side
):
    # The largest accepted square goes on to decoding, the next size up is refused before it.
    largest = encode(Image.new(mode, (largest_side, largest_side)), fmt, **params)
    too_big = encode(Image.new(mode, (largest_side + 16, largest_side + 16)), fmt, **params)
    assert Image.open(io.BytesIO(largest)).mode == mode
    forbid_decoding()
    with pytest.raises(AssertionError, match="pixels were decoded"):
        load_input_image(largest)
    with pytest.raises(ImageInputError, match="reading it would take"):
        load_input_image(too_big)


def test_the_decode_limit_follows_the_edit_size(forbid_decoding):
    data = encode(Image.new("RGBA", (3000, 3000), (1, 2, 3, 4)), "PNG")
    small_edits = ImageLimits(max_megapixels=0.25)  # 48 MiB: 6 MP of RGBA
    forbid_decoding()
    with pytest.raises(ImageInputError, match=r"at most 0\.25 MP, so the limit is 48 MB"):
        load_input_image(data, small_edits)


def test_large_images_are_box_reduced_before_conversion():
    # 16-bit grey and palette images must be widened before Image.reduce can average them.
    grey16 = Image.fromarray(np.full((2400, 3200), 51400, dtype=np.uint16))
    out = load_input_image(encode(grey16, "PNG"))
    assert out.size == (1152, 864)
    assert centre(out) == (200, 200, 200)
    palette = Image.new("P", (3200, 2400), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30])
    assert centre(load_input_image(encode(palette, "GIF"))) == (10, 200, 30)
    transparent = p_with_transparency().resize((3200, 1600), Image.Resampling.NEAREST)
    out = load_input_image(encode(transparent, "PNG"))
    assert out.getpixel((10, 300)) == (255, 255, 255) and close(
        out.getpixel((out.width - 10, 300)), (10, 200, 30), 1
    )


def test_orientation_survives_the_reduction():
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 degrees counter-clockwise to display
    im = Image.new("RGB", (4000, 2000), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 2000, 2000))  # red on the left of the stored pixels
    out = load_input_image(encode(im, "PNG", exif=exif))
    assert out.size == (704, 1408)
    assert out.getpixel((350, 1300)) == (255, 0, 0)  # left became bottom
    assert out.getpixel((350, 100)) == (0, 0, 255)


# --- promises the mutation run found untested (issue 18) ----------------------------------------

TINY_DECODE = ImageLimits(max_megapixels=0.001)  # a decode limit of about 0.2 MB


def exif_orientation(value: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif


def stripes(size: tuple[int, int], rows: range, value: int = 255) -> Image.Image:
    im = Image.new("L", size, 0)
    for row in rows:
        im.paste(value, (0, row, size[0], row + 1))
    return im


# Reading needs this many bytes a pixel at its peak (stored, widened to reduce, premultiplied
# copy of images with alpha, the decoder's own buffer): 1024x1024 px take that many MB.
@pytest.mark.parametrize(
    ("make", "fmt", "megabytes"),
    [
        (lambda: Image.new("L", (1024, 1024)), "PNG", 1),
        (lambda: Image.new("1", (1024, 1024)), "PNG", 2),  # 1, widened to L
        (lambda: Image.new("P", (1024, 1024)), "PNG", 5),  # 1, widened to RGB
        (lambda: p_with_transparency().resize((1024, 1024)), "PNG", 9),  # 1 + RGBA + its copy
        (lambda: Image.new("LA", (1024, 1024)), "PNG", 8),
        (lambda: Image.new("RGBA", (1024, 1024)), "PNG", 8),
        (lambda: Image.new("RGB", (1024, 1024)), "PNG", 4),
        (lambda: i16(7).resize((1024, 1024)), "PNG", 6),  # 2, widened to 32 bits
        (lambda: Image.new("I", (1024, 1024)), "TIFF", 12),  # 4 + libtiff's 8
        (lambda: Image.new("PA", (1024, 1024)), "TIFF", 20),  # 4 + RGBA + copy + libtiff's 8
        (lambda: Image.new("RGB", (1024, 1024)), "WEBP", 16),  # 4 + libwebp's 12
    ],
    ids=["L", "1", "P", "P+transparency", "LA", "RGBA", "RGB", "I;16", "I", "PA", "WEBP"],
)
def test_the_memory_a_decode_would_take_is_told_exactly_for_each_mode(
    forbid_decoding, make, fmt, megabytes
):
    data = encode(make(), fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    forbid_decoding()
    with pytest.raises(ImageInputError) as refused:
        load_mask(data, (64, 64), TINY_DECODE)
    assert str(refused.value).startswith(
        f"The image is 1024x1024 px (1.0 megapixels); reading it would take {megabytes} MB of "
        "memory; edits use at most 0.001 MP, so the limit is 0 MB. Please scale it down"
    )


def test_megapixels_in_messages_are_rounded_to_the_nearest_tenth(forbid_decoding):
    data = encode(Image.new("L", (1050, 1000)), "PNG")  # 1.05 MP
    forbid_decoding()
    with pytest.raises(ImageInputError, match=r"^The image is 1050x1000 px \(1\.1 megapixels\)"):
        load_mask(data, (64, 64), TINY_DECODE)
    with pytest.raises(ImageInputError) as refused:
        load_input_image(png_header_only(1050, 1000), ImageLimits(max_decode_pixels=1_000_000))
    assert str(refused.value) == (
        "The image is 1050x1000 px (1.1 megapixels); the limit is 1.0 megapixels."
    )
    with pytest.raises(ImageInputError) as refused:
        load_input_image(png_header_only(1100, 1000), ImageLimits(max_decode_pixels=1_050_000))
    assert str(refused.value) == (
        "The image is 1100x1000 px (1.1 megapixels); the limit is 1.1 megapixels."
    )


def test_the_pixel_limit_is_inclusive(forbid_decoding):
    limits = ImageLimits(max_decode_pixels=300 * 200)
    forbid_decoding()
    with pytest.raises(AssertionError, match="pixels were decoded"):
        load_input_image(png_header_only(300, 200), limits)  # at the limit: goes on to decode
    with pytest.raises(ImageInputError, match=r"300x201 px"):
        load_input_image(png_header_only(300, 201), limits)


@pytest.mark.parametrize(
    ("subsampling", "mode", "megabytes"),
    [(2, "RGB", 4), (1, "RGB", 5), (0, "RGB", 7), (2, "L", 2)],
    ids=["4:2:0", "4:2:2", "4:4:4", "grey"],
)
def test_a_progressive_jpeg_counts_every_coefficient_it_keeps_whatever_the_scale(
    forbid_decoding, subsampling, mode, megabytes
):
    # Decoded at half scale for a 1024x256 edit: 1024x256 pixels of 4 bytes (1 MB), and libjpeg
    # keeps 2 bytes per coefficient of the whole coded 2048x512 image until the last scan:
    # 3 MB with chroma subsampled 4:2:0, 4 MB at 4:2:2, 6 MB unsubsampled, 2 MB for grey.
    colour = 200 if mode == "L" else RED
    im = Image.new(mode, (2048, 512), colour)
    data = encode(im, "JPEG", progressive=True, subsampling=subsampling, quality=90)
    forbid_decoding()
    with pytest.raises(ImageInputError) as refused:
        load_mask(data, (1024, 256), TINY_DECODE)
    assert f"reading it would take {megabytes} MB of memory" in str(refused.value)


def test_a_baseline_jpeg_is_decoded_at_the_scale_it_is_needed():
    # Whole, 1024x1024 RGB would take 4 MB, over this limit; at 1/8 scale 64 kB.
    data = encode(Image.new("RGB", (1024, 1024), (255, 255, 255)), "JPEG", quality=90)
    mask = load_mask(data, (64, 64), TINY_DECODE)
    assert mask.size == (64, 64) and mask.getextrema() == (255, 255)
    wide = encode(Image.new("RGB", (2048, 512), (255, 255, 255)), "JPEG", quality=90)
    assert load_mask(wide, (128, 32), TINY_DECODE).getextrema() == (255, 255)


def test_a_decompression_bomb_found_while_decoding_is_refused_readably(monkeypatch):
    data = encode(solid((64, 64)), "PNG")

    def bomb(self, *args, **kwargs):
        raise Image.DecompressionBombError("too many pixels")

    monkeypatch.setattr(ImageFile.ImageFile, "load", bomb)
    for load in (lambda: load_input_image(data), lambda: load_mask(data, (64, 64))):
        with pytest.raises(ImageInputError) as refused:
            load()
        assert str(refused.value) == (
            "The image declares too many pixels to open safely; the limit is 67.1 megapixels."
        )


def test_a_header_that_breaks_while_opening_is_called_damaged():
    broken = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", b"\x00\x00")  # IHDR of 2 bytes
    with pytest.raises(ImageInputError) as refused:
        load_input_image(broken)
    assert str(refused.value) == "The image file is damaged or incomplete."


def test_a_file_that_cannot_be_opened_says_so(tmp_path):
    with pytest.raises(ImageInputError) as refused:
        load_input_image(tmp_path / "nope.png")
    assert str(refused.value) == "The image file could not be read."


def test_a_file_of_exactly_the_size_limit_is_read_whole(tmp_path):
    data = encode(noise((64, 64)), "PNG")
    path = tmp_path / "in.png"
    path.write_bytes(data)
    out = load_input_image(path, ImageLimits(max_upload_bytes=len(data)))
    assert np.array_equal(np.asarray(out), np.asarray(noise((64, 64))))
    with pytest.raises(ImageInputError, match="the limit is"):
        load_input_image(path, ImageLimits(max_upload_bytes=len(data) - 1))


def test_a_source_that_never_ends_is_read_no_further_than_the_limit(tmp_path):
    """A path may name something that grows after its size was checked (a pipe, a growing
    file): reading stops one byte past the limit instead of waiting for an end."""
    fifo = tmp_path / "endless"
    os.mkfifo(fifo)
    limit = 64 * 1024
    finish = threading.Event()

    def write() -> None:
        with contextlib.suppress(BrokenPipeError), open(fifo, "wb") as pipe:
            pipe.write(b"\x89PNG\r\n\x1a\n" + b"\x00" * (4 * limit))
            pipe.flush()
            finish.wait()  # open, never ending, until the test is over

    refused: list[str] = []

    def read() -> None:
        try:
            load_input_image(fifo, ImageLimits(max_upload_bytes=limit))
        except ImageInputError as error:
            refused.append(str(error))

    writer = threading.Thread(target=write, daemon=True)
    reader = threading.Thread(target=read, daemon=True)
    writer.start()
    reader.start()
    reader.join(WAIT_S)
    still_reading = reader.is_alive()
    finish.set()
    assert not still_reading, "waited for the end of a source that does not end"
    assert refused == ["The image is 0.1 MB; the limit is 0.0625 MB."]


def test_output_pngs_are_encoded_at_zlibs_fastest_level():
    # Encoding runs inside the one-at-a-time GPU slot: the fastest level (zlib's FLEVEL 0).
    data = encode_png(noise((64, 48)))
    idat = data.index(b"IDAT") + 4
    assert data[idat + 1] >> 6 == 0


# masks


def test_every_painted_layer_counts_and_empty_layers_are_skipped():
    first = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    first.paste((0, 0, 0, 255), (0, 0, 16, 64))
    empty = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    last = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    last.paste((0, 0, 0, 255), (48, 0, 64, 64))
    layers = [encode(first, "PNG"), encode(empty, "PNG"), first, last, encode(empty, "PNG")]
    union = painted_mask(layers, (32, 32))
    assert union is not None and union.size == (32, 32) and union.mode == "L"
    values = np.asarray(union)
    assert values[:, :8].min() == 255 and values[:, 24:].min() == 255
    assert values[:, 8:24].max() == 0
    assert painted_mask([encode(empty, "PNG"), empty], (32, 32)) is None
    assert painted_mask([], (32, 32)) is None
    with pytest.raises(ImageInputError, match="not an image we can read"):
        painted_mask([encode(first, "PNG"), b"not an image"], (32, 32))


def test_a_painted_layer_is_read_within_the_limits():
    layer = encode(Image.new("RGBA", (64, 64), (0, 0, 0, 255)), "PNG")
    with pytest.raises(ImageInputError, match="the limit is"):
        painted_mask([layer], (64, 64), ImageLimits(max_upload_bytes=10))


@pytest.mark.parametrize(
    ("value", "marked"), [(127, False), (128, True), (255, True)], ids=["127", "128", "255"]
)
def test_the_mask_threshold_is_128(value, marked):
    mask = Image.new("L", (64, 64), 0)
    mask.paste(value, (0, 0, 32, 64))
    if not marked:
        with pytest.raises(ImageInputError) as refused:
            load_mask(mask, (64, 64))
        assert str(refused.value) == "The mask is empty: paint the area to change."
        return
    out = np.asarray(load_mask(mask, (64, 64)))
    assert out[:, :32].min() == 255 and out[:, 32:].max() == 0


def test_a_palette_mask_is_read_by_brightness_or_by_its_transparency():
    palette = [0, 0, 0, 255, 255, 255] + [0] * (254 * 3)
    opaque = Image.new("P", (64, 64), 0)
    opaque.putpalette(palette)
    opaque.paste(1, (0, 0, 16, 64))  # white on the left
    for source in (opaque, encode(opaque, "PNG"), encode(opaque, "GIF")):
        out = np.asarray(load_mask(source, (64, 64)))
        assert out[:, :16].min() == 255 and out[:, 16:].max() == 0
    # White where transparent, black where painted: the paint marks, not the brightness.
    painted = Image.new("P", (64, 64), 1)
    painted.putpalette(palette)
    painted.paste(0, (48, 0, 64, 64))
    painted.info["transparency"] = 1
    for source in (painted, encode(painted, "PNG")):
        out = np.asarray(load_mask(source, (64, 64)))
        assert out[:, 48:].min() == 255 and out[:, :48].max() == 0


def test_a_colour_mask_becomes_a_grey_mask():
    mask = Image.new("RGB", (64, 64), (0, 0, 0))
    mask.paste((255, 255, 255), (0, 0, 32, 64))
    out = load_mask(encode(mask, "PNG"), (64, 64))
    assert out.mode == "L"
    assert np.asarray(out)[:, :32].min() == 255 and np.asarray(out)[:, 32:].max() == 0


def test_a_mask_without_alpha_in_a_colour_space_we_cannot_read_is_refused_by_name():
    # CIELab has a band called "a" (green to red): it is not transparency.
    lab = Image.new("LAB", (64, 64), (255, 128, 128))
    lab.paste((0, 200, 128), (0, 0, 32, 64))
    with pytest.raises(ImageInputError) as refused:
        load_mask(encode(lab, "TIFF"), (64, 64))
    assert str(refused.value) == "This mask's colour mode (LAB) is not supported."


def test_a_mask_given_as_an_image_is_turned_upright_like_the_photo_it_was_drawn_on():
    mask = Image.new("L", (128, 64), 0)
    mask.paste(255, (0, 0, 64, 64))  # the left of the stored pixels
    shown = Image.open(io.BytesIO(encode(mask, "PNG", exif=exif_orientation(6))))
    out = np.asarray(load_mask(shown, (64, 128)))  # displayed: 64 wide, 128 tall
    assert out[:64].min() == 255 and out[64:].max() == 0  # left became top


def test_a_thin_stroke_on_a_large_mask_is_kept_when_the_mask_is_reduced():
    # 1024x128 for an edit of 512x64: halved by averaging; a 2-pixel stroke stays marked.
    mask = stripes((1024, 128), range(64, 66))
    out = np.asarray(load_mask(encode(mask, "PNG"), (512, 64)))
    assert out[32].min() == 255 and out[:32].max() == 0 and out[33:].max() == 0


def test_fine_strokes_on_a_mask_twice_the_size_are_averaged_not_sampled():
    # Every other row painted: averaged 2x2 it is half painted everywhere (128: marked);
    # sampling every other row would find nothing painted.
    mask = stripes((128, 128), range(0, 128, 2))
    out = np.asarray(load_mask(encode(mask, "PNG"), (64, 64)))
    assert out.min() == 255


# modes


def test_a_dark_16_bit_image_stays_dark_when_it_is_reduced():
    dark = Image.fromarray(np.full((2048, 2048), 200, dtype=np.uint16))  # 200 of 65535
    out = load_input_image(encode(dark, "PNG"))
    assert out.size == (992, 992) and centre(out) == (0, 0, 0)


def palette_with_alpha() -> Image.Image:
    pixels = np.zeros((64, 128, 2), dtype=np.uint8)
    pixels[:, 64:] = (1, 255)  # left: index 0, transparent; right: index 1, opaque
    im = Image.frombytes("PA", (128, 64), pixels.tobytes())
    im.putpalette([0, 0, 0, 10, 200, 30] + [0] * (254 * 3))
    return im


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0, 200], [0, 200]),  # 8-bit values in a 32-bit image: kept
        ([0, 255], [0, 255]),
        ([0, 256], [0, 1]),  # 16-bit values: the top byte
        ([0, 65535], [0, 255]),
        ([0, 70_000], [0, 255]),  # beyond 16 bits: white
        ([-5, 1000], [0, 3]),  # below zero: black
    ],
    ids=["8-bit", "255", "256", "16-bit", "over-16-bit", "negative"],
)
def test_32_bit_integer_images_are_read_as_8_or_16_bit(values, expected):
    im = Image.new("I", (128, 64), values[0])
    im.paste(values[1], (64, 0, 128, 64))
    out = load_input_image(encode(im, "TIFF"))
    assert out.getpixel((10, 32)) == (expected[0],) * 3
    assert out.getpixel((100, 32)) == (expected[1],) * 3


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0.0, 1.0], [0, 255]),  # 0..1
        ([0.0, 0.3], [0, 76]),  # 76.5 rounds to even
        ([float("nan"), 0.5], [0, 128]),  # NaN: black
        ([float("-inf"), 0.5], [0, 128]),
        ([float("inf"), 0.5], [255, 0]),  # read as 0..255 once anything is over 1
        ([-0.5, 0.5], [0, 128]),
        ([0.0, 2.0], [0, 2]),  # 0..255
        ([0.0, 300.0], [0, 255]),
    ],
    ids=["one", "rounding", "nan", "-inf", "inf", "negative", "0-255", "over-255"],
)
def test_float_images_are_read_as_0_to_1_or_0_to_255(values, expected):
    im = Image.new("F", (128, 64), values[0])
    im.paste(values[1], (64, 0, 128, 64))
    out = load_input_image(encode(im, "TIFF"))
    assert out.getpixel((10, 32)) == (expected[0],) * 3
    assert out.getpixel((100, 32)) == (expected[1],) * 3


def test_a_palette_image_with_alpha_is_white_where_transparent():
    data = encode(palette_with_alpha(), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "PA"
    out = load_input_image(data)
    assert out.getpixel((10, 32)) == (255, 255, 255)
    assert out.getpixel((100, 32)) == (10, 200, 30)


def test_the_image_is_never_made_larger_than_the_megapixel_cap():
    limits = ImageLimits(max_megapixels=0.25)
    for size in ((1000, 1000), (1001, 999), (1600, 640), (2000, 500), (1024, 1000)):
        w, h = load_input_image(encode(solid(size), "PNG"), limits).size
        assert w * h <= 250_000, size
