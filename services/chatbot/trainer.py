"""Training the intent model: the repository's data set -> a versioned classifier, with progress.

Embeddings of the training sentences are cached on disk by (encoder, text), so a retrain after
a small data change, or on a restarted container with a persistent volume, only embeds what is
new. Evaluation on the held-out split is reported with every version (the job's metrics).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from services.chatbot.core.data import load_utterances
from services.chatbot.core.embeddings import Embedders
from services.chatbot.core.intents import IntentClassifier, LanguageRoutedClassifier
from services.chatbot.core.language import detect_language
from services.common.jobs import Progress, TrainResult
from services.common.logging import get_logger
from services.common.models import ModelHolder, ModelRegistry, gate_params, new_version, quality_gate
from services.common.progress import progress as progress_bar

log = get_logger(__name__)

# Chosen by benchmarks/bench_chatbot.py (accuracy per language on the held-out split): English gains
# from the English MiniLM embeddings, Chinese does not (MiniLM has no Chinese).
DEFAULT_FEATURES: dict[str, tuple[str, ...]] = {"en": ("tfidf", "e5", "minilm"), "zh": ("tfidf", "e5")}
DEFAULT_C = 1.0
DEFAULT_MODEL = "svm"
TRAIN_PARAMS: dict[str, Callable[[str], object]] = {
    "features_en": lambda v: tuple(v.split("+")), "features_zh": lambda v: tuple(v.split("+")),
    "C": float, "model": str,
}


def make_classifier(params: dict[str, str]) -> LanguageRoutedClassifier:
    """The classifier to train, from the defaults and the job's params (validated here: bad ones raise)."""
    unknown = sorted(set(params) - set(TRAIN_PARAMS))
    if unknown:
        raise ValueError(f"unknown params {unknown}; known: {', '.join(sorted(TRAIN_PARAMS))}")
    c = float(params.get("C", DEFAULT_C))
    model = params.get("model", DEFAULT_MODEL)
    return LanguageRoutedClassifier({
        lang: IntentClassifier(TRAIN_PARAMS[f"features_{lang}"](params[f"features_{lang}"])
                               if f"features_{lang}" in params else features, C=c, model=model)
        for lang, features in DEFAULT_FEATURES.items()
    })


class EmbeddingCache:
    """(encoder, text) -> vector, in memory and in one .npz per encoder under ``directory``."""

    def __init__(self, embedders: Embedders, directory: Path | None) -> None:
        self.embedders = embedders
        self.directory = directory
        self.vectors: dict[str, dict[str, np.ndarray]] = {}

    def _path(self, name: str) -> Path | None:
        return self.directory / f"chatbot-embeddings-{self.embedders.identity(name)}.npz" if self.directory else None

    def _load(self, name: str) -> dict[str, np.ndarray]:
        if name not in self.vectors:
            self.vectors[name] = {}
            path = self._path(name)
            if path is not None and path.exists():
                with np.load(path) as data:
                    self.vectors[name] = {k: data[k] for k in data.files}
        return self.vectors[name]

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()

    def embed(self, name: str, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        known = self._load(name)
        missing = list(dict.fromkeys(t for t in texts if self._key(t) not in known))
        for start in range(0, len(missing), 32):
            chunk = missing[start : start + 32]
            for text, vector in zip(chunk, self.embedders(name, chunk), strict=True):
                known[self._key(text)] = vector
            if progress:
                progress(len(chunk))
        if missing and self._path(name) is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = self._path(name).with_suffix(".tmp.npz")
            np.savez(tmp, **known)
            tmp.replace(self._path(name))
        return np.stack([known[self._key(t)] for t in texts]) if texts else np.zeros((0, 384), np.float32)

    def __call__(self, name: str, texts: Sequence[str]) -> np.ndarray:
        return self.embed(name, texts)


class IntentTrainer:
    def __init__(self, embedders: Embedders, registry: ModelRegistry, holder: ModelHolder,
                 cache_dir: Path | None, on_new_version: Callable[[str, dict], None] | None = None) -> None:
        self.embedders = embedders
        self.cache = EmbeddingCache(embedders, cache_dir)
        self.registry = registry
        self.holder = holder
        self.on_new_version = on_new_version

    def train(self, model: str, params: dict[str, str], progress: Progress) -> TrainResult:
        started = time.perf_counter()
        params, force = gate_params(params)
        classifier = make_classifier(params)
        train, test = load_utterances("train"), load_utterances("test")
        texts = [u.text for u in train] + [u.text for u in test]
        encoders = list(classifier.embeddings)
        total = len(texts) * len(encoders)
        done = [0]
        with progress_bar(total=total, desc="embedding intent data", unit="sentence") as bar:
            def advance(n: int) -> None:
                done[0] += n
                bar.update(n)
                progress(0.7 * done[0] / max(total, 1), f"embedding sentences ({done[0]}/{total})")

            for name in encoders:
                self.cache.embed(name, texts, advance)
        progress(0.72, "fitting the classifiers (3-fold threshold tuning, then all the data)")
        classifier.fit([u.text for u in train], [u.intent for u in train], self.cache)
        progress(0.9, "evaluating on the held-out split")
        metrics = evaluate(classifier, test, self.cache)
        # The quality gate: the serving classifier on the same held-out split.
        serving, serving_version = self.holder.model, self.holder.version
        serving_accuracy = None
        if serving is not None:
            progress(0.95, f"evaluating the serving model {serving_version} on the same split")
            try:
                serving_accuracy = evaluate(serving, test, self.cache)["accuracy"]
            except Exception:  # an old artifact that cannot be evaluated is no reason to fail the job
                log.warning("serving_model_not_evaluated", version=serving_version, exc_info=True)
        gate = quality_gate("accuracy", metrics["accuracy"], serving_accuracy, serving_version=serving_version,
                            force=force)
        metrics.update(gate.metrics())
        version = new_version("intent")
        meta = {"metrics": metrics, "params": params, "threshold": classifier.threshold,
                "encoders": self.embedders.backend,
                "train_utterances": len(train), "train_seconds": round(time.perf_counter() - started, 1)}
        self.holder.offer(classifier, version, meta, gate)
        if self.on_new_version is not None:
            self.on_new_version(version, meta)
        log.info("intent_model_trained", version=version, accuracy=round(metrics["accuracy"], 4),
                 seconds=meta["train_seconds"], served=gate.serve)
        return TrainResult(version, metrics, f"trained on {len(train)} utterances; held-out accuracy "
                                             f"{metrics['accuracy']:.3f}; {gate.reason}")


def evaluate(classifier: LanguageRoutedClassifier, utterances: Sequence, embed: Callable) -> dict[str, float]:
    """Held-out accuracy overall and per language (by what the message is, detected as the service does)."""
    predicted = [p.name for p in classifier.predict([u.text for u in utterances], embed)]
    correct = np.array([p == u.intent for p, u in zip(predicted, utterances, strict=True)])
    language = np.array([detect_language(u.text) for u in utterances])
    metrics = {"accuracy": float(correct.mean())}
    for lang in ("en", "zh"):
        if (language == lang).any():
            metrics[f"accuracy_{lang}"] = float(correct[language == lang].mean())
    return metrics
