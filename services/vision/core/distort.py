"""What happens to a product picture on its way into a shopper's photo, twice over.

- ``training_transform``: the torchvision (v2) pipeline the fine-tuning samples from: a new
  background, zoom-out, rotation, resized crop, colour and lighting jitter, blur, JPEG.
- ``make_query``: an independent, seeded re-implementation with PIL and numpy that the benchmark
  and the trainer's held-out check use to make query photos. It is deliberately not the training
  pipeline, so recall is not measured on the distribution the model was tuned to.

Both replace the background by finding it: the pixels close to the picture's border colour
(product shots are taken on a plain background), as a shop's own photos would allow too.
"""

from __future__ import annotations

import io
import random

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter


def border_colour(image: Image.Image) -> tuple[int, int, int]:
    """The median colour of the outermost pixels: the backdrop of a product shot."""
    a = np.asarray(image.convert("RGB"))
    edge = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    return tuple(int(v) for v in np.median(edge, axis=0))  # type: ignore[return-value]


def foreground_mask(image: Image.Image, tolerance: float = 14.0) -> np.ndarray:
    """True where a pixel differs from the backdrop colour (the product)."""
    a = np.asarray(image.convert("RGB")).astype(np.float32)
    return np.linalg.norm(a - np.asarray(border_colour(image), np.float32), axis=2) > tolerance


