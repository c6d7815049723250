"""Policy questions answered by retrieval from the bilingual FAQ (data/knowledge_base.yaml).

Each entry is indexed by its question and keywords in both languages. A message is matched by
the multilingual e5 embedding (meaning, across languages) blended with character n-gram
TF-IDF (exact shop words such as "fapiao", "SF Express", "积分"); only entries of the topics the
intent allows are candidates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from services.chatbot.core.data import FaqEntry
from services.chatbot.core.intents import tfidf_rows

MIN_SCORE = 0.5
EMBEDDING_WEIGHT = 0.7


class KnowledgeBase:
    def __init__(self, entries: Sequence[FaqEntry], embed_query: Callable[[Sequence[str]], np.ndarray] | None,
                 embed_passages: Callable[[Sequence[str]], np.ndarray] | None = None) -> None:
        self.entries = list(entries)
        self.by_id = {e.id: e for e in self.entries}
        self.embed_query = embed_query
        texts = [self._text(e) for e in self.entries]
        self.vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True)
        self.tfidf = normalize(self.vectorizer.fit_transform(texts))
        self.vectors = (embed_passages or embed_query)(texts) if embed_query is not None else None

    @staticmethod
    def _text(entry: FaqEntry) -> str:
        return " ".join([entry.question["en"], entry.question["zh"], *entry.keywords["en"], *entry.keywords["zh"]])

    def scores(self, text: str) -> np.ndarray:
        lexical = np.asarray((self.tfidf @ tfidf_rows(self.vectorizer, [text]).T).todense()).ravel()
        if self.vectors is None:
            return lexical
        semantic = self.vectors @ self.embed_query([text])[0]
        return EMBEDDING_WEIGHT * semantic + (1 - EMBEDDING_WEIGHT) * lexical

    def search(self, text: str, topics: Sequence[str] = (), k: int = 3) -> list[tuple[FaqEntry, float]]:
        """The best entries for a message, best first, restricted to ``topics`` when given."""
        scores = self.scores(text)
        order = np.argsort(-scores)
        out = [(self.entries[i], float(scores[i])) for i in order if not topics or self.entries[i].topic in topics]
        return out[:k]

    def answer(self, text: str, topics: Sequence[str] = ()) -> FaqEntry | None:
        best = self.search(text, topics, k=1)
        return best[0][0] if best and best[0][1] >= MIN_SCORE else None
