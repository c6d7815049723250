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
from scipy.special import expit
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
        return sp.hstack([sp.csr_matrix(p) for p in self._parts(texts, embed, fit)], format="csr")

    def _parts(self, texts: Sequence[str], embed: Embed, fit: bool = False) -> list:
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
                    parts.append(tfidf_rows(self.vectorizers[feature], texts))
            else:
                parts.append(embed(feature, texts))
        return parts

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
        compiled = self._compiled()
        parts = self._parts(list(texts), embed)
        proba = (compiled.predict_proba(parts) if compiled is not None
                 else self.model.predict_proba(sp.hstack([sp.csr_matrix(p) for p in parts], format="csr")))
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

    def _compiled(self) -> CalibratedSVMs | None:
        """The fitted model as a few array operations (sklearn's checks cost ~10x the arithmetic for one
        message); None where the model is not the calibrated SVM this covers."""
        compiled = getattr(self, "_compiled_model", False)
        if compiled is False:
            widths = [len(self.vectorizers[f].vocabulary_) if f in self.vectorizers else None
                      for f in self.features]
            compiled = CalibratedSVMs.compile(self.model, widths)
            self._compiled_model = compiled
        return compiled

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_compiled_model", None)
        return state


class CalibratedSVMs:
    """``CalibratedClassifierCV(LinearSVC, method="sigmoid")`` over several classes, predicted as sklearn
    does (per fold: decision values, Platt sigmoid per class, normalised over the classes; then the mean of
    the folds), with every fold's weights in one matrix per feature block."""

    def __init__(self, blocks: list[np.ndarray], intercept: np.ndarray, a: np.ndarray, b: np.ndarray,
                 folds: int, classes: int) -> None:
        self.blocks, self.intercept, self.a, self.b = blocks, intercept, a, b
        self.folds, self.classes = folds, classes

    @classmethod
    def compile(cls, model, widths: list[int | None]) -> CalibratedSVMs | None:
        if not isinstance(model, CalibratedClassifierCV) or len(model.classes_) <= 2:
            return None
        coefs, intercepts, a, b = [], [], [], []
        for fold in model.calibrated_classifiers_:
            svm = fold.estimator
            if (fold.method != "sigmoid" or not isinstance(svm, LinearSVC)
                    or list(svm.classes_) != list(model.classes_)):
                return None
            coefs.append(np.asarray(svm.coef_, dtype=np.float64))
            intercepts.append(np.asarray(svm.intercept_, dtype=np.float64))
            a.append([c.a_ for c in fold.calibrators])
            b.append([c.b_ for c in fold.calibrators])
        weights = np.vstack(coefs).T  # features x (folds * classes)
        # The vectorizers' widths are known; the rest of the columns are the embeddings', equally wide.
        embeddings = sum(1 for w in widths if w is None)
        rest = weights.shape[0] - sum(w for w in widths if w is not None)
        if rest < 0 or (embeddings and rest % embeddings) or (not embeddings and rest):
            return None
        out, start = [], 0
        for width in widths:
            step = width if width is not None else rest // embeddings
            out.append(np.ascontiguousarray(weights[start : start + step]))
            start += step
        return cls(out, np.concatenate(intercepts), np.asarray(a, np.float64).ravel(),
                   np.asarray(b, np.float64).ravel(), len(coefs), len(model.classes_))

    def predict_proba(self, parts: list) -> np.ndarray:
        scores = self.intercept + sum(np.asarray(part @ block) for part, block in zip(parts, self.blocks,
                                                                                       strict=True))
        proba = expit(-(self.a * scores + self.b)).reshape(len(scores), self.folds, self.classes)
        total = proba.sum(axis=2, keepdims=True)
        proba = np.divide(proba, total, out=np.full_like(proba, 1 / self.classes), where=total != 0)
        proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
        return proba.mean(axis=1)


def tfidf_rows(vectorizer: TfidfVectorizer, texts: Sequence[str]) -> sp.csr_matrix:
    """``vectorizer.transform(texts)`` for a fitted ``TfidfVectorizer`` without sklearn's per-call checks
    (~1 ms of a message's ~2 ms): the same analyzer, term counts, sublinear tf, idf and L2 norm."""
    if not (vectorizer.use_idf and vectorizer.norm == "l2" and not vectorizer.binary):
        return vectorizer.transform(texts)
    analyze, vocabulary, idf = vectorizer.build_analyzer(), vectorizer.vocabulary_, vectorizer.idf_
    indptr, indices, values = [0], [], []
    for text in texts:
        counts: dict[int, int] = {}
        for term in analyze(text):
            column = vocabulary.get(term)
            if column is not None:
                counts[column] = counts.get(column, 0) + 1
        columns = np.fromiter(sorted(counts), dtype=np.int64, count=len(counts))
        tf = np.asarray([counts[c] for c in columns], dtype=np.float64)
        row = (np.log(tf) + 1.0 if vectorizer.sublinear_tf else tf) * idf[columns]
        norm = np.sqrt((row * row).sum())
        indices.append(columns)
        values.append(row / norm if norm > 0 else row)
        indptr.append(indptr[-1] + len(columns))
    return sp.csr_matrix((np.concatenate(values) if values else np.zeros(0),
                          np.concatenate(indices) if indices else np.zeros(0, np.int64), indptr),
                         shape=(len(texts), len(vocabulary)))


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
