"""Products that are one item in several sizes or colours (``attributes.item_group_id``): the projection keeps
each group's members, and similar products leave the anchor's other variants out unless asked."""

from __future__ import annotations

from services.common.events import new_event
from services.common.projection import Ops
from services.common.recommendations import RecommenderKeys as K
from services.recommender.consumer import RecommenderProjection
from tests.support import projected_commands


class _Redis:
    """What the projection reads: products known so far (none)."""

    def hmget(self, _key, *fields):
        return [None] * len(fields)


def product(pid: str, **attributes: str) -> dict:
    return {"product_id": pid, "title": "Hawaiian", "category": "pizza", "price": 13.0,
            **({"attributes": attributes} if attributes else {})}


def test_a_products_group_is_kept_and_follows_it_when_it_moves():
    projection = RecommenderProjection(_Redis())
    ops = Ops()
    projection.apply(new_event("product.upserted", product("hawaiian-M", item_group_id="hawaiian", size="M")), ops)
    commands = [tuple(c) for c in ops.commands]
    assert ("SADD", K.variants("hawaiian"), "hawaiian-M") in commands
    assert ("HSET", K.product("hawaiian-M"), "group", "hawaiian") in commands
    moved = Ops(ops.batch_state)
    projection.apply(new_event("product.upserted", product("hawaiian-M", item_group_id="hawaii")), moved)
    commands = [tuple(c) for c in moved.commands]
    assert ("SREM", K.variants("hawaiian"), "hawaiian-M") in commands
    assert ("SADD", K.variants("hawaii"), "hawaiian-M") in commands
    alone = Ops(moved.batch_state)  # no group any more
    projection.apply(new_event("product.upserted", product("hawaiian-M")), alone)
    commands = [tuple(c) for c in alone.commands]
    assert ("SREM", K.variants("hawaii"), "hawaiian-M") in commands
    assert ("HDEL", K.product("hawaiian-M"), "group") in commands
    gone = Ops()
    projection.apply(new_event("product.upserted", product("veggie-L", item_group_id="veggie")), gone)
    projection.apply(new_event("product.removed", {"product_id": "veggie-L"}), gone)
    assert ("SREM", K.variants("veggie"), "veggie-L") in [tuple(c) for c in gone.commands]


class _CountingRedis:
    """Products known to Redis, and how many round trips the projection made to read them."""

    def __init__(self, products: dict[str, dict[str, str]]) -> None:
        self.products = products
        self.round_trips = 0
        self.queued: list[tuple[str, tuple[str, ...]]] = []

    def hmget(self, key, *fields):
        self.round_trips += 1
        return self._row(key, fields)

    def _row(self, key, fields):
        known = self.products.get(key.rsplit(":", 1)[-1], {})
        return [known.get(f) for f in fields]

    def pipeline(self, transaction=True):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.queued = []

    def execute(self):
        self.round_trips += 1
        rows, self.queued = [self._row(k, f) for k, f in self.queued], []
        return rows


def _queue_hmget(self, key, *fields):
    self.queued.append((key, fields))


def test_a_batch_reads_its_products_in_one_round_trip_and_applies_as_if_read_one_by_one():
    """Issue #22: the consumer read a product's category and brand with one HMGET per product per batch (half as
    many round trips as events); ``prepare`` reads them all at once, and the commands are the same."""
    products = {f"p{i}": {"category": f"c{i % 7}", "brand": f"b{i % 5}", "price": f"{10 + i}"} for i in range(100)}
    events = [new_event("interaction.purchase", {"user_id": f"u{i % 40}", "product_id": f"p{(i * 7) % 100}"})
              for i in range(300)]

    one_by_one = _CountingRedis(products)
    lazy = RecommenderProjection(one_by_one)
    state: dict = {}
    expected = []
    for event in events:
        ops = Ops(state)
        lazy.apply(event, ops)
        expected.append(ops.commands)
    assert one_by_one.round_trips == 100  # what it was: one per product

    batched = _CountingRedis(products)
    batched.hmget = _queue_hmget.__get__(batched)  # inside the pipeline, an HMGET only queues
    projection = RecommenderProjection(batched)
    state = {}
    projection.prepare(events, state)
    got = projected_commands(projection, events, state)
    assert batched.round_trips == 1
    assert got == expected
    assert any(c[0] == "HINCRBYFLOAT" and c[2] == "c0" for commands in got for c in commands)
