"""``entity_scores``: precision, recall and F1 of extracted entities against a hand-labelled set."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from services.chatbot.core.entities.candidates import ENTITY_TYPES, Entity


def _gold_spans(text: str, gold: Sequence[Mapping[str, Any]]) -> list[tuple[str, int, int, str]]:
    seen: dict[str, int] = {}
    out = []
    for g in gold:
        value = str(g["value"])
        nth = seen.get(value, 0)
        seen[value] = nth + 1
        start = -len(value)
        for _ in range(nth + 1):
            start = text.find(value, start + len(value))
            if start < 0:
                raise ValueError(f"gold value {value!r} (occurrence {nth + 1}) is not in {text!r}")
        out.append((str(g["type"]), start, start + len(value), str(g.get("normalized") or "")))
    return out


def _ratio(num: float, den: float, other: float) -> float:
    # Undefined ratios: perfect when there was nothing to find and nothing found, else zero.
    if den:
        return num / den
    return 1.0 if not other else 0.0


def entity_scores(
    gold: Sequence[Sequence[Mapping[str, Any]]],
    predicted: Sequence[Sequence[Entity]],
    texts: Sequence[str],
) -> dict[str, dict[str, float]]:
    """Per type and "all" (micro): precision, recall, f1, support, normalized_accuracy.

    A prediction is correct when type and span (start, end) equal a gold entity's; gold spans come
    from locating ``value`` in the text (the n-th occurrence for the n-th gold entity with the same
    value). normalized_accuracy is the share of span-correct predictions whose normalized equals
    gold's, over those whose gold normalized is non-empty (1.0 when there are none).
    """
    if not len(gold) == len(predicted) == len(texts):
        raise ValueError("gold, predicted and texts must have the same length")
    types = list(ENTITY_TYPES)
    counts: dict[str, list[int]] = {}  # type -> [true positives, predicted, gold, norm ok, norm checked]

    def row(t: str) -> list[int]:
        if t not in counts:
            counts[t] = [0, 0, 0, 0, 0]
            if t not in types:
                types.append(t)
        return counts[t]

    for t in ENTITY_TYPES:
        row(t)
    for gold_entities, pred_entities, text in zip(gold, predicted, texts):
        spans: dict[tuple[str, int, int], str] = {}
        for t, s, e, norm in _gold_spans(text, gold_entities):
            row(t)[2] += 1
            spans[(t, s, e)] = norm
        matched: set[tuple[str, int, int]] = set()
        for p in pred_entities:
            r = row(p.type)
            r[1] += 1
            key = (p.type, p.start, p.end)
            if key in spans and key not in matched:
                matched.add(key)
                r[0] += 1
                if spans[key]:
                    r[4] += 1
                    r[3] += p.normalized == spans[key]
    totals = [sum(c[i] for c in counts.values()) for i in range(5)]
    return {t: _scores(*c) for t, c in [*((t, counts[t]) for t in types), ("all", totals)]}


def _scores(tp: int, n_pred: int, n_gold: int, norm_ok: int, norm_n: int) -> dict[str, float]:
    p = _ratio(tp, n_pred, n_gold)
    r = _ratio(tp, n_gold, n_pred)
    return {
        "precision": p,
        "recall": r,
        "f1": 2 * p * r / (p + r) if p + r else 0.0,
        "support": float(n_gold),
        "normalized_accuracy": norm_ok / norm_n if norm_n else 1.0,
    }
