"""The photo next to a code (services/vision/core/photo_check.py): the blur test, hiding the code,
cropping the product and what image search's answer means for the code's product. No Redis, no model."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from services.vision.core.model import Identification, Match, Product
from services.vision.core.photo_check import (
    crop_product,
    hide_codes,
    is_blurred,
    judge_match,
    match_product,
)

BACKDROP = (236, 232, 224)
PRODUCTS = {"p1": Product("p1", "Red Tote", "bags", "f1"), "p2": Product("p2", "Blue Sneaker", "sneakers", "f2")}


def photo(product_box=(20, 30, 80, 90), code_box=(120, 30, 180, 90)) -> Image.Image:
    """A backdrop with a red product on the left and a black-and-white 'code' on the right."""
    image = Image.new("RGB", (200, 120), BACKDROP)
    draw = ImageDraw.Draw(image)
    if product_box is not None:
        draw.rectangle(product_box, fill=(200, 30, 30))
    if code_box is not None:
        x0, y0, x1, y1 = code_box
        for i, x in enumerate(range(x0, x1, 6)):
            draw.rectangle((x, y0, min(x + 5, x1), y1), fill=(0, 0, 0) if i % 2 else (255, 255, 255))
    return image


def match(pid: str, probability: float) -> Match:
    return Match(pid, PRODUCTS[pid].title if pid in PRODUCTS else pid, "bags", 0.9, probability)


def test_a_sharp_photo_is_not_blurred_and_a_flat_or_smeared_one_is():
    # A dark backdrop: PIL's FIND_EDGES leaves the outermost pixels unfiltered, so on a light backdrop
    # a small photo's own border already passes the variance bar (kept as it was; see the blur test).
    dark = Image.new("RGB", (200, 120), (10, 10, 10))
    ImageDraw.Draw(dark).rectangle((20, 30, 80, 90), fill=(200, 30, 30))
    assert not is_blurred(dark)
    assert not is_blurred(photo())
    assert is_blurred(Image.new("RGB", (200, 120), (10, 10, 10)))
    assert is_blurred(dark.filter(ImageFilter.GaussianBlur(8)))


def test_hiding_a_code_paints_it_and_a_margin_in_the_backdrop_colour_on_a_copy():
    image = photo(product_box=None)
    hidden = hide_codes(image, [(120, 30, 180, 90)])
    a = np.asarray(hidden)
    pad = max(4, 60 // 8)
    assert (a[30 - pad:90 + pad, 120 - pad:180 + pad] == BACKDROP).all()
    assert np.asarray(image)[60, 130].tolist() != list(BACKDROP)  # the original is untouched


def test_the_product_is_cropped_to_what_differs_from_the_backdrop():
    crop = crop_product(photo(code_box=None))
    assert crop is not None and crop.size == (61, 61)
    assert crop_product(Image.new("RGB", (200, 120), BACKDROP)) is None
    speck = Image.new("RGB", (200, 120), BACKDROP)
    speck.putpixel((50, 50), (0, 0, 0))  # far below 2 % of the photo: no product
    assert crop_product(speck) is None


def test_the_answer_of_image_search_decides_match_mismatch_or_unsure():
    found = Identification(True, match("p2", 0.9), [match("p2", 0.9), match("p1", 0.05)])
    assert judge_match(found, "p1", PRODUCTS).status == "match"
    other = Identification(True, match("p2", 0.9), [match("p2", 0.9)])
    moved = judge_match(other, "p1", PRODUCTS)
    assert moved.status == "mismatch"
    assert moved.detail == "the photo shows 'Blue Sneaker', but the code belongs to 'Red Tote'"
    assert judge_match(Identification(True, match("p2", 0.79), [match("p2", 0.79)]), "p1", PRODUCTS).status == "unsure"
    assert judge_match(Identification(False, match("p2", 0.95), [match("p2", 0.95)]), "p1", PRODUCTS).status == "unsure"
    assert judge_match(other, "p-unknown", PRODUCTS).status == "unsure"  # a code for a product the model lacks
    assert judge_match(Identification(False, None, []), "p1", PRODUCTS).status == "unsure"


@dataclass
class StubModel:
    """What match_product needs of a VisionModel: its index size, products and identify."""

    answer: Identification
    index: list = field(default_factory=lambda: [1])
    products: dict = field(default_factory=lambda: dict(PRODUCTS))
    asked: list = field(default_factory=list)

    def identify(self, image: Image.Image, k: int, category: str = "") -> Identification:
        self.asked.append((image, k))
        return self.answer


def test_match_product_hides_the_code_and_asks_about_the_rest():
    model = StubModel(Identification(True, match("p1", 0.9), [match("p1", 0.9)]))
    result = match_product(model, photo(), [(120, 30, 180, 90)], "p1")  # type: ignore[arg-type]
    assert result.status == "match"
    (asked, k), = model.asked
    assert k == 10 and asked.size == (61, 61)  # the product alone, not the code beside it
    assert match_product(None, photo(), [], "p1").status == "unsure"
    assert match_product(StubModel(model.answer, index=[]), photo(), [], "p1").detail == ""  # type: ignore[arg-type]
    alone = match_product(model, photo(product_box=None), [(120, 30, 180, 90)], "p1")  # type: ignore[arg-type]
    assert alone.status == "no_product" and "code alone" in alone.detail
