"""Product words in a message: the built-in vocabulary (``data/*.json``) plus what a catalog adds
(brands, title words), found in folded text in both languages, with typos in longer words corrected."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from services.chatbot.core.entities import vocabulary
from services.chatbot.core.entities.colours import COLOURS, colour_char_in_word
from services.chatbot.core.entities.text import fold

_FUZZY_STOP = vocabulary.typo_stop_words()
LATIN_TOKEN = re.compile(r"[a-z]+")
_PHRASE_GAP = re.compile(r"[\s\-&'’./]{0,3}")


@dataclass(frozen=True)
class Term:
    feats: frozenset[tuple[str, str]]
    kind: str  # "brand" | "noun" (names a kind of product) | "attr" | "stop" (masks 鞋底 and the like)


@dataclass(frozen=True)
class Hit:
    start: int
    end: int
    term: Term


def _feats(spec: Iterable[str]) -> frozenset[tuple[str, str]]:
    return frozenset(tuple(item.split(":", 1)) for item in spec)  # type: ignore[misc]


def _deletes(word: str, depth: int) -> set[str]:
    out, frontier = {word}, {word}
    for _ in range(depth):
        frontier = {w[:i] + w[i + 1:] for w in frontier for i in range(len(w))}
        out |= frontier
    return out


def _osa(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance (a transposition costs 1), or ``limit + 1`` once it exceeds it."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


class Lexicon:
    """Surface forms of product words, in both languages, found in text with typo tolerance."""

    def __init__(self) -> None:
        self.latin: dict[tuple[str, ...], Term] = {}
        self.cjk: dict[str, Term] = {}
        self._dirty = True
        self._fuzzy_dirty = True
        for en, zh, spec in vocabulary.nouns():
            self.add(en, zh, Term(_feats(spec), "noun"))
        for slot, table in (("material", "materials.json"), ("style", "styles.json")):
            for en, zh, values in vocabulary.attributes(table):
                self.add(en, zh, Term(frozenset((slot, v) for v in values), "attr"))
        for slug, en, zh in COLOURS:
            self.add("|".join(en), "|".join(zh), Term(frozenset({("colour", slug)}), "attr"))
        self.add("", vocabulary.not_products_zh(), Term(frozenset(), "stop"))

    def add(self, en: str, zh: str, term: Term) -> None:
        """Register forms ("a|b c") unless taken: the built-in vocabulary keeps its meaning."""
        for form in en.split("|"):
            key = tuple(LATIN_TOKEN.findall(fold(form)))
            if key and key not in self.latin:
                self.latin[key] = term
                self._dirty = self._fuzzy_dirty = True
        for form in zh.split("|"):
            form = fold(form.strip())
            if form and form not in self.cjk:
                self.cjk[form] = term
                self._dirty = True

    def _build(self) -> None:
        if self._dirty:
            forms = sorted(self.cjk, key=len, reverse=True)
            self._cjk_re = re.compile("|".join(map(re.escape, forms))) if forms else re.compile(r"(?!)")
            self._vocab = {tok for key in self.latin for tok in key}
            self._first = {key[0] for key in self.latin}
            self._maxlen = max((len(k) for k in self.latin), default=1)
            self._dirty = False

    def _build_fuzzy(self) -> None:
        if self._fuzzy_dirty:
            targets = {
                tok
                for key, term in self.latin.items()
                if not any(slot == "colour" for slot, _ in term.feats)
                for tok in key
                if len(tok) >= 5
            }
            self._fuzzy_index: dict[str, set[str]] = {}
            for t in targets:
                for d in _deletes(t, 2 if len(t) >= 8 else 1):
                    self._fuzzy_index.setdefault(d, set()).add(t)
            self._fuzzy_cache: dict[str, str | None] = {}
            self._fuzzy_dirty = False

    def _correct(self, tok: str) -> str | None:
        """The one vocabulary word within 1 typo (2 for words of 8+ letters) with the same first letter."""
        if len(tok) < 5 or tok in _FUZZY_STOP:
            return None
        if tok in self._fuzzy_cache:
            return self._fuzzy_cache[tok]
        cands: set[str] = set()
        for d in _deletes(tok, 2 if len(tok) >= 8 else 1):
            cands |= self._fuzzy_index.get(d, set())
        best, best_d, tie = None, 99, False
        for c in cands:
            if c[0] != tok[0]:
                continue
            limit = 2 if min(len(c), len(tok)) >= 8 else 1
            dist = _osa(tok, c, limit)
            if dist <= limit and dist < best_d:
                best, best_d, tie = c, dist, False
            elif dist == best_d:
                tie = True
        result = None if tie else best
        if len(self._fuzzy_cache) > 50_000:
            self._fuzzy_cache.clear()
        self._fuzzy_cache[tok] = result
        return result

    def hits(self, f: str, fuzzy: bool) -> tuple[list[Hit], list[tuple[int, int]]]:
        """Vocabulary words in folded text (longest first) and the Latin tokens that matched nothing."""
        self._build()
        if fuzzy:
            self._build_fuzzy()
        hits = [Hit(m.start(), m.end(), self.cjk[m.group()]) for m in self._cjk_re.finditer(f)]
        cjk_spans = [(h.start, h.end) for h in hits]
        hits = [h for h in hits if h.term.kind != "stop" and not colour_char_in_word(f, h.start, h.end)]
        toks = [
            m for m in LATIN_TOKEN.finditer(f)
            if not any(s <= m.start() < e for s, e in cjk_spans)
        ]
        canon = []
        for m in toks:
            tok = m.group()
            if tok not in self._vocab and fuzzy:
                tok = self._correct(tok) or tok
            canon.append(tok)
        unknown: list[tuple[int, int]] = []
        i, n = 0, len(toks)
        while i < n:
            for length in range(min(self._maxlen, n - i), 0, -1):
                term = self.latin.get(tuple(canon[i:i + length]))
                if term is None:
                    continue
                gaps = range(i, i + length - 1)
                if all(_PHRASE_GAP.fullmatch(f, toks[k].end(), toks[k + 1].start()) for k in gaps):
                    hits.append(Hit(toks[i].start(), toks[i + length - 1].end(), term))
                    i += length
                    break
            else:
                unknown.append(toks[i].span())
                i += 1
        hits.sort(key=lambda h: h.start)
        return hits, unknown

    def starts_term(self, f: str, pos: int) -> bool:
        """Whether a product word starts at ``pos`` (after spaces): "2 red tees", "两件 Nordwind"."""
        self._build()
        while pos < len(f) and f[pos].isspace():
            pos += 1
        cjk = self._cjk_re.match(f, pos)
        if cjk:
            return self.cjk[cjk.group()].kind != "stop"
        m = LATIN_TOKEN.match(f, pos)
        return bool(m) and m.group() in self._first


STATIC_LEXICON = Lexicon()  # the built-in vocabulary alone: quantities when there is no catalog
