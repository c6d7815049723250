"""Choosing what goes into an answer: the best products that pass every rule, the answer's items, and the
cold-start mix of a visitor's session with trending products (pure: the reads a choice needs are passed
in as functions, so no Redis is needed to test them)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from services.common.recommendations import Filters

# A cold start looks at this many of the visitor's most recent views.
SESSION_VIEWS_USED = 20

Details = dict[str, str]


def item(pid: str, score: float, reason: str, details: Mapping[str, str]) -> dict:
    """One recommended item as the response carries it (catalog details default to empty)."""
    return {
        "product_id": pid, "score": float(score), "reason": reason, "title": details.get("title", ""),
        "category": details.get("category", ""), "price": float(details.get("price") or 0.0),
        "currency": details.get("currency", ""),
    }


def left_out(interacted: Iterable[str], owned: Collection[str], *, exclude_owned: bool) -> set[str]:
    """The products a personal answer never shows the shopper. By default every product they interacted
    with and every one they own (bought or rated, whatever the rating: a rating means they have it). With
    ``exclude_owned`` False (``exclude_purchased=false``: consumables, "buy again") what they own may come
    back; products they only looked at stay out (an answer shows what is new to them)."""
    seen = set(interacted)
    return seen | set(owned) if exclude_owned else seen - set(owned)


def pick(scores: np.ndarray, item_ids: Sequence[str], k: int, filters: Filters, active: Collection[str], *,
         out_of_stock: Callable[[list[str]], set[str]] | None,
         details_of: Callable[[list[str]], Mapping[str, Details]]) -> list[tuple[str, float, Details]]:
    """The k best products (``item_ids[i]`` scores ``scores[i]``; -inf = never) that are in ``active`` and
    pass ``filters`` and, given ``out_of_stock``, are in stock; best first, with their catalog details.

    Candidates are examined best first in growing chunks; ``details_of`` is asked for a chunk only when a
    rule needs details (category, price), otherwise for the k chosen alone."""
    finite = np.flatnonzero(np.isfinite(scores))  # only those sorted: after the candidate stage, a few hundred
    order = finite[np.argsort(-scores[finite], kind="stable")]
    chosen: list[str] = []
    score_of: dict[str, float] = {}
    details: dict[str, Details] = {}
    start, size = 0, max(2 * k, 20)
    while start < len(order) and len(chosen) < k:
        chunk = [i for i in order[start : start + size] if np.isfinite(scores[i])]
        score_of.update((item_ids[i], float(scores[i])) for i in chunk)
        pids = [item_ids[i] for i in chunk]
        pids = [p for p in pids if p in active and p not in filters.exclude]
        if out_of_stock is not None:
            gone = out_of_stock(pids)
            pids = [p for p in pids if p not in gone]
        if filters.needs_details:
            details.update(details_of(pids))
            pids = [p for p in pids if filters.allows(p, details.get(p))]
        chosen.extend(pids[: k - len(chosen)])
        if len(chunk) < size:
            break
        start, size = start + size, size * 4
    missing = [p for p in chosen if p not in details]
    details.update(details_of(missing))
    return [(p, score_of[p], details.get(p, {})) for p in chosen]


def session_views(viewed: Iterable[str], known: Collection[str]) -> list[str]:
    """The products of a visit the model knows, each once, most recent first (at most 20)."""
    return list(dict.fromkeys(p for p in viewed if p in known))[:SESSION_VIEWS_USED]


def session_weights(viewed: Sequence[str]) -> dict[str, float]:
    """A pseudo row for a visitor: the most recent view weighs most (1, 1/2, 1/3, ...)."""
    return {p: 1.0 / (1 + i) for i, p in enumerate(viewed)}


def interleave(first: Sequence[dict], second: Sequence[dict], k: int) -> list[dict]:
    """The cold-start mix: one item of ``first``, one of ``second``, in turn, then the rest of the longer
    list; each product once, at most ``k``."""
    mixed: list[dict] = []
    seen: set[str] = set()
    paired = [entry for pair in zip(first, second, strict=False) for entry in pair]
    for entry in paired + list(first[len(second):]) + list(second[len(first):]):
        if entry["product_id"] not in seen and len(mixed) < k:
            seen.add(entry["product_id"])
            mixed.append(entry)
    return mixed
