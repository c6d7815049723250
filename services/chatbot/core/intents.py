"""Intent classification: features from character n-grams and/or sentence embeddings, a linear model
on top, one feature set per language, and an out-of-scope answer when the model is not confident.

The feature sets and the model were chosen by ``benchmarks/bench_chatbot.py`` on the held-out split:
a calibrated linear SVM over character 1–3-grams + multilingual e5 embeddings for Chinese, plus the
English MiniLM embeddings for English. The classifier stores only its own parameters (vectorizer,
SVMs, calibration, threshold), never the embedding models, so a version is small and loads fast.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC

from services.chatbot.core.language import detect_language

OUT_OF_SCOPE = "out_of_scope"
# embed(encoder name, texts) -> (n, d) L2-normalised vectors
Embed = Callable[[str, Sequence[str]], np.ndarray]
EMBEDDINGS = ("minilm", "e5")
FEATURES = ("tfidf", "words", *EMBEDDINGS)
MODELS = ("svm", "logreg")


@dataclass(frozen=True)
class IntentPrediction:
    name: str
    confidence: float
    ranking: tuple[tuple[str, float], ...]  # best few, best first


def _no_embed(name: str, texts: Sequence[str]) -> np.ndarray:
    raise RuntimeError(f"this classifier needs the {name} embeddings")


class IntentClassifier:
    """One feature set and one linear model.

    ``features``: any of "tfidf" (character 1–3-grams within words: no tokenizer, typo-tolerant, works
    for Chinese), "words" (word 1–2-grams), "minilm", "e5"; several are concatenated. ``model``:
    "svm" (linear SVM with sigmoid-calibrated probabilities) or "logreg".
    """

    def __init__(self, features: Sequence[str] = ("tfidf", "e5"), C: float = 1.0, model: str = "svm") -> None:
        unknown = set(features) - set(FEATURES)
        if unknown or not features:
            raise ValueError(f"unknown features {sorted(unknown)}; expected some of {FEATURES}")
        if model not in MODELS:
            raise ValueError(f"unknown model {model!r}; expected one of {MODELS}")
        self.features = tuple(features)
        self.C = C
        self.model_kind = model
        self.vectorizers: dict[str, TfidfVectorizer] = {}
        self.model = None
        self.threshold = 0.0

    @property
    def embeddings(self) -> tuple[str, ...]:
        return tuple(f for f in self.features if f in EMBEDDINGS)

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.model.classes_]

    def _matrix(self, texts: Sequence[str], embed: Embed, fit: bool = False) -> sp.csr_matrix:
        parts = []
        for feature in self.features:
            if feature in ("tfidf", "words"):
                if fit:
                    self.vectorizers[feature] = (
                        TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True)
                        if feature == "tfidf" else
                        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True,
                                        token_pattern=r"(?u)\b\w+\b"))
                    parts.append(self.vectorizers[feature].fit_transform(texts))
                else:
                    parts.append(self.vectorizers[feature].transform(texts))
            else:
                parts.append(sp.csr_matrix(embed(feature, texts)))
        return sp.hstack(parts, format="csr")

    def _estimator(self, folds: int = 5):
        if self.model_kind == "logreg":
            return LogisticRegression(C=self.C, max_iter=3000)
        return CalibratedClassifierCV(LinearSVC(C=self.C), cv=folds, method="sigmoid")

    def fit(self, texts: Sequence[str], labels: Sequence[str], embed: Embed = _no_embed,
            tune_threshold: bool = True) -> IntentClassifier:
        texts, labels = list(texts), list(labels)
        if tune_threshold and OUT_OF_SCOPE in labels:
            self.threshold = self._tune_threshold(texts, labels, embed)
        self.model = self._estimator()
        self.model.fit(self._matrix(texts, embed, fit=True), labels)
        return self

    def _tune_threshold(self, texts: list[str], labels: list[str], embed: Embed) -> float:
        """The confidence below which a message is out of scope, from 3-fold predictions on the training
        data: the value that maximises accuracy when low-confidence answers count as out_of_scope."""
        best_prob = np.zeros(len(texts))
        predicted = np.empty(len(texts), dtype=object)
        for fit_idx, held_idx in StratifiedKFold(n_splits=3, shuffle=True, random_state=7).split(texts, labels):
            probe = IntentClassifier(self.features, self.C, self.model_kind)
            probe.model = probe._estimator(folds=3)
            probe.model.fit(probe._matrix([texts[i] for i in fit_idx], embed, fit=True), [labels[i] for i in fit_idx])
            proba = probe.model.predict_proba(probe._matrix([texts[i] for i in held_idx], embed))
            best_prob[held_idx] = proba.max(axis=1)
            predicted[held_idx] = probe.model.classes_[proba.argmax(axis=1)]
        truth = np.asarray(labels, dtype=object)
        best, best_accuracy = 0.0, -1.0
        for threshold in np.arange(0.0, 0.61, 0.02):
            accuracy = float((np.where(best_prob < threshold, OUT_OF_SCOPE, predicted) == truth).mean())
            if accuracy > best_accuracy + 1e-9:
                best, best_accuracy = float(threshold), accuracy
        return best

    def predict(self, texts: Sequence[str], embed: Embed = _no_embed, top: int = 3,
                languages: Sequence[str] | None = None) -> list[IntentPrediction]:
        if not texts:
            return []
        proba = self.model.predict_proba(self._matrix(list(texts), embed))
        classes = self.classes
        out = []
        for row in proba:
            order = np.argsort(-row)[:top]
            ranking = tuple((classes[i], float(row[i])) for i in order)
            name, confidence = ranking[0]
            if confidence < self.threshold:
                name = OUT_OF_SCOPE
            out.append(IntentPrediction(name, confidence, ranking))
        return out


class LanguageRoutedClassifier:
    """One classifier per language, each trained on all the data (Chinese and English share intents and
    much vocabulary), asked according to the message's detected language."""

    def __init__(self, by_language: Mapping[str, IntentClassifier]) -> None:
        self.by_language = dict(by_language)

    @property
    def embeddings(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e for c in self.by_language.values() for e in c.embeddings))

    @property
    def threshold(self) -> dict[str, float]:
        return {lang: c.threshold for lang, c in self.by_language.items()}

    def fit(self, texts: Sequence[str], labels: Sequence[str], embed: Embed = _no_embed) -> LanguageRoutedClassifier:
        for classifier in self.by_language.values():
            classifier.fit(texts, labels, embed)
        return self

    def predict(self, texts: Sequence[str], embed: Embed = _no_embed, top: int = 3,
                languages: Sequence[str] | None = None) -> list[IntentPrediction]:
        languages = list(languages) if languages is not None else [detect_language(t) for t in texts]
        out: list[IntentPrediction | None] = [None] * len(texts)
        for lang, classifier in self.by_language.items():
            rows = [i for i, tl in enumerate(languages) if tl == lang]
            for i, prediction in zip(rows, classifier.predict([texts[i] for i in rows], embed, top), strict=True):
                out[i] = prediction
        fallback = next(iter(self.by_language.values()))
        rest = [i for i, p in enumerate(out) if p is None]
        for i, prediction in zip(rest, fallback.predict([texts[i] for i in rest], embed, top), strict=True):
            out[i] = prediction
        return out  # type: ignore[return-value]