def _background(size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    w, h = size
    kind = rng.integers(0, 3)
    if kind == 0:  # a plain colour
        return Image.new("RGB", size, tuple(int(v) for v in rng.integers(0, 256, 3)))
    if kind == 1:  # a gradient between two colours
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        t = np.linspace(0, 1, h)[:, None, None]
        grad = (a * (1 - t) + b * t).astype(np.uint8)
        return Image.fromarray(np.repeat(grad, w, axis=1), "RGB")
    base = rng.integers(0, 256, 3).astype(np.float32)  # a textured surface (table, fabric)
    noise = rng.normal(0, 12, (max(h // 4, 1), max(w // 4, 1), 3))
    tex = np.clip(base + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(tex, "RGB").resize(size, Image.BILINEAR)


def replace_background(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    image = image.convert("RGB")
    mask = Image.fromarray((foreground_mask(image) * 255).astype(np.uint8), "L")
    return Image.composite(image, _background(image.size, rng), mask)


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def make_query(image: Image.Image, rng: np.random.Generator, strength: float = 1.0) -> Image.Image:
    """A shopper's photo of ``image``: new background, rotation, crop, scale, colour, lighting, JPEG.

    ``strength`` scales every range (1.0 is the benchmark's setting: rotation up to 25 degrees,
    crops keeping 85-100% of each side, 0.8-1.2 brightness and contrast, JPEG quality 40-90)."""
    s = float(strength)
    img = image.convert("RGB")
    side = max(img.size)
    upscale = max(1, 96 // side)  # rotate and crop at a useful resolution for tiny catalog pictures
    if upscale > 1:
        img = img.resize((img.width * upscale, img.height * upscale), Image.BICUBIC)
    if rng.random() < 0.8:
        img = replace_background(img, rng)
    fill = tuple(int(v) for v in np.asarray(img)[0, 0])
    angle = float(rng.uniform(-15, 15) * s)
    img = img.rotate(angle, resample=Image.BICUBIC, expand=True, fillcolor=fill)
    w, h = img.size
    keep_w, keep_h = (1 - rng.uniform(0, 0.15 * s), 1 - rng.uniform(0, 0.15 * s))
    cw, ch = max(4, int(w * keep_w)), max(4, int(h * keep_h))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    img = img.crop((x0, y0, x0 + cw, y0 + ch))
    scale = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    img = img.resize((max(8, int(cw * scale)), max(8, int(ch * scale))), Image.BILINEAR)
    img = ImageEnhance.Brightness(img).enhance(1 + rng.uniform(-0.2, 0.2) * s)
    img = ImageEnhance.Contrast(img).enhance(1 + rng.uniform(-0.2, 0.2) * s)
    img = ImageEnhance.Color(img).enhance(1 + rng.uniform(-0.15, 0.15) * s)
    if rng.random() < 0.2:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 0.8))))
    return _jpeg(img, int(rng.integers(40, 91)))


class _RandomBackground:
    """torchvision-compatible callable: PIL in, PIL out, new backdrop with probability ``p``."""

    def __init__(self, p: float = 0.8) -> None:
        self.p = p

    def __call__(self, image: Image.Image) -> Image.Image:
        if random.random() >= self.p:
            return image
        return replace_background(image, np.random.default_rng(random.getrandbits(32)))


class _RotateOnBackdrop:
    """torchvision-compatible callable: upscale to ``side`` px, rotate by up to ``degrees`` with the
    corners filled by the picture's own backdrop colour (so a new background covers them too, as
    in a photo) instead of black."""

    def __init__(self, degrees: float, side: int) -> None:
        self.degrees = degrees
        self.side = side

    def __call__(self, image: Image.Image) -> Image.Image:
        w, h = image.size
        if max(w, h) < self.side:
            f = self.side / max(w, h)
            image = image.resize((max(1, round(w * f)), max(1, round(h * f))), Image.BICUBIC)
        angle = random.uniform(-self.degrees, self.degrees)
        return image.rotate(angle, resample=Image.BILINEAR, expand=True, fillcolor=border_colour(image))


class _FillAnyway:
    """torchvision-compatible callable: a photo edited after it was taken, with probability ``p``:
    turned by up to ``degrees`` and skewed (each corner moved by up to ``skew`` of the side), the
    uncovered corners filled with black, white or any colour, as a phone's editor or a scanner
    leaves them (the other rotation, ``_RotateOnBackdrop``, hides its corners under the background)."""

    def __init__(self, p: float, degrees: float, skew: float) -> None:
        self.p, self.degrees, self.skew = p, degrees, skew

    def __call__(self, image: Image.Image) -> Image.Image:
        if random.random() >= self.p:
            return image
        from torchvision.transforms.v2 import functional as F

        fill = random.choice([(0, 0, 0), (255, 255, 255), tuple(random.randrange(256) for _ in range(3))])
        w, h = image.size
        corners = [[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]]
        moved = [[x + random.uniform(-self.skew, self.skew) * w, y + random.uniform(-self.skew, self.skew) * h]
                 for x, y in corners]
        image = F.perspective(image, corners, moved, interpolation=F.InterpolationMode.BILINEAR, fill=list(fill))
        return F.rotate(image, random.uniform(-self.degrees, self.degrees), F.InterpolationMode.BILINEAR,
                        fill=list(fill))


class _Frame:
    """torchvision-compatible callable on a uint8 tensor: a plain border of any colour (a screenshot's
    margin, a photo's mat) 2-12 % of the side wide, with probability ``p``; the size is kept."""

    def __init__(self, p: float) -> None:
        self.p = p

    def __call__(self, x):
        if random.random() >= self.p:
            return x
        import torch

        side = x.shape[-1]
        t = max(1, round(side * random.uniform(0.02, 0.12)))
        inner = torch.nn.functional.interpolate(x[None].float(), size=(x.shape[-2] - 2 * t, side - 2 * t),
                                                mode="bilinear", antialias=True, align_corners=False)[0]
        out = torch.empty_like(x)
        out[:] = torch.tensor([random.randrange(256) for _ in range(3)], dtype=x.dtype)[:, None, None]
        out[:, t:-t, t:-t] = inner.round().clamp(0, 255).to(x.dtype)
        return out


class _Resolution:
    """torchvision-compatible callable on a uint8 tensor, with probability ``p``: the photo as a
    thumbnail of ``low``..``high`` px brought back to size, smooth or blocky (an upscaled picture)."""

    def __init__(self, p: float, low: int, high: int) -> None:
        self.p, self.low, self.high = p, low, high

    def __call__(self, x):
        if random.random() >= self.p:
            return x
        import torch

        size = x.shape[-2:]
        small = random.randint(self.low, self.high)
        f = small / max(size)
        if f >= 1:
            return x
        y = torch.nn.functional.interpolate(x[None].float(), size=(max(2, round(size[0] * f)), max(2, round(size[1] * f))),
                                            mode="area")
        mode = random.choice(["nearest", "bilinear", "bicubic"])
        y = torch.nn.functional.interpolate(y, size=tuple(size), mode=mode,
                                            **({} if mode == "nearest" else {"align_corners": False}))
        return y[0].round().clamp(0, 255).to(x.dtype)


class _Light:
    """torchvision-compatible callable on a float tensor in 0..1: gamma, a colour cast (each channel
    scaled on its own) and a shadow (a brightness ramp across the photo), with probability ``p``."""

    def __init__(self, p: float) -> None:
        self.p = p

    def __call__(self, x):
        if random.random() >= self.p:
            return x
        import torch

        x = x.clamp(0, 1) ** random.uniform(0.6, 1.7)
        x = x * torch.tensor([random.uniform(0.8, 1.2) for _ in range(3)])[:, None, None]
        n = x.shape[-1]
        ramp = torch.linspace(random.uniform(0.6, 1.0), random.uniform(1.0, 1.25), n)
        x = x * (ramp[None, None, :] if random.random() < 0.5 else ramp[None, :, None])
        return x.clamp(0, 1)


def stranger(picture: Image.Image, other: Image.Image) -> Image.Image:
    """A product the shop does not sell, made of two it does: the top half of ``picture`` over the
    bottom half of ``other`` (its nearest neighbour in the catalog). The identification's unknown
    rule is fitted on photos of such products: close to the catalog, as a real unsold product is,
    but named rightly by nothing in it."""
    a = np.asarray(picture.convert("RGB"))
    b = np.asarray(other.convert("RGB").resize(picture.size, Image.BICUBIC))
    out = a.copy()
    out[a.shape[0] // 2:] = b[a.shape[0] // 2:]
    return Image.fromarray(out, "RGB")


def training_transform(image_size: int, crop_min: float = 0.75, *, as_picture: bool = False):
    """The fine-tuning augmentation: PIL image -> normalised float tensor [3, size, size].

    ``crop_min``: the smallest share of the picture a random crop keeps. One rotation comes before
    the new background, so its corners are covered like a photo's (rotating after it with black
    corners only, and cropping down to 60 %, cost 15 points of recall@1, benchmarks/README.md); the
    other, after it, turns and skews an edited photo with corners of any colour. Then frames,
    thumbnails and blocky upscales, light and colour casts, sensor noise, blur and JPEG: what
    photos unlike the catalog picture carry (benchmarks/photos.py makes such photos its own way).
    ``as_picture``: the photo as a PIL image instead of the normalised tensor (for calibration)."""
    import torch
    from torchvision.transforms import v2

    from services.vision.core.nets import IMAGENET_MEAN, IMAGENET_STD

    side = image_size * 3 // 2
    return v2.Compose([
        _RotateOnBackdrop(20, side),
        _RandomBackground(0.8),
        _FillAnyway(0.35, 30, 0.08),
        v2.PILToTensor(),
        v2.Resize(side, antialias=True),
        v2.RandomResizedCrop(image_size, scale=(crop_min, 1.0), ratio=(0.8, 1.25), antialias=True),
        _Frame(0.3),
        _Resolution(0.4, max(8, image_size // 5), image_size * 3 // 4),
        v2.ColorJitter(brightness=0.25, contrast=0.25, saturation=0.2, hue=0.02),
        v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 1.0))], p=0.2),
        v2.RandomApply([v2.JPEG((25, 95))], p=0.7),
        v2.ToDtype(torch.float32, scale=True),
        _Light(0.5),
        v2.RandomApply([v2.GaussianNoise(sigma=0.02)], p=0.3),
        v2.ToPILImage() if as_picture else v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def label_photo(product: Image.Image, code_png: bytes | None, *, side: int = 480,
                background: tuple[int, int, int] = (236, 232, 224), product_scale: float = 0.5,
                code_scale: float = 0.38) -> Image.Image:
    """A photo of a package: the product picture on the left, its printed code (a QR PNG) on the
    right, on a plain surface; ``code_png=None`` leaves the code out."""
    photo = Image.new("RGB", (side, int(side * 0.62)), background)
    p = product.convert("RGB")
    target = int(side * product_scale)
    p = p.resize((target, int(target * p.height / p.width)), Image.BICUBIC)
    photo.paste(p, (int(side * 0.04), (photo.height - p.height) // 2))
    if code_png is not None:
        code = Image.open(io.BytesIO(code_png)).convert("RGB")
        c = int(side * code_scale)
        code = code.resize((c, c), Image.NEAREST)
        photo.paste(code, (side - c - int(side * 0.05), (photo.height - c) // 2))
    return photo
