"""The seeded demo shop: deterministic, schema-valid, internally consistent, and its hidden truth shows."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import uuid
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta

import numpy as np
import pytest
from PIL import Image

from services.forecasting.core import pricing
from shopai.demo import CLASS_NAMES, DemoShopConfig, generate, load_fashion_mnist
from shopai.demo import fashion_mnist as fm
from shopai.demo import stream as stream_shop
from shopai.demo.catalog import CATEGORIES, COLOURS, garment_intensity, tint_image
from shopai.demo.generator import NAMESPACE
from shopai.demo.model import HIT_MIN_PRICE_STEPS, HIT_PRODUCTS

events_pb2 = pytest.importorskip("protos.events_pb2")
from google.protobuf.json_format import ParseDict

SMALL = {"n_products": 200, "n_users": 150, "days": 60}
TYPES = {
    "product": {"upserted", "removed"},
    "interaction": {"view", "click", "add_to_cart", "purchase", "rating", "search"},
    "order": {"created", "paid", "shipped", "delivered", "cancelled", "returned", "refunded"},
    "inventory": {"set", "received", "adjusted"},
}
PAYLOAD_MESSAGE = {
    "product": events_pb2.Product,
    "interaction": events_pb2.Interaction,
    "order": events_pb2.Order,
    "inventory": events_pb2.InventoryChange,
}
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


@pytest.fixture(scope="module")
def shop():
    return generate(DemoShopConfig(seed=7, **SMALL), progress=False)


@pytest.fixture(scope="module")
def all_events(shop):
    return list(shop.events())


def _ts(e: dict) -> datetime:
    return datetime.strptime(e["occurred_at"], "%Y-%m-%dT%H:%M:%SZ")


def _walk(value, path=""):
    """Yield (path, leaf) for every leaf of a JSON-like value."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")
    else:
        yield path, value


# ---------------------------------------------------------------------------------------------------


def test_same_seed_same_events_and_different_seed_different(shop, all_events):
    again = generate(DemoShopConfig(seed=7, **SMALL), progress=False)
    assert list(again.events()) == all_events
    assert json.dumps(again.truth, sort_keys=True) == json.dumps(shop.truth, sort_keys=True)

    other = generate(DemoShopConfig(seed=8, **SMALL), progress=False)
    other_events = list(other.events())
    assert {e["event_id"] for e in other_events}.isdisjoint({e["event_id"] for e in all_events})
    assert [e["payload"] for e in other.interactions[:50]] != [e["payload"] for e in shop.interactions[:50]]


# Digest of a small shop (events in time order and the truth; pictures left out, as their PNG bytes are
# zlib's): it pins the simulation's draws, so a refactor of shopai/demo that changes the order of any
# random draw fails here. Change it only with a change of the model, and say so in the commit.
PINNED_CONFIG = {"seed": 5, "n_products": 60, "n_users": 60, "days": 40, "price_changes_per_year": 6}
PINNED_DIGEST = "69694d4fd7513218f692a635316c573e4edaf86b1945ec0bc2c5466e521abb90"  # appeal (hits) added


def test_output_is_pinned():
    shop = generate(DemoShopConfig(**PINNED_CONFIG), progress=False)
    digest = hashlib.sha256()
    for e in shop.events(catalog_first=False):
        if e["type"] == "product.upserted":
            e = dict(e, payload={k: v for k, v in e["payload"].items() if k != "image_base64"})
        digest.update(json.dumps(e, ensure_ascii=False, sort_keys=True).encode())
    digest.update(json.dumps(shop.truth, ensure_ascii=False, sort_keys=True).encode())
    assert digest.hexdigest() == PINNED_DIGEST


def test_event_ids_unique_and_derived_from_seed(all_events):
    ids = [e["event_id"] for e in all_events]
    assert len(ids) == len(set(ids))
    # uuid5(NAMESPACE, f"{seed}:{type}:{counter}"): the first event of each type has counter 0
    for kind in ("product.upserted", "inventory.set"):
        assert str(uuid.uuid5(NAMESPACE, f"7:{kind}:0")) in set(ids)
    for i in ids[:200]:
        assert uuid.UUID(i).version == 5


