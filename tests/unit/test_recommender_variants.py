"""Products that are one item in several sizes or colours (``attributes.item_group_id``): the projection keeps
each group's members, and similar products leave the anchor's other variants out unless asked."""

from __future__ import annotations

from services.common.events import new_event
from services.common.projection import Ops
from services.common.recommendations import RecommenderKeys as K
from services.recommender.consumer import RecommenderProjection


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
