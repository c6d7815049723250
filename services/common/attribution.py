"""Recommendation attribution and A/B experiments, shared by the gateway and the recommender.

- Every recommendation answer gets a ``recommendation_id`` (``new_recommendation_id``); the gateway publishes
  one ``recommendation.served`` record per answer (an impression) on ``recommendations.served.v1``.
- The recommender's projection keeps, per hour of the impression, one Redis hash of counters whose fields are
  ``<strategy>|<model version>|<experiment>|<arm>|<kind>`` (kind: ``impressions`` and the outcomes of
  ``OUTCOMES``). Interaction events carrying a ``recommendation_id`` are joined to their impression in the
  same exactly-once script (``IMPRESSION``/``OUTCOME`` in services/common/projection.py): each answer's
  outcome counts once per kind, whichever of the two records arrives first.
- Experiments (``ExperimentStore``) are kept in Redis by the gateway's admin routes; a shopper's arm is a
  stable hash of (experiment id, user id) against the split (``assign_arm``).
- The report's arithmetic (``rates``, ``difference_ci``) is pure.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from statistics import NormalDist
from typing import Any

import redis

from services.common.cache import key

# The interaction actions an impression's outcome is counted for, and the counters' kinds.
OUTCOMES: tuple[str, ...] = ("click", "add_to_cart", "purchase")
KINDS: tuple[str, ...] = ("impressions", *OUTCOMES)
# An outcome counts when it arrives within this long of its impression (and an outcome read ahead of its
# impression waits this long for it).
ATTRIBUTION_SECONDS = 7 * 24 * 3600
# Hourly counters are kept this long.
COUNTER_SECONDS = 400 * 24 * 3600
SEPARATOR = "|"
DEFAULT_WINDOW = timedelta(days=7)
MAX_WINDOW = timedelta(days=92)


def new_recommendation_id() -> str:
    """32 lowercase hex digits, new for every answer (cached answers too)."""
    return os.urandom(16).hex()


# ------------------------------------------------------------------ keys


class AttributionKeys:
    """Written by the recommender's projection, read by the gateway's reports."""

    counters_prefix = key("rec", "ab", "hour") + ":"

    @staticmethod
    def impression(recommendation_id: str) -> str:
        """Hash: ``bucket``, ``hour`` of the impression, ``o:<kind>`` for each outcome seen."""
        return key("rec", "ab", "imp", recommendation_id)

    @staticmethod
    def counters(hour: str) -> str:
        return key("rec", "ab", "hour", hour)

    @staticmethod
    def arm_users(experiment_id: str, arm: str) -> str:
        """HyperLogLog of the shoppers served by one arm (a count; no id can be read back)."""
        return key("rec", "ab", "exp", experiment_id, arm, "users")

    experiments = key("ab", "experiments")  # hash id -> JSON definition
    experiments_by_start = key("ab", "experiments", "by-start")  # zset id -> started (Unix time)
    running = key("ab", "experiments", "running")  # the running experiment's id (SET NX: at most one)


def hour_of(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%d%H")


def hours_between(since: datetime, until: datetime) -> list[str]:
    """The hours (``hour_of``) that overlap [since, until)."""
    start = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    out = []
    while start < until:
        out.append(hour_of(start))
        start += timedelta(hours=1)
    return out


def bucket(strategy: str, model_version: str, experiment_id: str = "", arm: str = "") -> str:
    return SEPARATOR.join((strategy, model_version, experiment_id, arm))


@dataclass(frozen=True)
class Bucket:
    strategy: str
    model_version: str
    experiment_id: str
    arm: str


def parse_field(field: str) -> tuple[Bucket, str] | None:
    """A counters field -> (its bucket, its kind); None for a field of another shape. The strategy is a
    known name without ``|``; the model version may hold one, so the rest is split from the right."""
    strategy, sep, rest = field.partition(SEPARATOR)
    parts = rest.rsplit(SEPARATOR, 3)
    if not sep or len(parts) != 4 or parts[3] not in KINDS:
        return None
    version, experiment, arm, kind = parts
    return Bucket(strategy, version, experiment, arm), kind


# ------------------------------------------------------------------ pure arithmetic


def assign_arm(experiment_id: str, user_id: str, split: Sequence[int]) -> int:
    """The arm (an index into ``split``, percentages summing to 100) of one shopper: a stable hash of the
    experiment and the user, so a shopper stays in one arm and arms of different experiments are independent."""
    digest = hashlib.blake2b(f"{experiment_id}\x00{user_id}".encode(), digest_size=8).digest()
    point = int.from_bytes(digest, "big") % 10000  # basis points
    edge = 0
    for index, share in enumerate(split):
        edge += share * 100
        if point < edge:
            return index
    return len(split) - 1


def rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def rates(counts: Mapping[str, int]) -> dict[str, float]:
    """Click-through, add-to-cart rate and conversion: answers with at least one such outcome per answer."""
    shown = int(counts.get("impressions", 0))
    return {"click_through": rate(int(counts.get("click", 0)), shown),
            "add_to_cart_rate": rate(int(counts.get("add_to_cart", 0)), shown),
            "conversion": rate(int(counts.get("purchase", 0)), shown)}


def difference_ci(successes_a: int, trials_a: int, successes_b: int, trials_b: int,
                  confidence: float = 0.95) -> tuple[float, float, float] | None:
    """The difference of two proportions B - A with its Wald interval (the two-proportion normal
    approximation, unpooled standard error); None while an arm has no trials."""
    if trials_a <= 0 or trials_b <= 0:
        return None
    p_a, p_b = successes_a / trials_a, successes_b / trials_b
    diff = p_b - p_a
    se = math.sqrt(p_a * (1 - p_a) / trials_a + p_b * (1 - p_b) / trials_b)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    return diff, diff - z * se, diff + z * se


def better_arm(names: Sequence[str], interval: tuple[float, float, float] | None) -> str | None:
    """The arm whose rate is higher when the interval of B - A excludes 0; None otherwise."""
    if interval is None:
        return None
    _, low, high = interval
    if low > 0:
        return names[1]
    if high < 0:
        return names[0]
    return None


# ------------------------------------------------------------------ reading the counters


def read_counters(client: redis.Redis, since: datetime, until: datetime) -> dict[Bucket, dict[str, int]]:
    """The counters of the impressions served in [since, until) (whole hours), summed per bucket."""
    hours = hours_between(since, until)
    totals: dict[Bucket, dict[str, int]] = {}
    with client.pipeline(transaction=False) as pipe:
        for hour in hours:
            pipe.hgetall(AttributionKeys.counters(hour))
        rows = pipe.execute()
    for row in rows:
        for field, value in row.items():
            parsed = parse_field(field)
            if parsed is None:
                continue
            counts = totals.setdefault(parsed[0], dict.fromkeys(KINDS, 0))
            counts[parsed[1]] += int(value)
    return totals


def by_strategy(totals: Mapping[Bucket, Mapping[str, int]]) -> list[dict[str, Any]]:
    """One row per (strategy, model version), arms and experiments summed, most impressions first."""
    summed: dict[tuple[str, str], dict[str, int]] = {}
    for b, counts in totals.items():
        row = summed.setdefault((b.strategy, b.model_version), dict.fromkeys(KINDS, 0))
        for kind in KINDS:
            row[kind] += int(counts.get(kind, 0))
    out = [{"strategy": s, "model_version": v, "impressions": c["impressions"], "clicks": c["click"],
            "add_to_cart": c["add_to_cart"], "purchases": c["purchase"], **rates(c)}
           for (s, v), c in summed.items()]
    return sorted(out, key=lambda r: (-r["impressions"], r["strategy"], r["model_version"]))


# ------------------------------------------------------------------ experiments


class ExperimentError(ValueError):
    """A definition that cannot run; the message says why."""


@dataclass(frozen=True)
class Arm:
    name: str
    strategy: str
    model_version: str | None = None


def experiment_report(definition: Mapping[str, Any], totals: Mapping[Bucket, Mapping[str, int]],
                      users: Mapping[str, int]) -> dict[str, Any]:
    """The report of one experiment (pure): per arm its users, impressions and outcomes; click-through's
    difference B - A (second arm minus first) with its 95 % interval, per impression; the better arm."""
    arms = [a["name"] for a in definition["arms"]]
    per_arm = {name: dict.fromkeys(KINDS, 0) for name in arms}
    for b, counts in totals.items():
        if b.experiment_id == definition["experiment_id"] and b.arm in per_arm:
            for kind in KINDS:
                per_arm[b.arm][kind] += int(counts.get(kind, 0))
    rows = [{"name": name, "users": int(users.get(name, 0)), "impressions": c["impressions"], "clicks": c["click"],
             "add_to_cart": c["add_to_cart"], "purchases": c["purchase"], **rates(c)}
            for name, c in per_arm.items()]
    a, b = per_arm[arms[0]], per_arm[arms[1]]
    interval = difference_ci(a["click"], a["impressions"], b["click"], b["impressions"])
    return {"arms": rows, "metric": "click_through", "unit": "impression",
            "difference": interval[0] if interval else None,
            "ci95": [interval[1], interval[2]] if interval else None,
            "better": better_arm(arms, interval)}


class ExperimentStore:
    """The experiments' definitions in Redis (the gateway's admin routes write them). At most one runs at
    a time: two at once would split the same shoppers twice over and blur both results."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def create(self, name: str, arms: Sequence[Arm], split: Sequence[int]) -> dict[str, Any]:
        """The new running experiment; ExperimentError while another runs (claimed with SET NX, so two admins
        or gateway replicas starting one at the same moment cannot both succeed)."""
        now = time.time()
        definition = {
            "experiment_id": os.urandom(8).hex(), "name": name,
            "arms": [{"name": a.name, "strategy": a.strategy, "model_version": a.model_version} for a in arms],
            "split": list(split), "status": "running", "started_at": _instant(now), "stopped_at": None,
        }
        if not self.redis.set(AttributionKeys.running, definition["experiment_id"], nx=True):
            running = self.running()
            which = f"{running['experiment_id']} ({running['name']!r})" if running else "another"
            eid = running["experiment_id"] if running else "{experiment_id}"
            raise ExperimentError(f"experiment {which} is running; stop it first "
                                  f"(POST /v1/admin/experiments/{eid}/stop)")
        with self.redis.pipeline() as pipe:
            pipe.hset(AttributionKeys.experiments, definition["experiment_id"], json.dumps(definition))
            pipe.zadd(AttributionKeys.experiments_by_start, {definition["experiment_id"]: now})
            pipe.execute()
        return definition

    def get(self, experiment_id: str) -> dict[str, Any] | None:
        raw = self.redis.hget(AttributionKeys.experiments, experiment_id)
        return json.loads(raw) if raw else None

    def all(self) -> list[dict[str, Any]]:
        """Newest first."""
        ids = self.redis.zrevrange(AttributionKeys.experiments_by_start, 0, -1)
        raws = self.redis.hmget(AttributionKeys.experiments, ids) if ids else []
        return [json.loads(raw) for raw in raws if raw]

    def running(self) -> dict[str, Any] | None:
        experiment_id = self.redis.get(AttributionKeys.running)
        found = self.get(experiment_id) if experiment_id else None
        return found if found is not None and found["status"] == "running" else None

    def stop(self, experiment_id: str) -> dict[str, Any] | None:
        definition = self.get(experiment_id)
        if definition is None:
            return None
        if definition["status"] == "running":
            definition.update(status="stopped", stopped_at=_instant(time.time()))
            with self.redis.pipeline() as pipe:
                pipe.hset(AttributionKeys.experiments, experiment_id, json.dumps(definition))
                pipe.eval(_RELEASE, 1, AttributionKeys.running, experiment_id)
                pipe.execute()
        return definition

    def users(self, definition: Mapping[str, Any]) -> dict[str, int]:
        names = [a["name"] for a in definition["arms"]]
        with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.pfcount(AttributionKeys.arm_users(definition["experiment_id"], name))
            return dict(zip(names, (int(n) for n in pipe.execute()), strict=True))

    def report(self, definition: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any]:
        since = datetime.fromisoformat(definition["started_at"])
        until = datetime.fromisoformat(definition["stopped_at"]) if definition.get("stopped_at") else None
        until = (until or now or datetime.now(UTC)) + timedelta(hours=1)  # the last hour whole
        return experiment_report(definition, read_counters(self.redis, since, until), self.users(definition))


