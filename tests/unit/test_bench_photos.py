"""benchmarks/photos.py: the shoppers' photos of the image-search benchmark (pure: no broker, no Redis)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("cv2")

from benchmarks.photos import shopper_photo

DRAWS = 60


@pytest.fixture(scope="module")
def picture() -> Image.Image:
    """A 28x28 catalog-like picture: a dark garment on a plain light backdrop."""
    rgb = np.full((28, 28, 3), 235, np.uint8)
    rgb[5:24, 8:20] = (40, 60, 150)
    rgb[5:10, 4:24] = (40, 60, 150)
    return Image.fromarray(rgb, "RGB")


@pytest.fixture(scope="module")
def drawn(picture: Image.Image) -> tuple[list[Image.Image], list[bool]]:
    """The photos of one generator, and for each whether the frame step ran (seen through OpenCV's border
    call)."""
    import benchmarks.photos as module

    rng = np.random.default_rng(123)
    photos, framed = [], []
    border = module.cv2.copyMakeBorder
    calls: list[int] = []

    def spy(*args, **kwargs):
        calls.append(1)
        return border(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module.cv2, "copyMakeBorder", spy)
        for _ in range(DRAWS):
            before = len(calls)
            photos.append(shopper_photo(picture, rng))
            framed.append(len(calls) > before)
    return photos, framed


@pytest.fixture(scope="module")
def photos(drawn: tuple[list[Image.Image], list[bool]]) -> list[Image.Image]:
    return drawn[0]


def test_a_seed_gives_the_same_photos(picture: Image.Image, photos: list[Image.Image]) -> None:
    rng = np.random.default_rng(123)
    again = [shopper_photo(picture, rng) for _ in range(5)]
    for a, b in zip(photos[:5], again, strict=True):
        assert a.size == b.size
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_another_seed_gives_other_photos(picture: Image.Image, photos: list[Image.Image]) -> None:
    other = shopper_photo(picture, np.random.default_rng(7))
    assert other.size != photos[0].size or not np.array_equal(np.asarray(other), np.asarray(photos[0]))


def test_photos_are_rgb_of_varied_sizes(photos: list[Image.Image]) -> None:
    assert all(p.mode == "RGB" for p in photos)
    long_sides = [max(p.size) for p in photos]
    assert min(long_sides) < 41, "no thumbnail among the draws"
    assert max(long_sides) > 499, "no large photo among the draws"
    assert len(set(long_sides)) > DRAWS // 3


def _uniform_border(photo: Image.Image) -> bool:
    """The outer pixels of all four sides share one colour (up to the photo's noise, blur and JPEG)."""
    rgb = np.asarray(photo).astype(np.float32)
    t = max(1, int(max(rgb.shape[:2]) * 0.02))
    edges = [rgb[:t, t:-t], rgb[-t:, t:-t], rgb[t:-t, :t], rgb[t:-t, -t:]]
    colour = np.median(np.concatenate([e.reshape(-1, 3) for e in edges]), axis=0)
    return all(float(np.abs(e.reshape(-1, 3) - colour).max(axis=1).mean()) < 20 for e in edges)


def test_some_photos_carry_a_frame(drawn: tuple[list[Image.Image], list[bool]]) -> None:
    photos, framed = drawn
    assert 0 < sum(framed) < DRAWS, "the frame step ran on every photo or on none"
    # a frame is 3-12 % of the side: on photos of 80 px and more it is a plain band around the picture
    large = [(p, f) for p, f in zip(photos, framed, strict=True) if max(p.size) >= 80]
    with_frame = [_uniform_border(p) for p, f in large if f]
    without = [_uniform_border(p) for p, f in large if not f]
    assert with_frame and sum(with_frame) >= len(with_frame) / 2
    assert without and sum(without) < len(without) / 2
