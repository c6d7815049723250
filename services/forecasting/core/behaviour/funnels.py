"""The strict view -> add_to_cart -> purchase funnel, overall and per category."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date

from services.forecasting.core.behaviour.records import Interaction, day_to_date, utc_day

FUNNEL_STEPS = ("view", "add_to_cart", "purchase")


@dataclass(frozen=True, slots=True)
class FunnelStep:
    name: str  # "view", "add_to_cart", "purchase"
    users: int  # distinct users who reached this step (strict funnel)
    events: int  # all events of this type in the range
    conversion: float  # users / previous step's users (1 for the first step; 0 if the previous is 0)
    conversion_from_start: float  # users / first step's users (0 if the first is 0)


@dataclass(frozen=True, slots=True)
class CategoryFunnel:
    category: str
    steps: list[FunnelStep]


@dataclass(frozen=True, slots=True)
class FunnelReport:
    steps: list[FunnelStep]  # overall, or the requested category
    categories: list[CategoryFunnel]  # most viewed (distinct viewers, then view events) first
    from_date: date
    to_date: date | None  # the last day considered (None: no purchases and no to_date given)


def funnel(events: Iterable[Interaction | Sequence], from_date: date, to_date: date,
           category: str | None = None) -> FunnelReport:
    """The view -> add_to_cart -> purchase funnel over UTC days ``from_date..to_date`` (inclusive).

    Strict and ordered: a user counts at add_to_cart only with an add_to_cart at or after their first
    view in the range, and at purchase only with a purchase at or after that add_to_cart (events with
    equal timestamps are taken in funnel order). ``events`` counts every event of the step's type. The
    overall funnel ignores categories (view in one, buy in another counts); each category's funnel only
    sees that category's events. Events with an empty category count overall only."""
    first, last = utc_day(from_date), utc_day(to_date)
    lo, hi = first * 86400.0, (last + 1) * 86400.0
    step_of = {name: k for k, name in enumerate(FUNNEL_STEPS)}
    rows: list[tuple[float, int, str, str]] = []
    for ev in events:
        step = step_of.get(ev[1])
        if step is None:
            continue
        cat = ev[2] or ""
        if category is not None and cat != category:
            continue
        when = ev[3]
        ts = (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).timestamp()
        if lo <= ts < hi:
            rows.append((ts, step, str(ev[0]), cat))
    rows.sort()  # by time, then funnel order
    overall = _FunnelCounter()
    per_category: dict[str, _FunnelCounter] = {}
    stage, counts = overall.stage, overall.events
    for _, step, user, cat in rows:
        counts[step] += 1
        if stage.get(user, 0) == step:  # the previous step was reached before (or at the same time)
            stage[user] = step + 1
        if cat:
            counter = per_category.get(cat)
            if counter is None:
                counter = per_category[cat] = _FunnelCounter()
            counter.events[step] += 1
            if counter.stage.get(user, 0) == step:
                counter.stage[user] = step + 1
    cats = sorted(per_category.items(), key=lambda kv: (-kv[1].users()[0], -kv[1].events[0], kv[0]))
    steps = (per_category.get(category) or _FunnelCounter()).steps() if category else overall.steps()
    return FunnelReport(steps, [CategoryFunnel(c, counter.steps()) for c, counter in cats],
                        day_to_date(first), day_to_date(last))


class _FunnelCounter:
    """The furthest strict step each user reached (0..3), plus event counts per step."""

    def __init__(self) -> None:
        self.stage: dict[str, int] = {}
        self.events = [0, 0, 0]

    def users(self) -> list[int]:
        counts = Counter(self.stage.values())
        return [sum(n for s, n in counts.items() if s >= k) for k in (1, 2, 3)]

    def steps(self) -> list[FunnelStep]:
        users = self.users()
        out = []
        for k, name in enumerate(FUNNEL_STEPS):
            prev = users[k - 1] if k else users[0]
            conversion = 1.0 if k == 0 else (users[k] / prev if prev else 0.0)
            out.append(FunnelStep(name, users[k], self.events[k], conversion,
                                  users[k] / users[0] if users[0] else 0.0))
        return out