def test_every_event_is_a_valid_envelope_with_a_schema_valid_payload(shop, all_events):
    start = date.fromisoformat(shop.truth["start_date"])
    lo = datetime.combine(start - timedelta(days=1), datetime.min.time())
    hi = datetime.combine(date(2026, 11, 28), datetime.max.time())
    per_type: Counter[str] = Counter()
    for e in all_events:
        assert set(e) == {"event_id", "type", "schema_version", "occurred_at", "source", "payload"}
        family, _, action = e["type"].partition(".")
        assert action in TYPES[family], e["type"]
        assert e["schema_version"] == 1 and e["source"] == "demo-shop"
        assert TS_RE.match(e["occurred_at"]) and lo <= _ts(e) <= hi
        if per_type[e["type"]] < 300:  # the envelope itself (a sample of each type: Struct parsing is slow)
            ParseDict(e, events_pb2.Envelope())
        per_type[e["type"]] += 1
        ParseDict(e["payload"], PAYLOAD_MESSAGE[family]())  # unknown fields or wrong types raise
        for path, leaf in _walk(e["payload"]):
            assert leaf is not None, (e["type"], path)
            key = re.sub(r"\[\d+\]", "", path).rsplit(".", 1)[-1]
            if key in {"quantity", "rating", "on_hand", "delta"}:
                assert type(leaf) is int, (e["type"], path, leaf)
            if key in {"price", "unit_price", "total", "cost"}:
                assert type(leaf) is float and round(leaf, 2) == leaf and leaf > 0, (e["type"], path, leaf)
        pl = e["payload"]
        if "product_id" in pl:
            assert re.fullmatch(r"p\d{5}", pl["product_id"])
        if "user_id" in pl:
            assert re.fullmatch(r"u[1-9]\d*", pl["user_id"])
        if family == "order":
            assert re.fullmatch(r"ORD-\d{8}", pl["order_id"])
    kinds = {e["type"] for e in all_events}
    assert kinds == {f"{f}.{a}" for f, acts in TYPES.items() for a in acts}  # every type occurs


def test_payload_fields_per_type(all_events):
    for e in all_events:
        pl, t = e["payload"], e["type"]
        if t == "interaction.search":
            assert set(pl) == {"user_id", "session_id", "query"} and pl["query"].strip()
        elif t in ("interaction.view", "interaction.click"):
            assert set(pl) == {"user_id", "product_id", "session_id", "price"}
        elif t in ("interaction.add_to_cart", "interaction.purchase"):
            assert (
                set(pl) == {"user_id", "product_id", "session_id", "quantity", "price"}
                and pl["quantity"] >= 1
            )
        elif t == "interaction.rating":
            assert set(pl) == {"user_id", "product_id", "session_id", "rating"} and 1 <= pl["rating"] <= 5
        elif t == "inventory.set":
            assert set(pl) == {"product_id", "on_hand", "location"} and pl["on_hand"] >= 0
        elif t == "inventory.received":
            assert set(pl) == {"product_id", "delta", "location"} and pl["delta"] > 0
        elif t == "inventory.adjusted":
            assert set(pl) == {"product_id", "delta", "location"} and pl["delta"] != 0
        elif t == "order.shipped":
            assert {"carrier", "tracking_no", "expected_delivery"} <= set(pl)
            date.fromisoformat(pl["expected_delivery"])
        elif t in ("order.cancelled", "order.returned"):
            assert pl["reason"]
        elif t == "product.removed":
            assert set(pl) == {"product_id"}


def test_events_are_time_ordered_with_the_catalog_first(shop, all_events):
    n = len(shop.catalog)
    assert all_events[:n] == shop.catalog
    rest = [e["occurred_at"] for e in all_events[n:]]
    assert rest == sorted(rest)
    for stream in (shop.catalog, shop.inventory, shop.interactions, shop.orders):
        times = [e["occurred_at"] for e in stream]
        assert times == sorted(times)
    merged = [e["occurred_at"] for e in shop.events(catalog_first=False)]
    assert merged == sorted(merged) and len(merged) == len(all_events)


