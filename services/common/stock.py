"""Stock on hand per product, projected from inventory.v1 and orders.v1.

The rule (docs/demo-shop.md, the order system's contract): on_hand = the last
``inventory.set`` + later ``inventory.received``/``adjusted`` deltas - quantities
of ``order.created`` + quantities of ``order.cancelled``; returns are not restocked.

Topics are consumed in parallel, so a change may arrive after a later stock-take
(``inventory.set``). A count replaces everything before it, so a change whose
``occurred_at`` is older than the product's last count is already inside that
count and is skipped. (A change that arrives *before* an older count is still
overwritten by it; the next count corrects it. Documented in docs/architecture.md.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import redis

from services.common.cache import key
from services.common.events import Event
from services.common.projection import Ops

# on_hand would go wrong if a consumer applied a stock event twice, so only the
# exactly-once applier may run these commands (HINCRBY is not idempotent).


def stock_changes(event: Event) -> Iterable[tuple[str, int | None, int]]:
    """(product_id, new on_hand or None, delta) for each product an event moves."""
    p = event.payload
    if event.type == "inventory.set":
        yield str(p["product_id"]), int(p["on_hand"]), 0
    elif event.type in ("inventory.received", "inventory.adjusted"):
        yield str(p["product_id"]), None, int(p.get("delta", 0) or 0)
    elif event.type in ("order.created", "order.cancelled"):
        sign = -1 if event.action == "created" else 1
        for line in p.get("lines", []) or []:
            yield str(line["product_id"]), None, sign * int(line.get("quantity", 1) or 1)


def apply_stock(
    event: Event,
    ops: Ops,
    on_hand_key: str,
    counted_at_key: str,
    counted_at: Callable[[str], float | None],
) -> None:
    """Emit the commands that move ``on_hand_key`` (a hash product -> units) for one event.

    ``counted_at_key`` is a hash product -> epoch seconds of its last ``inventory.set``;
    ``counted_at(pid)`` reads it (the caller caches it per batch).
    """
    when = event.occurred_at.timestamp()
    counts: dict[str, float] = ops.batch_state.setdefault(f"stock-counted:{on_hand_key}", {})
    for pid, level, delta in stock_changes(event):
        last = counts[pid] if pid in counts else counted_at(pid)
        if level is not None:
            if last is not None and when < last:
                continue  # an older count than the one we hold
            ops("HSET", on_hand_key, pid, level)
            ops("HSET", counted_at_key, pid, when)
            counts[pid] = when
        elif delta and (last is None or when >= last):
            ops("HINCRBY", on_hand_key, pid, delta)


def stock_keys(namespace: str) -> tuple[str, str]:
    """(on-hand hash, counted-at hash) of one projection's stock."""
    return key(namespace, "stock", "on-hand"), key(namespace, "stock", "counted-at")


class StockLedger:
    """One projection's stock in Redis: a hash product -> on_hand and a hash product -> last count time.

    Each service keeps its own ledger (``namespace`` "rec", "chat", ...) in its own projection, so it
    can be rebuilt on its own; the rule and the reads are the same everywhere.
    """

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.redis = client
        self.on_hand_key, self.counted_at_key = stock_keys(namespace)

    def apply(self, event: Event, ops: Ops) -> None:
        apply_stock(event, ops, self.on_hand_key, self.counted_at_key, self.counted_at)

    def prepare(self, events: Iterable[Event], batch_state: dict) -> None:
        """The last count time of every product the batch's stock events move, in one round trip, into the
        batch's state where ``apply`` looks first (``Projection.prepare``), instead of a read per event."""
        counts: dict[str, float | None] = batch_state.setdefault(f"stock-counted:{self.on_hand_key}", {})
        wanted: dict[str, None] = {}
        for event in events:
            if event.family in ("inventory", "order"):
                try:
                    wanted.update((pid, None) for pid, _, _ in stock_changes(event) if pid not in counts)
                except (KeyError, TypeError, ValueError):
                    continue  # its apply fails the same way, and the event is dead-lettered with the reason
        pids = list(wanted)
        if pids:
            for pid, value in zip(pids, self.redis.hmget(self.counted_at_key, pids), strict=True):
                counts[pid] = float(value) if value is not None else None

    def counted_at(self, pid: str) -> float | None:
        value = self.redis.hget(self.counted_at_key, pid)
        return float(value) if value is not None else None

    def on_hand(self, pid: str) -> int | None:
        """Units in stock, or None when the product's stock was never counted."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(self.on_hand_key, pid)
            pipe.hget(self.counted_at_key, pid)
            level, at = pipe.execute()
        return None if at is None or level is None else int(level)

    def out_of_stock(self, pids: list[str]) -> set[str]:
        """Products whose stock was counted at least once and whose on_hand is now <= 0."""
        if not pids:
            return set()
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(self.on_hand_key, pids)
            pipe.hmget(self.counted_at_key, pids)
            levels, counted = pipe.execute()
        return {pid for pid, level, at in zip(pids, levels, counted, strict=True)
                if at is not None and level is not None and int(level) <= 0}
