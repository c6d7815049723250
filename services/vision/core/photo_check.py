"""What the photo sent for verification says besides its code (pure image work, no Redis or gRPC).

- ``is_blurred``: asked when no code could be read, so the shopper is told to hold the camera still.
- ``match_product``: asked once the code is valid and ours. The code (and a margin) is painted over
  in the photo's backdrop colour, what is left that differs from the backdrop is cropped, and image
  search says whether it looks like the code's product (``judge_match``): the code's product among
  the top candidates is a match; another product identified with confidence is a mismatch (a genuine
  label moved onto a fake); nothing next to the code, or no confident answer, leaves the code alone
  to be checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from PIL import Image, ImageFilter

from services.vision.core.distort import border_colour, foreground_mask
from services.vision.core.model import Identification, Product, VisionModel
from services.vision.core.verification import ProductMatch

BLUR_VARIANCE = 60.0  # variance of the edge image below which a photo counts as blurred
MIN_PRODUCT_SHARE = 0.02  # share of the photo (code hidden) that must differ from the backdrop
CANDIDATES = 10  # the code's product among this many nearest products is a match
MISMATCH_PROBABILITY = 0.8  # another product identified at least this surely is a mismatch

Box = tuple[int, int, int, int]  # x0, y0, x1, y1


def is_blurred(image: Image.Image) -> bool:
    edges = np.asarray(image.convert("L").filter(ImageFilter.FIND_EDGES), dtype=np.float32)
    return float(edges.var()) < BLUR_VARIANCE


def hide_codes(image: Image.Image, boxes: Iterable[Box]) -> Image.Image:
    """A copy of the photo with each code, and a margin of an eighth of its width (at least 4 pixels),
    painted over in the photo's backdrop colour."""
    photo = image.copy()
    fill = border_colour(photo)
    for x0, y0, x1, y1 in boxes:
        pad = max(4, (x1 - x0) // 8)
        photo.paste(fill, (max(0, x0 - pad), max(0, y0 - pad), x1 + pad, y1 + pad))
    return photo


def crop_product(photo: Image.Image) -> Image.Image | None:
    """The part of the photo that differs from its backdrop, or None when (almost) nothing does."""
    mask = foreground_mask(photo)
    if mask.mean() < MIN_PRODUCT_SHARE:
        return None
    ys, xs = np.nonzero(mask)
    return photo.crop((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))


def judge_match(answer: Identification, product_id: str, products: Mapping[str, Product]) -> ProductMatch:
    """What image search's ``answer`` for the cropped product says about the code's ``product_id``."""
    ids = [m.product_id for m in answer.candidates]
    if product_id in ids[:CANDIDATES]:
        return ProductMatch("match", "the product in the photo looks like the product of the code")
    best = answer.best
    if answer.known and best is not None and best.probability >= MISMATCH_PROBABILITY and product_id in products:
        named = products[product_id].title
        return ProductMatch("mismatch", f"the photo shows {best.title!r}, but the code belongs to {named!r}")
    return ProductMatch("unsure", "the product in the photo could not be matched with confidence")


def match_product(model: VisionModel | None, image: Image.Image, boxes: Iterable[Box],
                  product_id: str) -> ProductMatch:
    """Hide the codes, then ask image search whether what is left looks like the code's product."""
    if model is None or not len(model.index):
        return ProductMatch("unsure")
    product = crop_product(hide_codes(image, boxes))
    if product is None:
        return ProductMatch("no_product", "no product next to the code in the photo: the code alone was checked")
    return judge_match(model.identify(product, CANDIDATES), product_id, model.products)