def test_catalog_is_a_bilingual_fashion_shop(shop):
    upserts = {}
    for e in shop.catalog:
        if e["type"] == "product.upserted":
            upserts.setdefault(e["payload"]["product_id"], e["payload"])
    assert len(upserts) == SMALL["n_products"]
    products = list(upserts.values())
    assert {p["category"] for p in products} == {c.slug for c in CATEGORIES}
    assert {p["attributes"]["department"] for p in products} == {"clothing", "shoes", "bags"}
    assert len({p["brand"] for p in products}) >= 15
    assert len({p["attributes"]["colour"] for p in products}) == len(COLOURS)
    assert len({p["title"] for p in products}) == len(products)  # titles are unique
    cjk = re.compile(r"[\u4e00-\u9fff]")
    for p in products:
        assert p["currency"] == "CNY" and 0 < p["cost"] < p["price"]
        assert cjk.search(p["title_zh"]) and cjk.search(p["description_zh"])
        assert not cjk.search(p["title"]) and not cjk.search(p["description"])
        assert p["brand"] in p["title"] and p["brand"] in p["title_zh"]
        a = p["attributes"]
        assert all(isinstance(v, str) and v for v in a.values())
        assert a["colour"] in p["title"].lower()
        assert a["colour_zh"] in p["title_zh"]
        sizes = a["size"].split(",")
        if p["category"] == "bags":
            assert sizes == ["one size"]
        elif p["attributes"]["department"] == "shoes":
            assert all(35 <= int(s) <= 46 for s in sizes)
        elif p["category"] == "trousers":
            assert all(26 <= int(s) <= 36 for s in sizes)
        else:
            assert set(sizes) <= {"XS", "S", "M", "L", "XL", "XXL"}
    # a few products removed near the end, a few launched late (cold start)
    truth = shop.truth["products"]
    removed = [pid for pid, t in truth.items() if t["removed_on"]]
    late = [pid for pid, t in truth.items() if t["launched_on"]]
    assert removed and late
    assert {e["payload"]["product_id"] for e in shop.catalog if e["type"] == "product.removed"} == set(
        removed
    )
    for pid in late:
        assert "new-arrival" in upserts[pid]["tags"]
    removed_at = {
        e["payload"]["product_id"]: e["occurred_at"] for e in shop.catalog if e["type"] == "product.removed"
    }
    launched_at = {
        pid: min(
            e["occurred_at"]
            for e in shop.catalog
            if e["type"] == "product.upserted" and e["payload"]["product_id"] == pid
        )
        for pid in late
    }
    for e in shop.interactions:
        pid = e["payload"].get("product_id")
        if e["type"] in ("interaction.view", "interaction.purchase"):
            assert pid not in removed_at or e["occurred_at"] < removed_at[pid]
            assert pid not in launched_at or e["occurred_at"] > launched_at[pid]


def test_images_are_distinct_real_fashion_mnist_pictures_tinted_to_the_colour(shop):
    images, labels = load_fashion_mnist("train")
    truth = shop.truth["products"]
    seen = set()
    palette = {c[0]: np.array(c[3], dtype=float) for c in COLOURS}
    first = {}
    for e in shop.catalog:
        if e["type"] == "product.upserted":
            first.setdefault(e["payload"]["product_id"], e["payload"])
    for pid, p in first.items():
        raw = base64.b64decode(p["image_base64"], validate=True)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        img = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
        assert img.shape == (28, 28, 3)
        assert img.tobytes() not in seen
        seen.add(img.tobytes())
        idx = truth[pid]["fashion_mnist_train_index"]
        assert CATEGORIES[labels[idx]].slug == p["category"]
        src = images[idx]
        np.testing.assert_array_equal(img, tint_image(src, palette[p["attributes"]["colour"]]))
        # bright garment pixels carry the product's colour: the nearest palette colour is the product's
        # where the garment covers the pixel fully, pixel = shade * colour: undo the shading
        intensity = garment_intensity(src)
        full = intensity >= 0.7
        assert full.sum() >= 20
        colour = (img[full] / (0.45 + 0.55 * intensity[full])[:, None]).mean(0)
        nearest = min(palette, key=lambda c: np.linalg.norm(palette[c] - colour))
        assert nearest == p["attributes"]["colour"], (pid, colour)
    indices = [t["fashion_mnist_train_index"] for t in truth.values()]
    assert len(indices) == len(set(indices))


def _orders_by_id(shop):
    out = defaultdict(list)
    for e in shop.orders:
        out[e["payload"]["order_id"]].append(e)
    return out


