"""Load the Fashion-MNIST images that the Debian package ``dataset-fashion-mnist`` installs.

The package ships the original gzipped IDX files in ``/usr/share/datasets/fashion-mnist``;
``SHOPAI_FASHION_MNIST_DIR`` points elsewhere (a directory holding the same four files).
Parsing uses numpy only, so no extra dependency is needed.
"""

from __future__ import annotations

import functools
import gzip
import os
from pathlib import Path

import numpy as np

DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
ENV_VAR = "SHOPAI_FASHION_MNIST_DIR"

# Label index -> the official class name.
CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


class FashionMnistNotFound(FileNotFoundError):
    """The Fashion-MNIST files are not where we looked."""


def fashion_mnist_dir() -> Path:
    """The directory holding the IDX files: ``$SHOPAI_FASHION_MNIST_DIR`` or the Debian package path."""
    override = os.environ.get(ENV_VAR)
    directory = Path(override) if override else DEFAULT_DIR
    missing = [name for pair in _FILES.values() for name in pair if not (directory / name).is_file()]
    if missing:
        raise FashionMnistNotFound(
            f"Fashion-MNIST files {missing} not found in {directory}. Install the Debian package "
            f"'{DEBIAN_PACKAGE}' (apt-get install {DEBIAN_PACKAGE}), or set {ENV_VAR} to a directory "
            "containing train-/t10k-images-idx3-ubyte.gz and train-/t10k-labels-idx1-ubyte.gz."
        )
    return directory


def _read_idx(path: Path) -> np.ndarray:
    """Parse one (gzipped) IDX file: magic (0,0,dtype,ndim), big-endian dims, then the data."""
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an IDX file")
    dtype_code, ndim = raw[2], raw[3]
    if dtype_code != 0x08:  # unsigned byte, the only type Fashion-MNIST uses
        raise ValueError(f"{path}: unsupported IDX element type 0x{dtype_code:02x}")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    data = np.frombuffer(raw, dtype=np.uint8, offset=offset)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: expected {int(np.prod(dims))} values, found {data.size}")
    return data.reshape(dims)


@functools.lru_cache(maxsize=4)
def _load(directory: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    images_name, labels_name = _FILES[split]
    images = _read_idx(Path(directory) / images_name)
    labels = _read_idx(Path(directory) / labels_name)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != (images.shape[0],):
        raise ValueError(f"unexpected Fashion-MNIST shapes {images.shape} / {labels.shape}")
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_fashion_mnist(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 [N, 28, 28], labels uint8 [N])`` for ``split`` "train" (60,000) or "test" (10,000).

    Images are light garments on a black background (0 = background, 255 = brightest).
    The arrays are read-only and cached per process.
    """
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    return _load(str(fashion_mnist_dir()), split)
