"""Robust decoding of uploaded images: any bytes in, a loaded RGB picture or a clear ``ImageProblem`` out.

Design:

- Cheap checks first. The byte length is checked before Pillow sees anything, and the pixel count is read
  from the header: ``Image.open`` is lazy, so the size of a 20000x20000 PNG is known without allocating its
  pixels. Only then is the image decoded (``load``).
- Only the accepted formats are parsed for real: the first ``Image.open`` is limited to
  ``ACCEPTED_FORMATS``. When that does not recognise the bytes, a second, header-only open with every
  plugin tells apart "a TIFF, which we do not take" from "not an image at all"; nothing of such a file is
  ever decoded. A JPEG that Pillow reads as MPO (a camera's multi-picture JPEG) comes from the JPEG plugin
  and is accepted as a JPEG.
- Pillow's own decompression-bomb guard (``DecompressionBombError``, and ``DecompressionBombWarning``
  turned into an error with ``warnings.catch_warnings`` for the duration of the call) becomes the same
  "too large" problem as our limit. Pillow raises it inside ``open``, before the size is at hand, so that
  message gives the pixel count Pillow reports instead of W×H. No global state is changed: neither
  ``Image.MAX_IMAGE_PIXELS`` nor ``ImageFile.LOAD_TRUNCATED_IMAGES`` (so a truncated file is an error, not
  a grey-padded picture). Note that ``warnings.catch_warnings`` itself swaps the process-wide filter list
  while it is active (Python 3.11 has no per-thread filters); the only filter added is "error" for the
  bomb warning.
- Normalisation: first frame of an animation (the frame Pillow opens at), EXIF orientation applied
  (``ImageOps.exif_transpose``; an unreadable EXIF block is ignored rather than rejecting good pixels),
  any alpha or transparency composited onto white, 16-bit greyscale scaled to 8 bits (Pillow's own
  conversion would clip it), and the result converted to RGB.
- No other exception type escapes for any input bytes: every failure while decoding (OSError, SyntaxError,
  ValueError, struct.error, EOFError, or anything odder) is reported as "truncated or corrupt" with a
  short detail.

``ImageProblem.too_large`` tells the service to answer 413 instead of 400.
"""
from __future__ import annotations

import io
import re
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")
_ACCEPTED_TEXT = "send JPEG, PNG, WebP, GIF or BMP"
_WHITE = (255, 255, 255)


class ImageProblem(ValueError):
    """Why the bytes are not an image we take; ``reason`` is meant for the user."""

    def __init__(self, reason: str, too_large: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.too_large = too_large


def _too_many_pixels(width: int, height: int, max_pixels: int) -> ImageProblem:
    return ImageProblem(f"{width}×{height} = {width * height} pixels is more than the limit of {max_pixels} "
                        "(decompression bomb?)", too_large=True)


def _bomb(exc: BaseException, max_pixels: int) -> ImageProblem:
    """Pillow's guard fired inside ``open``/``load``, where the size is not at hand: use the numbers it gives.

    Its limit (``Image.MAX_IMAGE_PIXELS``, or twice that for the error) can be below a ``max_pixels`` that a
    caller raised, so the smaller of the two is the limit that was actually exceeded.
    """
    message = str(exc)
    pixels = re.search(r"\((\d+) pixels\)", message)
    pillow_limit = re.search(r"limit of (\d+) pixels", message)
    limit = min(max_pixels, int(pillow_limit.group(1))) if pillow_limit else max_pixels
    if pixels:
        return ImageProblem(f"{pixels.group(1)} pixels is more than the limit of {limit} "
                            "(decompression bomb?)", too_large=True)
    return ImageProblem(f"the image has more pixels than the limit of {limit} (decompression bomb?)",
                        too_large=True)


def _corrupt(exc: BaseException) -> ImageProblem:
    detail = " ".join(str(exc).split())[:80] or type(exc).__name__
    return ImageProblem(f"the image data is truncated or corrupt ({detail})")


def _foreign_format(data: bytes) -> ImageProblem:
    """The accepted plugins do not recognise the bytes: name the format if some other plugin does."""
    try:
        with Image.open(io.BytesIO(data)) as other:
            name = other.format
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return ImageProblem(f"this image format is not accepted: {_ACCEPTED_TEXT}")
    except Exception:  # noqa: BLE001 - whatever the other plugins choke on, it is not an image we take
        return ImageProblem(f"not an image: {_ACCEPTED_TEXT}")
    if not name:
        return ImageProblem(f"not an image: {_ACCEPTED_TEXT}")
    return ImageProblem(f"format {name} is not accepted: {_ACCEPTED_TEXT}")


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB: transparency onto white, 16/32-bit greyscale scaled down."""
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float64)
        sixteen_bit = image.mode.startswith("I;16") or (image.mode == "I" and values.max(initial=0) > 255)
        scale = 255.0 / 65535.0 if sixteen_bit else 1.0
        image = Image.fromarray(np.clip(values * scale, 0, 255).astype(np.uint8), "L")
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_WHITE, 255))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    return image.convert("RGB")


def decode_image(data: bytes, *, max_bytes: int = 8 * 1024 * 1024, max_pixels: int = 36_000_000,
                 min_side: int = 8) -> Image.Image:
    """Decode uploaded bytes into a fully loaded RGB image, or raise ``ImageProblem`` saying why not."""
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise TypeError(f"decode_image takes bytes, not {type(data).__name__}")
    if not data:
        raise ImageProblem("the image is empty")
    if len(data) > max_bytes:
        raise ImageProblem(f"the image is {len(data)} bytes; the limit is {max_bytes} bytes", too_large=True)

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
        except UnidentifiedImageError:
            raise _foreign_format(data) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _bomb(exc, max_pixels) from None
        except Exception as exc:  # noqa: BLE001 - a recognised header whose next bytes are broken
            raise _corrupt(exc) from None
        with image:
            try:
                width, height = (int(side) for side in image.size)
            except Exception as exc:  # noqa: BLE001
                raise _corrupt(exc) from None
            if width * height > max_pixels:
                raise _too_many_pixels(width, height, max_pixels)
            if min(width, height) < min_side:
                raise ImageProblem(f"the image is {width}x{height} pixels; "
                                   f"each side must be at least {min_side}")
            try:
                image.load()
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise _bomb(exc, max_pixels) from None
            except Exception as exc:  # noqa: BLE001 - OSError, SyntaxError, struct.error, ...
                raise _corrupt(exc) from None
            try:
                oriented = ImageOps.exif_transpose(image)
            except Exception:  # noqa: BLE001 - broken EXIF: keep the pixels as stored
                oriented = image
            try:
                rgb = _to_rgb(oriented)
            except Exception as exc:  # noqa: BLE001
                raise _corrupt(exc) from None
    return rgb


def encode_image(image: Image.Image, format: str = "PNG", quality: int = 90) -> bytes:
    """Save ``image`` to bytes in ``format`` (a helper for tests and benchmarks)."""
    fmt = format.upper()
    if fmt in ("JPEG", "JPG"):
        fmt = "JPEG"
        if image.mode not in ("L", "RGB", "CMYK"):
            image = _to_rgb(image)
    out = io.BytesIO()
    options: dict[str, object] = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    image.save(out, format=fmt, **options)
    return out.getvalue()