def test_purchases_and_order_lines_agree(shop):
    purchases = defaultdict(list)  # (user, time) -> purchase lines
    shown = {}
    for e in shop.interactions:
        pl = e["payload"]
        if e["type"] == "interaction.view":
            shown[(pl["session_id"], pl["product_id"])] = pl["price"]
        if e["type"] == "interaction.purchase":
            purchases[(pl["user_id"], e["occurred_at"])].append(
                (pl["product_id"], pl["quantity"], pl["price"])
            )
            assert shown[(pl["session_id"], pl["product_id"])] == pl["price"]  # the price seen that day
    created = {}
    for e in shop.orders:
        if e["type"] == "order.created":
            pl = e["payload"]
            created[(pl["user_id"], e["occurred_at"])] = pl
            lines = [(ln["product_id"], ln["quantity"], ln["unit_price"]) for ln in pl["lines"]]
            assert pl["total"] == round(sum(q * p for _, q, p in lines), 2)
    assert created and set(created) == set(purchases)
    for key, pl in created.items():
        lines = [(ln["product_id"], ln["quantity"], ln["unit_price"]) for ln in pl["lines"]]
        assert sorted(lines) == sorted(purchases[key])
    # the price paid is that day's price: the list price (price history) less any promotion discount
    truth = shop.truth
    for (_user, at), pl in list(created.items())[:300]:
        day = at[:10]
        for ln in pl["lines"]:
            hist = truth["products"][ln["product_id"]]["price_history"]
            list_price = [h["price"] for h in hist if h["date"] <= day][-1]
            discounts = [
                w["discount"]
                for w in truth["promotions"]
                if w["start"] <= day <= w["end"] and ln["product_id"] in w["product_ids"]
            ]
            assert ln["unit_price"] == round(list_price * (1 - max(discounts, default=0.0)), 2)


def test_order_lifecycles_are_consistent(shop):
    orders = _orders_by_id(shop)
    allowed = {
        ("order.created",),
        ("order.created", "order.cancelled"),
        ("order.created", "order.paid"),
        ("order.created", "order.paid", "order.cancelled"),
        ("order.created", "order.paid", "order.cancelled", "order.refunded"),
        ("order.created", "order.paid", "order.shipped"),
        ("order.created", "order.paid", "order.shipped", "order.delivered"),
        ("order.created", "order.paid", "order.shipped", "order.delivered", "order.returned"),
        (
            "order.created",
            "order.paid",
            "order.shipped",
            "order.delivered",
            "order.returned",
            "order.refunded",
        ),
    }
    statuses = Counter()
    for oid, evs in orders.items():
        seq = tuple(e["type"] for e in evs)
        assert seq in allowed, (oid, seq)
        statuses[seq[-1]] += 1
        times = [e["occurred_at"] for e in evs]
        assert times == sorted(times)
        lines = {json.dumps(e["payload"]["lines"]) for e in evs}
        assert len(lines) == 1 and len({e["payload"]["user_id"] for e in evs}) == 1
    n = len(orders)
    assert (
        0.005 < sum(1 for evs in orders.values() if "order.cancelled" in [e["type"] for e in evs]) / n < 0.08
    )
    assert 0.01 < sum(1 for evs in orders.values() if "order.returned" in [e["type"] for e in evs]) / n < 0.12
    assert statuses["order.delivered"] > 0.7 * n


def test_stock_never_goes_negative_and_replays_to_the_final_snapshot(shop):
    """Replay the documented stock rule: set, + received/adjusted deltas, - order.created, + order.cancelled."""
    on_hand: dict[str, int] = {}
    snapshot: dict[str, int] = {}
    end = shop.truth["end_date"] + "T23:59:59Z"
    merged = sorted(
        [(e["occurred_at"], 0, i, e) for i, e in enumerate(shop.inventory)]
        + [(e["occurred_at"], 1, i, e) for i, e in enumerate(shop.orders)]
    )
    for at, _, _, e in merged:
        pl = e["payload"]
        if e["type"] == "inventory.set":
            if at == end:
                snapshot[pl["product_id"]] = pl["on_hand"]
            else:
                assert pl["product_id"] not in on_hand  # one initial set per product
            on_hand[pl["product_id"]] = pl["on_hand"]
        elif e["type"] in ("inventory.received", "inventory.adjusted"):
            on_hand[pl["product_id"]] += pl["delta"]
        elif e["type"] in ("order.created", "order.cancelled"):
            sign = -1 if e["type"] == "order.created" else 1
            for ln in pl["lines"]:
                on_hand[ln["product_id"]] += sign * ln["quantity"]
        else:
            continue
        assert all(v >= 0 for v in on_hand.values()), (at, e["type"])
    live = {pid for pid, t in shop.truth["products"].items() if not t["removed_on"]}
    assert set(snapshot) == live
    for pid in live:
        assert snapshot[pid] == on_hand[pid]
    assert any(e["type"] == "inventory.received" for e in shop.inventory)
    assert any(e["type"] == "inventory.adjusted" for e in shop.inventory)


