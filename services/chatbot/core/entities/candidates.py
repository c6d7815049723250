"""An entity, the candidate spans the rules propose, and how overlapping candidates are settled."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

ENTITY_TYPES: tuple[str, ...] = (
    "order_id", "product", "quantity", "money", "date", "email", "phone", "size", "color",
)


@dataclass(frozen=True)
class Entity:
    """One entity; ``value == text[start:end]`` and ``normalized`` is its canonical form ("" if none)."""

    type: str
    value: str
    start: int
    end: int
    normalized: str = ""


@dataclass(frozen=True)
class Cand:
    type: str
    start: int
    end: int
    normalized: str
    rank: int  # lower wins when two candidates overlap


# Overlaps are settled by rank, then length: an id or a date is never also a quantity or a size,
# and a product span wins over the colour word inside it.
RANK = {
    "email": 0, "order_strong": 1, "phone": 2, "money": 3, "date": 4, "order_bare": 5,
    "product": 6, "size": 7, "quantity": 8, "color": 9,
}


def cand(kind: str, m: re.Match[str] | tuple[int, int], normalized: str, group: int = 0) -> Cand:
    """A candidate of ``kind`` spanning ``m`` (or its ``group``)."""
    start, end = m if isinstance(m, tuple) else m.span(group)
    typ = "order_id" if kind.startswith("order") else kind
    return Cand(typ, start, end, normalized, RANK[kind])


def resolve(cands: Iterable[Cand]) -> list[Cand]:
    """The non-overlapping winners, by position."""
    taken: list[Cand] = []
    for c in sorted(cands, key=lambda c: (c.rank, c.start - c.end, c.start)):
        if c.end > c.start and all(c.end <= t.start or c.start >= t.end for t in taken):
            taken.append(c)
    return sorted(taken, key=lambda c: c.start)
