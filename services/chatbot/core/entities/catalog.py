"""The catalog index: which product a mention such as "Silverbirch beige down jacket" names.

Product words are cut into runs ending at their noun; a run that names a product is scored against
the products sharing any of its features (brand, category, colour, material, style, title nouns)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.chatbot.core.entities.lexicon import LATIN_TOKEN, Hit, Lexicon, Term
from services.chatbot.core.entities.text import fold

# Set slots hold one value per product (a mention may allow several); bag slots hold several keys.
_SET_SLOTS = ("brand", "cat", "colour", "material", "style")
_BAG_SLOTS = ("noun", "word")
# What naming a slot is worth when matching: a brand or category narrows the catalog most.
_WEIGHT = {"brand": 3.0, "cat": 2.0, "colour": 2.0, "material": 2.0, "style": 1.0, "noun": 2.0, "word": 1.0}
_BRIDGE = re.compile(r"\s*(?:的|'s|’s|-|/)?\s*")
_TITLE_STOP = frozenset(("and", "the", "with", "for", "of", "by", "in", "a", "an"))

# A run is a product mention when its best product has at least this share of what it names. It
# resolves to one id when one product is best by a clear margin, or when among equally good ones
# exactly one has its whole title named ("Silverbirch Beige Down Jacket", not the Slim-fit one).
_MIN_SCORE = 0.5
_RESOLVE_SCORE = 0.75
_MARGIN = 0.1  # a loose material or a sibling noun ("cotton" for organic cotton) is no clear difference
_LOOSE = 0.75  # how well "leather" fits a waterproof-leather product

Sets = dict[str, dict[str, float]]  # per set slot: the values a mention allows, with how well each fits
Bags = dict[str, set[str]]  # per bag slot: the keys a mention names


def _single(term: Term, slot: str) -> bool:
    """Whether the word names one value of ``slot``, so it can fill a slot the payload left empty."""
    return len({v for s, v in term.feats if s == slot}) == 1 and not any(
        v.startswith("~") for s, v in term.feats if s == slot
    )


def _cats(term: Term) -> set[str]:
    return {v for s, v in term.feats if s == "cat"}


def _runs(f: str, hits: list[Hit]) -> list[list[Hit]]:
    """Adjacent product words, each run ending at its noun: "Silverbirch beige down jacket"."""
    runs: list[list[Hit]] = []
    cur: list[Hit] = []
    for h in hits:
        if cur:
            last = cur[-1]
            bridged = _BRIDGE.fullmatch(f, last.end, h.start) is not None
            # The noun is the head in both languages: words after it ("jacket black") start a new run.
            same_kind = h.term.kind == "noun" and bool(_cats(h.term) & _cats(last.term))
            after_noun = last.term.kind == "noun" and not same_kind
            if not bridged or after_noun:
                runs.append(cur)
                cur = []
        cur.append(h)
    if cur:
        runs.append(cur)
    return runs


def _names_product(run: Sequence[Hit]) -> bool:
    """Two or more product words with a noun ("red dress"), or a brand with a colour or material
    ("the Valmont blue cashmere one"); a brand with only a style word ("Breezy slim") is too vague."""
    if len(run) < 2:
        return False
    kinds = {h.term.kind for h in run}
    if "noun" in kinds:
        return True
    return "brand" in kinds and any(s in ("colour", "material") for h in run for s, _ in h.term.feats)


def _combine(run: Sequence[Hit]) -> tuple[Sets, Bags]:
    """What a run names: per set slot the allowed values (with how well each fits), per bag slot keys."""
    sets: Sets = {}
    bags: Bags = {}
    for h in run:
        per: Sets = {}
        for slot, value in h.term.feats:
            if slot in _BAG_SLOTS:
                bags.setdefault(slot, set()).add(value)
            elif value.startswith("~"):
                per.setdefault(slot, {})[value[1:]] = _LOOSE
            else:
                per.setdefault(slot, {})[value] = 1.0
        for slot, values in per.items():
            old = sets.get(slot)
            if old is None:
                sets[slot] = values
                continue
            # Two words constrain the same slot: keep what both allow, or else what either does.
            both = {v: min(old[v], values[v]) for v in old.keys() & values.keys()}
            either = {v: max(old.get(v, 0.0), values.get(v, 0.0)) for v in old.keys() | values.keys()}
            sets[slot] = both or either
    return sets, bags


@dataclass
class _Product:
    sets: dict[str, str]
    bags: dict[str, frozenset[str]] = field(default_factory=dict)
    weight: float = 0.0
    # The nouns of each title on its own: "T恤" names the whole noun of a T-shirt's Chinese title.
    title_nouns: tuple[frozenset[str], ...] = ()


class CatalogIndex:
    """Products to recognise in messages; rebuilt or extended when catalog events arrive.

    Each product is indexed by its brand, category, colour, material and style (from the payload)
    and by the product nouns of its English and Chinese titles. A message is cut into runs of
    adjacent product words (typos in brands and nouns corrected), and every run with a noun plus
    another word, or a brand plus a colour or material, is scored against the products that share
    any of its features: the score is the weighted share of the named features a product has.

    Words learnt from titles (brands, unknown nouns) stay after a product is removed; they only make
    a word recognisable, the postings decide what it matches. Upserts and matches must not run
    concurrently (the vocabulary is rebuilt lazily on the next match).
    """

    def __init__(self, products: Iterable[Mapping[str, Any]] = ()) -> None:
        self._lexicon = Lexicon()
        self._products: dict[str, _Product] = {}
        self._postings: dict[tuple[str, str], set[str]] = {}
        for product in products:
            self.upsert(product)

    def __len__(self) -> int:
        return len(self._products)

    @property
    def lexicon(self) -> Lexicon:
        """The built-in vocabulary plus the words learnt from this catalog."""
        return self._lexicon

    def upsert(self, product: Mapping[str, Any]) -> None:
        """Add or replace one product (a ``product.upserted`` payload)."""
        pid = str(product["product_id"])
        self.remove(pid)
        sets = self._learn_attributes(product)
        nouns, title_nouns, words = self._learn_titles(product, sets)
        bags = {slot: frozenset(keys) for slot, keys in (("noun", nouns), ("word", words)) if keys}
        weight = sum(_WEIGHT[s] for s in sets) + sum(_WEIGHT[s] for s in bags)
        self._products[pid] = _Product(sets, bags, weight, tuple(title_nouns))
        for slot, value in sets.items():
            self._postings.setdefault((slot, value), set()).add(pid)
        for slot, keys in bags.items():
            for key in keys:
                self._postings.setdefault((slot, key), set()).add(pid)

    def _learn_attributes(self, product: Mapping[str, Any]) -> dict[str, str]:
        """The product's brand, colour, material, style and category, their words added to the lexicon."""
        attrs: Mapping[str, Any] = product.get("attributes") or {}
        sets: dict[str, str] = {}
        brand = str(product.get("brand") or "").strip()
        if brand:
            sets["brand"] = brand.lower()
            brand_term = Term(frozenset({("brand", sets["brand"])}), "brand")
            self._lexicon.add(brand, "", brand_term)
            if "&" in brand:
                self._lexicon.add(brand.replace("&", "and"), "", brand_term)
            # Customers drop the second word of long brands ("Westfield"), never a short or common one.
            for tok in LATIN_TOKEN.findall(brand.lower()):
                if len(tok) >= 5 and tok not in ("supply", "house", "store", "studio"):
                    self._lexicon.add(tok, "", brand_term)
        for slot, key in (("colour", "colour"), ("material", "material"), ("style", "style")):
            value = str(attrs.get(key) or "").strip().lower()
            if value:
                sets[slot] = value
                zh = str(attrs.get(f"{key}_zh") or "") if slot != "style" else ""
                self._lexicon.add(value.replace("-", " "), zh, Term(frozenset({(slot, value)}), "attr"))
        if product.get("category"):
            sets["cat"] = str(product["category"]).lower()
        return sets

    def _learn_titles(
        self, product: Mapping[str, Any], sets: dict[str, str]
    ) -> tuple[set[str], list[frozenset[str]], set[str]]:
        """The nouns of the English and Chinese titles (all, and per title) and the title words the
        vocabulary does not know; fills ``sets`` slots the payload left empty from the titles."""
        nouns: set[str] = set()
        title_nouns: list[frozenset[str]] = []
        words: set[str] = set()
        for title in (str(product.get("title") or ""), str(product.get("title_zh") or "")):
            f = fold(title)
            hits, unknown = self._lexicon.hits(f, fuzzy=False)
            own = {v for h in hits for s, v in h.term.feats if s == "noun"}
            if own:
                title_nouns.append(frozenset(own))
                nouns |= own
            for h in hits:
                for slot, value in h.term.feats:
                    if slot in _SET_SLOTS and slot not in sets and _single(h.term, slot):
                        sets[slot] = value
            # Title words the vocabulary does not know (a new kind of product) become match words;
            # the last one is taken as the product's noun ("Nordwind Red Wool Scarf").
            for k, (s, e) in enumerate(unknown):
                tok = f[s:e]
                if len(tok) < 3 or tok in _TITLE_STOP:
                    continue
                words.add(tok)
                is_last = k == len(unknown) - 1 and e == len(f.rstrip())
                feats = {("word", tok)} | ({("cat", sets["cat"])} if is_last and "cat" in sets else set())
                self._lexicon.add(tok, "", Term(frozenset(feats), "noun" if is_last else "attr"))
        return nouns, title_nouns, words

    def remove(self, product_id: str) -> None:
        """Forget a product (a ``product.removed`` event); unknown ids are ignored."""
        old = self._products.pop(product_id, None)
        if old is None:
            return
        keys = [(s, v) for s, v in old.sets.items()] + [(s, k) for s, ks in old.bags.items() for k in ks]
        for key in keys:
            posting = self._postings.get(key)
            if posting is not None:
                posting.discard(product_id)
                if not posting:
                    del self._postings[key]

    def match(self, text: str) -> list[tuple[int, int, str, float]]:
        """Product mentions as (start, end, product_id or "", score), non-overlapping, by position."""
        return self.match_folded(fold(text))

    def match_folded(self, f: str) -> list[tuple[int, int, str, float]]:
        """``match`` on text already folded (``text.fold``)."""
        hits, _ = self._lexicon.hits(f, fuzzy=True)
        if len(hits) < 2:
            return []
        found: list[tuple[list[Hit], float, str, Sets, Bags]] = []
        loose_brands: set[str] = set()
        for run in _runs(f, hits):
            if _names_product(run):
                sets, bags = _combine(run)
                score, pid = self._identify(sets, bags)
                if score >= _MIN_SCORE:
                    found.append((run, score, pid, sets, bags))
                    continue
            loose_brands |= {v for h in run for s, v in h.term.feats if s == "brand"}
        out = []
        for run, score, pid, sets, bags in found:
            # "我买的是Silverbirch，那件米色羽绒服": a brand named on its own elsewhere can settle which one.
            if not pid and "brand" not in sets and len(loose_brands) == 1:
                brand = {b: 1.0 for b in loose_brands}
                with_brand, pid_with_brand = self._identify({**sets, "brand": brand}, bags)
                if with_brand >= 1.0 - 1e-9:
                    pid = pid_with_brand
            out.append((run[0].start, run[-1].end, pid, round(score, 4)))
        return out

    def _identify(self, sets: Mapping[str, Mapping[str, float]], bags: Mapping[str, set[str]]) -> tuple[float, str]:
        """Best share of the mention's features any product has, and that product's id if it is clear."""
        total = sum(_WEIGHT[s] for s in sets) + sum(_WEIGHT[s] for s in bags)
        acc: dict[str, float] = {}
        for slot, values in sets.items():
            for value, fit in values.items():
                w = _WEIGHT[slot] * fit
                for pid in self._postings.get((slot, value), ()):
                    acc[pid] = acc.get(pid, 0.0) + w
        for slot, keys in bags.items():
            shared: dict[str, int] = {}
            for key in keys:
                for pid in self._postings.get((slot, key), ()):
                    shared[pid] = shared.get(pid, 0) + 1
            # All named nouns in the title ("sandals" for Slide Sandals) fit; a sibling only half
            # fits ("tote" for a handbag shares only "bag"), so it counts for a quarter.
            for pid, n in shared.items():
                fit = 1.0 if n == len(keys) else 0.5 * n / len(keys)
                acc[pid] = acc.get(pid, 0.0) + _WEIGHT[slot] * fit
        if not acc or total <= 0:
            return 0.0, ""
        best = max(acc.values())
        score = best / total
        close = [pid for pid, a in acc.items() if a > best - _MARGIN * total + 1e-9]
        if len(close) == 1 and score >= _RESOLVE_SCORE:
            return score, close[0]
        tops = [pid for pid in close if acc[pid] >= best - 1e-9]
        complete = [pid for pid in tops if self._coverage(pid, sets, bags) >= 1.0 - 1e-9]
        return score, complete[0] if len(complete) == 1 else ""

    def _coverage(self, pid: str, sets: Mapping[str, Mapping[str, float]], bags: Mapping[str, set[str]]) -> float:
        """Share of the product's own features the mention names (1.0: its whole title was named)."""
        p = self._products[pid]
        got = sum(_WEIGHT[s] * sets[s].get(v, 0.0) for s, v in p.sets.items() if s in sets)
        for s, keys in p.bags.items():
            named = bags.get(s, set())
            per_title = p.title_nouns if s == "noun" and p.title_nouns else (keys,)
            got += _WEIGHT[s] * max(len(t & named) / len(t) for t in per_title)
        return got / p.weight if p.weight else 0.0