def test_weekly_seasonality_weekends_busier(shop):
    promo_days = set()
    for w in shop.truth["promotions"]:
        d = date.fromisoformat(w["start"])
        while d <= date.fromisoformat(w["end"]):
            promo_days.add(d.isoformat())
            d += timedelta(days=1)
    sessions_per_day = defaultdict(set)
    for e in shop.interactions:
        if e["type"] in ("interaction.view", "interaction.search"):
            sessions_per_day[e["occurred_at"][:10]].add(e["payload"]["session_id"])
    weekend, weekday = [], []
    for day, sessions in sessions_per_day.items():
        if day in promo_days:
            continue
        (weekend if date.fromisoformat(day).weekday() >= 5 else weekday).append(len(sessions))
    ratio = np.mean(weekend) / np.mean(weekday)
    assert 1.12 < ratio < 1.5, ratio  # the model says ~1.28


def test_yearly_seasonality_coats_rise_and_sandals_fall_into_winter(shop):
    """The small shop covers October-November: coats gain share of views, sandals lose it."""
    cat = {pid: t["category"] for pid, t in shop.truth["products"].items()}
    views = [e for e in shop.interactions if e["type"] == "interaction.view"]
    third = len(views) // 3
    early = Counter(cat[e["payload"]["product_id"]] for e in views[:third])
    late = Counter(cat[e["payload"]["product_id"]] for e in views[-third:])
    assert late["coats"] > 1.08 * early["coats"], (early, late)
    assert late["sandals"] < 0.92 * early["sandals"], (early, late)


def _fe_price_slope(product, log_ratio, bought) -> float:
    """Demand elasticity estimated from the events: Poisson regression of "this view led to a purchase"
    on log(price / base price) with one intercept per product (profiled out), maximised on a grid."""
    y_per_product = np.bincount(product, weights=bought)
    keep = y_per_product[product] > 0
    product, x, y = product[keep], log_ratio[keep], bought[keep]
    has = y_per_product > 0
    grid = np.linspace(-5.0, 3.0, 801)
    loglik = []
    for b in grid:
        s = np.bincount(product, weights=np.exp(b * x), minlength=y_per_product.size)
        loglik.append(b * (y * x).sum() - (y_per_product[has] * np.log(s[has])).sum())
    return float(grid[int(np.argmax(loglik))])


def test_price_elasticity_drives_demand():
    """Products with strongly negative hidden elasticity lose more sales when their price rises (and gain
    more when it falls) than nearly inelastic ones. Measured from the events alone, within each product
    (so a product's popularity cannot stand in for its price), rises and cuts pooled for statistical power
    (rises alone give ~400 purchases per group here, a slope standard error of ~0.6). A generator whose
    purchases ignore price gives slopes near 0 for both groups and fails; one that applied the same
    elasticity to every product fails the gap."""
    shop = generate(
        DemoShopConfig(
            seed=3, n_products=100, n_users=200, days=120, sessions_per_day=300, price_changes_per_year=8
        ),
        progress=False,
    )
    truth = shop.truth["products"]
    bought = {
        (e["payload"]["session_id"], e["payload"]["product_id"])
        for e in shop.interactions
        if e["type"] == "interaction.purchase"
    }
    slopes = {}
    for group, member in (("strong", lambda el: el < -1.8), ("weak", lambda el: el > -1.2)):
        rows = []
        for e in shop.interactions:
            if e["type"] != "interaction.view":
                continue
            pl = e["payload"]
            t = truth[pl["product_id"]]
            if member(t["elasticity"]):
                rows.append(
                    (
                        int(pl["product_id"][1:]),
                        np.log(pl["price"] / t["base_price"]),
                        (pl["session_id"], pl["product_id"]) in bought,
                    )
                )
        p, x, y = (np.array(c) for c in zip(*rows))
        assert (x > 0.04).sum() > 1000 and (x < -0.04).sum() > 1000  # there were rises and cuts
        slopes[group] = _fe_price_slope(p, x, y.astype(float))
    assert slopes["strong"] < -1.4, slopes  # hidden elasticities in [-2.5, -1.8]
    assert -1.5 < slopes["weak"] < -0.2, slopes  # hidden elasticities in [-1.2, -0.5]
    assert slopes["strong"] < slopes["weak"] - 0.6, slopes