# Clears the running experiment's id only if it is still this one.
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


def _instant(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def arms_of(definition: Mapping[str, Any]) -> list[Arm]:
    return [Arm(a["name"], a["strategy"], a.get("model_version")) for a in definition["arms"]]


def validate_experiment(arms: Iterable[Arm], split: Sequence[int] | None, strategies: Sequence[str]) -> list[int]:
    """The split to use (even when none is given); ExperimentError for a definition that cannot run: not two
    arms, arm names repeated, an unknown strategy, two identical arms, a split not of two positive whole
    percentages summing to 100."""
    arms = list(arms)
    if len(arms) != 2:
        raise ExperimentError(f"an experiment compares exactly two arms; {len(arms)} given")
    if arms[0].name == arms[1].name:
        raise ExperimentError(f"the arms need different names; both are {arms[0].name!r}")
    for arm in arms:
        if arm.strategy not in strategies:
            raise ExperimentError(f"arm {arm.name!r}: unknown strategy {arm.strategy!r}; expected one of "
                                  f"{', '.join(strategies)}")
    if (arms[0].strategy, arms[0].model_version) == (arms[1].strategy, arms[1].model_version):
        raise ExperimentError("the two arms serve the same strategy and model version: nothing to compare")
    split = list(split) if split is not None else [50, 50]
    if len(split) != len(arms) or any(s <= 0 for s in split) or sum(split) != 100:
        raise ExperimentError(f"split must give each of the {len(arms)} arms a positive percentage, summing to 100; "
                              f"got {split}")
    return split
