"""Shoppers' photos of catalog pictures, made by a pipeline written apart from the service's.

The service trains on torchvision v2 transforms and checks itself on ``distort.make_query`` (PIL).
This module uses neither: it is OpenCV (``opencv-python-headless``), with its own algorithms and
ranges, so the image-search benchmark measures what a photo the model never saw the like of does:

1. **background**: the backdrop is found by flood-filling from the four corners (OpenCV's
   ``floodFill``, not a colour distance) and replaced by a plain colour, a two-colour gradient
   at any angle, or coloured noise (70 %);
2. **resolution**: the photo's long side drawn from 18-40 px (a thumbnail), 80-300 px or 500-900 px
   (an upscaled picture, nearest-neighbour or bicubic);
3. **geometry**: a perspective warp (each corner moved by up to 8 % of the side) with a rotation
   of up to 30 degrees, the uncovered corners filled with black, white, a random colour, or the
   reflected picture;
4. **crop** keeping 80-100 % of each side;
5. **light**: gamma 0.6-1.7, a colour cast (each channel x0.8-1.2), a brightness ramp across the
   photo (a shadow);
6. **frame**: a coloured border of 3-12 % of the side on 40 % of the photos;
7. **sensor**: Gaussian noise (sigma 0-6), a Gaussian or motion blur on 30 %;
8. **JPEG** at quality 25-90 (OpenCV's encoder).

Everything is drawn from one ``numpy`` generator: a seed gives the same photos.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image


def _backdrop_mask(rgb: np.ndarray) -> np.ndarray:
    """True on the backdrop: what a flood fill from the four corners reaches."""
    h, w = rgb.shape[:2]
    mask = np.zeros((h + 2, w + 2), np.uint8)
    flags = 4 | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (255 << 8)
    for x, y in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)):
        if not mask[y + 1, x + 1]:
            cv2.floodFill(rgb.copy(), mask, (x, y), (0, 0, 0), (10, 10, 10), (10, 10, 10), flags)
    return mask[1:-1, 1:-1] > 0


def _new_background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    kind = rng.integers(0, 3)
    if kind == 0:
        return np.broadcast_to(rng.integers(0, 256, 3).astype(np.uint8), (h, w, 3)).copy()
    if kind == 1:
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        angle = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = (xx * np.cos(angle) + yy * np.sin(angle))
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        return (a * (1 - t[..., None]) + b * t[..., None]).astype(np.uint8)
    base = rng.integers(30, 226, 3).astype(np.float32)
    return np.clip(base + rng.normal(0, 18, (h, w, 3)), 0, 255).astype(np.uint8)


def _resize_to(rgb: np.ndarray, side: int, rng: np.random.Generator) -> np.ndarray:
    h, w = rgb.shape[:2]
    f = side / max(h, w)
    size = (max(4, round(w * f)), max(4, round(h * f)))
    if f > 1:
        interp = cv2.INTER_NEAREST if rng.random() < 0.3 else cv2.INTER_CUBIC
    else:
        interp = cv2.INTER_AREA
    return cv2.resize(rgb, size, interpolation=interp)


def _warp(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = rgb.shape[:2]
    angle = rng.uniform(-30, 30)
    rot = np.vstack([cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0), [0, 0, 1]])
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = src + rng.uniform(-0.08, 0.08, (4, 2)).astype(np.float32) * np.float32([w, h])
    matrix = rot @ cv2.getPerspectiveTransform(src, dst)
    fill = rng.integers(0, 4)
    if fill == 3:
        return cv2.warpPerspective(rgb, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    colour = [(0, 0, 0), (255, 255, 255), tuple(int(v) for v in rng.integers(0, 256, 3))][fill]
    return cv2.warpPerspective(rgb, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=colour)


def _light(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = rgb.astype(np.float32) / 255.0
    x = x ** rng.uniform(0.6, 1.7)
    x = x * rng.uniform(0.8, 1.2, 3).astype(np.float32)
    h, w = x.shape[:2]
    ramp = np.linspace(rng.uniform(0.6, 1.0), rng.uniform(1.0, 1.25), w if rng.random() < 0.5 else h, dtype=np.float32)
    x = x * (ramp[None, :, None] if ramp.size == w else ramp[:, None, None])
    return np.clip(x * 255.0, 0, 255).astype(np.uint8)


def shopper_photo(picture: Image.Image, rng: np.random.Generator) -> Image.Image:
    """One photo of ``picture`` as a shopper might send it (steps in the module docstring)."""
    rgb = np.asarray(picture.convert("RGB")).copy()
    work = _resize_to(rgb, 112, rng)  # a working resolution for the geometry of tiny pictures
    if rng.random() < 0.7:
        back = _backdrop_mask(work)
        work = np.where(back[..., None], _new_background(*work.shape[:2], rng), work)
    work = _warp(work, rng)
    h, w = work.shape[:2]
    kw, kh = rng.uniform(0.8, 1.0, 2)
    cw, ch = max(8, int(w * kw)), max(8, int(h * kh))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    work = work[y0:y0 + ch, x0:x0 + cw]
    work = _light(work, rng)
    if rng.random() < 0.4:
        t = max(1, int(max(work.shape[:2]) * rng.uniform(0.03, 0.12)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        work = cv2.copyMakeBorder(work, t, t, t, t, cv2.BORDER_CONSTANT, value=colour)
    band = rng.choice(3, p=[0.2, 0.5, 0.3])
    side = int(rng.integers(*[(18, 41), (80, 301), (500, 901)][band]))
    work = _resize_to(work, side, rng)
    sigma = rng.uniform(0, 6)
    work = np.clip(work.astype(np.float32) + rng.normal(0, sigma, work.shape), 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        k = 3 if side < 100 else int(rng.choice([3, 5, 7]))
        if rng.random() < 0.5:
            work = cv2.GaussianBlur(work, (k, k), 0)
        else:
            kernel = np.zeros((k, k), np.float32)
            kernel[k // 2, :] = 1.0 / k
            work = cv2.filter2D(work, -1, kernel)
    ok, jpeg = cv2.imencode(".jpg", work[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 91))])
    assert ok
    return Image.fromarray(cv2.imdecode(jpeg, cv2.IMREAD_COLOR)[..., ::-1].copy(), "RGB")
