"""decode_image: each accepted format round-trips to RGB, each bad input is an ImageProblem, nothing else."""

from __future__ import annotations

import io
import random
import struct
import warnings
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from services.vision.core import images
from services.vision.core.images import ACCEPTED_FORMATS, ImageProblem, decode_image, encode_image

W, H = 64, 48


def _picture(mode: str = "RGB", size: tuple[int, int] = (W, H)) -> Image.Image:
    """A smooth colour gradient (compresses well in every format)."""
    x = np.linspace(0, 255, size[0], dtype=np.float64)[None, :]
    y = np.linspace(0, 255, size[1], dtype=np.float64)[:, None]
    rgb = np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb, "RGB").convert(mode)


def _png_claiming(width: int, height: int) -> bytes:
    """A real 8x8 PNG whose IHDR says width x height (CRC fixed), so only the header lies."""
    data = bytearray(encode_image(_picture(size=(8, 8)), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def _problem(data: bytes, **limits: int) -> ImageProblem:
    with pytest.raises(ImageProblem) as info:
        decode_image(data, **limits)
    assert info.value.reason == str(info.value)
    return info.value


@pytest.mark.parametrize("fmt", ACCEPTED_FORMATS)
def test_every_accepted_format_round_trips_to_rgb(fmt):
    image = decode_image(encode_image(_picture(), fmt))
    assert image.size == (W, H)
    assert image.mode == "RGB"
    image.getpixel((0, 0))  # fully loaded: no file behind it any more


@pytest.mark.parametrize("mode", ["L", "P", "1", "CMYK"])
def test_other_modes_become_rgb(mode):
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    image = decode_image(encode_image(_picture(mode), fmt))
    assert (image.size, image.mode) == ((W, H), "RGB")


def test_jpeg_keeps_roughly_the_colours():
    image = decode_image(encode_image(_picture(), "JPEG", quality=95))
    expected = np.asarray(_picture(), dtype=np.int16)
    assert np.abs(np.asarray(image, dtype=np.int16) - expected).mean() < 4


def test_bytearray_and_memoryview_are_accepted():
    data = encode_image(_picture(), "PNG")
    assert decode_image(bytearray(data)).size == (W, H)
    assert decode_image(memoryview(data)).size == (W, H)


def test_transparent_png_is_composited_on_white():
    rgba = _picture("RGBA")
    rgba.putpixel((0, 0), (0, 0, 0, 0))  # fully transparent black
    rgba.putpixel((1, 0), (200, 10, 10, 255))  # opaque red
    rgba.putpixel((2, 0), (0, 0, 0, 128))  # half-transparent black
    image = decode_image(encode_image(rgba, "PNG"))
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (255, 255, 255)
    assert image.getpixel((1, 0)) == (200, 10, 10)
    assert all(120 <= channel <= 135 for channel in image.getpixel((2, 0)))


def test_la_and_palette_transparency_are_composited_on_white():
    la = Image.new("LA", (W, H), (0, 0))
    assert decode_image(encode_image(la, "PNG")).getpixel((5, 5)) == (255, 255, 255)
    palette = Image.new("P", (W, H), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.putpixel((1, 1), 1)
    out = io.BytesIO()
    palette.save(out, "GIF", transparency=0)
    image = decode_image(out.getvalue())
    assert image.getpixel((5, 5)) == (255, 255, 255)
    assert image.getpixel((1, 1)) == (255, 0, 0)


def test_sixteen_bit_greyscale_is_scaled_not_clipped():
    grey = Image.fromarray(np.full((H, W), 32768, dtype=np.uint16))
    image = decode_image(encode_image(grey, "PNG"))
    assert all(125 <= channel <= 130 for channel in image.getpixel((3, 3)))


def test_exif_orientation_is_applied():
    stored = _picture()
    stored.paste((255, 0, 0), (0, 0, 8, 8))  # red top-left corner as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    out = io.BytesIO()
    stored.save(out, "JPEG", quality=95, exif=exif.tobytes())
    image = decode_image(out.getvalue())
    assert image.size == (H, W)
    red, green, blue = image.getpixel((H - 3, 3))  # the stored top-left is now the top-right
    assert red > 200 and green < 60 and blue < 60


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_broken_exif_is_ignored():
    out = io.BytesIO()
    _picture().save(out, "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff")
    assert decode_image(out.getvalue()).size == (W, H)


def test_unreadable_exif_keeps_the_stored_orientation(monkeypatch):
    def broken(image):
        raise SyntaxError("bad EXIF")

    monkeypatch.setattr(images.ImageOps, "exif_transpose", broken)
    assert decode_image(encode_image(_picture(), "JPEG")).size == (W, H)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animation_gives_its_first_frame(fmt):
    frames = [Image.new("RGB", (W, H), colour) for colour in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    out = io.BytesIO()
    frames[0].save(out, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, lossless=True)
    red, green, blue = decode_image(out.getvalue()).getpixel((10, 10))
    assert red > 240 and green < 15 and blue < 15


def test_empty_bytes():
    problem = _problem(b"")
    assert problem.reason == "the image is empty"
    assert not problem.too_large


def test_too_many_bytes_is_too_large():
    data = encode_image(_picture(), "PNG")
    problem = _problem(data, max_bytes=100)
    assert problem.too_large
    assert problem.reason == f"the image is {len(data)} bytes; the limit is 100 bytes"


def _zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("a.txt", "hello")
    return out.getvalue()


@pytest.mark.parametrize("data", [
    b"hello, this is plain text and not a picture\n",
    bytes(random.Random(7).getrandbits(8) for _ in range(2048)),
    _zip_bytes(),
    b"\x00",
    b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n",
], ids=["text", "random", "zip", "nul", "pdf"])
def test_not_an_image(data):
    problem = _problem(data)
    assert problem.reason == "not an image: send JPEG, PNG, WebP, GIF or BMP"
    assert not problem.too_large


@pytest.mark.parametrize("fmt", ["TIFF", "ICO", "PPM"])
def test_recognised_but_not_accepted_formats_are_named(fmt):
    problem = _problem(encode_image(_picture(), fmt))
    assert problem.reason == f"format {fmt} is not accepted: send JPEG, PNG, WebP, GIF or BMP"
    assert not problem.too_large


def test_header_over_our_pixel_limit_is_rejected_before_decoding():
    # 7000 x 7000 = 49 M: over our 36 M default, under Pillow's own guard (89 M).
    problem = _problem(_png_claiming(7000, 7000))
    assert problem.too_large
    assert problem.reason == ("7000×7000 = 49000000 pixels is more than the limit of 36000000 "
                              "(decompression bomb?)")
    assert _problem(_png_claiming(100, 100), max_pixels=9999).reason.startswith("100×100 = 10000 pixels")


@pytest.mark.parametrize("side, pillow_limit", [(10_000, Image.MAX_IMAGE_PIXELS),
                                                 (20_000, 2 * Image.MAX_IMAGE_PIXELS)],
                         ids=["pillow-warning", "pillow-error"])
def test_pillow_decompression_bomb_guard_becomes_too_large(side, pillow_limit):
    """100 M pixels trips Pillow's warning (made an error here), 400 M its error; neither allocates.

    Our own limit is raised out of the way, so only Pillow's guard can stop these.
    """
    before_limit = Image.MAX_IMAGE_PIXELS
    before_truncated = ImageFile.LOAD_TRUNCATED_IMAGES
    before_filters = list(warnings.filters)
    problem = _problem(_png_claiming(side, side), max_pixels=10**9)
    assert problem.too_large
    assert problem.reason == (f"{side * side} pixels is more than the limit of {pillow_limit} "
                              "(decompression bomb?)")
    assert Image.MAX_IMAGE_PIXELS == before_limit
    assert ImageFile.LOAD_TRUNCATED_IMAGES == before_truncated
    assert warnings.filters == before_filters


def test_a_20000_square_header_is_too_large_with_default_limits():
    problem = _problem(_png_claiming(20_000, 20_000))
    assert problem.too_large
    assert "400000000 pixels" in problem.reason and "(decompression bomb?)" in problem.reason


def test_a_header_bigger_than_its_data_is_corrupt():
    # Within the limits, but the 8x8 data behind the 3000x3000 header runs out: corrupt, not a crash.
    problem = _problem(_png_claiming(3000, 3000))
    assert not problem.too_large
    assert problem.reason.startswith("the image data is truncated or corrupt (")


def test_too_small():
    problem = _problem(encode_image(_picture(size=(4, 4)), "PNG"))
    assert problem.reason == "the image is 4x4 pixels; each side must be at least 8"
    assert not problem.too_large
    assert _problem(encode_image(_picture(size=(100, 7)), "PNG")).reason.endswith("at least 8")
    assert decode_image(encode_image(_picture(size=(8, 8)), "PNG")).size == (8, 8)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP"])
def test_truncated_data_is_corrupt(fmt):
    data = encode_image(_picture(size=(160, 120)), fmt)
    problem = _problem(data[: len(data) // 2])
    assert not problem.too_large
    assert problem.reason.startswith("the image data is truncated or corrupt (")
    assert problem.reason.endswith(")")


def test_non_bytes_is_a_type_error():
    with pytest.raises(TypeError):
        decode_image("not bytes")  # type: ignore[arg-type]


def _mutate(data: bytes, rng: random.Random) -> bytes:
    blob = bytearray(data)
    kind = rng.randrange(4)
    if kind == 0:  # flip a few bytes
        for _ in range(rng.randint(1, 8)):
            blob[rng.randrange(len(blob))] = rng.randrange(256)
    elif kind == 1:  # truncate
        del blob[rng.randrange(1, len(blob)):]
    elif kind == 2:  # insert junk
        at = rng.randrange(len(blob))
        blob[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    else:  # zero a span
        at = rng.randrange(len(blob))
        blob[at:at + rng.randint(1, 32)] = bytes(min(32, len(blob) - at))
    return bytes(blob)


def test_fuzzed_pngs_and_jpegs_give_an_image_or_an_image_problem():
    rng = random.Random(20260701)
    seeds = [encode_image(_picture(size=(32, 24)), "PNG"), encode_image(_picture(size=(32, 24)), "JPEG")]
    outcomes = {"image": 0, "problem": 0}
    for i in range(200):
        data = _mutate(seeds[i % 2], rng)
        try:
            image = decode_image(data)
        except ImageProblem as problem:
            assert problem.reason
            outcomes["problem"] += 1
        else:
            assert image.mode == "RGB" and min(image.size) >= 8
            outcomes["image"] += 1
    assert outcomes["problem"] > 0 and outcomes["image"] > 0