def test_the_best_sellers_sell_most_days_and_change_price_enough_for_their_own_elasticity():
    """Demand is concentrated (each product's hidden appeal, Zipf-like): the best sellers sell on a good share of
    the days, so the storefront's forecast chart of a top product shows a level, not a few single sales; and the
    most appealing products change their list price at least twice, so the forecasting service's pricing model
    (services/forecasting/core/pricing.py, views as exposure, as its trainer feeds it) has the price variation to
    estimate their own elasticity. Without appeal the default shop's best seller sold on 54 of 730 days."""
    cfg = DemoShopConfig(seed=11, n_products=500, n_users=750, days=365)  # the default shop's traffic
    shop = generate(cfg, progress=False)
    start = date.fromisoformat(shop.truth["start_date"])
    units, views = defaultdict(lambda: np.zeros(cfg.days)), defaultdict(lambda: np.zeros(cfg.days))
    seen = defaultdict(lambda: np.full(cfg.days, np.nan))
    for e in shop.interactions:
        if e["type"] == "interaction.view":
            day, pid = (date.fromisoformat(e["occurred_at"][:10]) - start).days, e["payload"]["product_id"]
            views[pid][day] += 1
            seen[pid][day] = e["payload"]["price"]
    for e in shop.orders:
        if e["type"] == "order.created":
            day = (date.fromisoformat(e["occurred_at"][:10]) - start).days
            for line in e["payload"]["lines"]:
                units[line["product_id"]][day] += line["quantity"]
    best = sorted(units, key=lambda pid: -units[pid].sum())[:3]
    for pid in best:
        assert (units[pid] > 0).sum() >= cfg.days / 4, (pid, int((units[pid] > 0).sum()))
        shown = views[pid] > 0
        estimate = pricing.estimate_elasticity(seen[pid][shown], units[pid][shown], views[pid][shown])
        assert estimate.enough_variation and np.isfinite(estimate.elasticity), (pid, estimate)
    truth = shop.truth["products"]
    appealing = sorted(truth, key=lambda pid: -truth[pid]["appeal"])[:HIT_PRODUCTS]
    for pid in appealing:
        if truth[pid]["launched_on"] is None and truth[pid]["removed_on"] is None:
            assert len(truth[pid]["price_history"]) - 1 >= HIT_MIN_PRICE_STEPS, pid
    top_units = sum(units[pid].sum() for pid in best)
    assert top_units > 0.05 * sum(u.sum() for u in units.values())  # three of 500 products: hits


def test_u1_exists_and_buys(shop):
    assert "u1" in shop.truth["users"]
    assert shop.truth["users"]["u1"]["signup_date"] == shop.truth["start_date"]
    assert any(
        e["type"] == "interaction.purchase" and e["payload"]["user_id"] == "u1" for e in shop.interactions
    )
    assert any(e["type"] == "order.delivered" and e["payload"]["user_id"] == "u1" for e in shop.orders)
    users = {e["payload"]["user_id"] for e in shop.interactions}
    assert users <= {f"u{i}" for i in range(1, SMALL["n_users"] + 1)}


def test_ratings_are_higher_for_well_matching_products(shop):
    truth = shop.truth
    ref = {slug: c["reference_price"] for slug, c in truth["categories"].items()}
    scores, ratings = [], []
    for e in shop.interactions:
        if e["type"] != "interaction.rating":
            continue
        u = truth["users"][e["payload"]["user_id"]]
        p = truth["products"][e["payload"]["product_id"]]
        prefs = u["category_prefs"]
        z = np.log(p["base_price"] / ref[p["category"]])
        band = np.exp(-((z - u["price_band"]["log_center"]) ** 2) / (2 * u["price_band"]["log_width"] ** 2))
        scores.append(np.sqrt(prefs[p["category"]] / max(prefs.values())) * band + 0.2 * p["quality"])
        ratings.append(e["payload"]["rating"])
    assert len(ratings) > 100
    assert np.corrcoef(scores, ratings)[0, 1] > 0.3


def test_truth_holds_the_hidden_parameters(shop, tmp_path):
    t = shop.truth
    assert len(t["users"]) == SMALL["n_users"] and len(t["products"]) == SMALL["n_products"]
    u = t["users"]["u1"]
    assert abs(sum(u["category_prefs"].values()) - 1) < 1e-3 and set(u["category_prefs"]) == set(
        t["categories"]
    )
    assert (
        u["brand_affinity"] and u["price_band"]["low"] < u["price_band"]["center"] < u["price_band"]["high"]
    )
    for p in t["products"].values():
        assert -2.5 <= p["elasticity"] <= -0.5 and p["price_history"][0]["price"] == p["base_price"]
    names = {w["name"] for w in t["promotions"]}
    assert {"Double 11 2026", "Black Friday 2026"} <= names
    assert t["seasonality"]["weekly"]["Sat"] > t["seasonality"]["weekly"]["Tue"]
    assert len(t["seasonality"]["expected_sessions"]["values"]) == SMALL["days"]
    assert t["counts"] == shop.counts()
    # list-price changes are sent as product.upserted with the new price, as the price history says
    for e in shop.catalog:
        if e["type"] == "product.upserted":
            hist = t["products"][e["payload"]["product_id"]]["price_history"]
            day = max(e["occurred_at"][:10], t["start_date"])
            assert e["payload"]["price"] == [h["price"] for h in hist if h["date"] <= day][-1]
    path = tmp_path / "truth.json"
    shop.write_truth(path)
    assert json.loads(path.read_text(encoding="utf-8")) == json.loads(json.dumps(t))


def test_fashion_mnist_loader(monkeypatch, tmp_path):
    x, y = load_fashion_mnist("test")
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8 and y.shape == (10000,)
    assert np.bincount(y).tolist() == [1000] * 10 and len(CLASS_NAMES) == 10
    with pytest.raises(ValueError):
        load_fashion_mnist("validation")
    monkeypatch.setenv(fm.ENV_VAR, str(tmp_path))
    with pytest.raises(fm.FashionMnistNotFound, match="dataset-fashion-mnist"):
        fm.load_fashion_mnist("train")


# ---- the scale shop: traffic that grows with the users, and a stream that never holds the history ----


def test_streamed_events_and_truth_are_generates(shop, all_events):
    """``stream`` makes the events while simulating (a day at a time) and hands out exactly what ``generate``
    does, in the same order, either ordering; the truth and the counts too."""
    streamed = stream_shop(DemoShopConfig(seed=7, **SMALL), progress=False)
    assert list(streamed.events()) == all_events
    assert streamed.truth == shop.truth and streamed.counts == shop.counts()
    with pytest.raises(RuntimeError):
        next(streamed.events())  # read once
    in_time = stream_shop(DemoShopConfig(seed=7, **SMALL), progress=False, catalog_first=False)
    assert list(in_time.events()) == list(shop.events(catalog_first=False))


def test_traffic_grows_with_users_above_the_demo_shops():
    """Up to 5,000 users a shop keeps the demo shop's 150 sessions a day (every existing config, the defaults
    included, makes the same events as before); above, 0.03 sessions per user a day: twice the users, about
    twice the events. The truth's config says the mean used and makes the same shop again."""
    assert DemoShopConfig().mean_sessions_per_day == 150.0
    assert DemoShopConfig(n_users=5000).mean_sessions_per_day == 150.0
    assert DemoShopConfig(n_users=100_000).mean_sessions_per_day == 3000.0
    assert DemoShopConfig(n_users=150, sessions_per_day=40).mean_sessions_per_day == 40
    with pytest.raises(ValueError):
        DemoShopConfig(sessions_per_user_day=-1).validate()

    def sessions(n_users: int) -> tuple[int, dict]:
        shop = stream_shop(DemoShopConfig(seed=2, n_products=40, n_users=n_users, days=6), progress=False)
        ids = {e["payload"]["session_id"] for e in shop.events() if e["type"] == "interaction.view"}
        return len(ids), shop.truth

    small, small_truth = sessions(10_000)
    large, large_truth = sessions(20_000)
    expected = sum(small_truth["seasonality"]["expected_sessions"]["values"])  # 300 a day x the calendar
    assert 0.9 * expected < small < 1.1 * expected, (small, expected)
    assert 1.7 < large / small < 2.3, (small, large)
    assert large_truth["config"]["sessions_per_day"] == 600.0
    assert "sessions_per_user_day" not in large_truth["config"]
    config = dict(large_truth["config"], end_date=date.fromisoformat(large_truth["config"]["end_date"]))
    assert DemoShopConfig(**config).mean_sessions_per_day == 600.0
    assert small_truth["config"]["sessions_per_day"] == 300.0
