"""A shop's own exports as events (issue #20): a table of order lines (one row per item sold, as a till or an
order system exports it) or a catalog table (one row per product), read with a column mapping.

``--map`` names which source column feeds which field: ``id=order_id,name+size=product_id,type=category``.
A source of ``a+b`` joins those columns with ``-`` (``hawaiian-M``); a target ``attributes.size`` fills a
product attribute. Columns not named are ignored, so a source column called ``type`` no longer clashes with
the event type.

A product id joined from several columns is a variant of the item its first column names: the product gets
``attributes.item_group_id`` (that value) and the other columns as attributes (``size``), and the title
``hawaiian (M)``, so similar products leave out the same pizza in another size (the recommender).

Order lines are grouped by ``order_id`` (the rows of one order need not be adjacent). Each order becomes
``order.created`` (its lines; identical lines add up: two rows of one pizza are a quantity of 2, never one
sale), then ``order.paid`` and one ``interaction.purchase`` per product when the order is paid: always, unless
a ``status`` column is mapped, then only the statuses of ``PAID_STATUSES``. Every product seen is sent first
as ``product.upserted`` (title, category, its last price; ``catalog=False`` leaves the catalog alone when it is
imported from its own table). An order without a customer column belongs to the anonymous shopper
``guest-<order_id>``: the basket still teaches what sells together.

Event ids are derived, never random: an order's events from its ``order_id``, a product's from its content
and the rows it came from, so importing the same file again publishes the same ids (the consumers count
nothing twice), a changed product is sent again, and two identical lines stay two sales.

Pure: rows in, envelope dicts out (validated later, as ``POST /v1/events`` validates them).
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

NAMESPACE = uuid.UUID("5d8b0a3e-3f0c-4b7e-8f43-2a6f5b1d9c21")
KINDS = ("order-lines", "catalog")
ORDER_LINE_FIELDS = ("order_id", "product_id", "occurred_at", "date", "time", "quantity", "unit_price",
                     "user_id", "title", "category", "currency", "status")
CATALOG_FIELDS = ("product_id", "title", "title_zh", "description", "description_zh", "category", "brand",
                  "price", "currency", "tags", "image_url", "cost", "occurred_at")
REQUIRED = {"order-lines": ("order_id", "product_id"), "catalog": ("product_id",)}
PAID_STATUSES = frozenset({"paid", "completed", "complete", "delivered", "shipped", "fulfilled", "closed",
                           "success", "succeeded", "done"})
DEFAULT_CATEGORY = "uncategorised"
GROUP_ATTRIBUTE = "item_group_id"  # what makes products variants of one item (services/recommender/consumer.py)
SOURCE = "shopai-import"


class TableError(ValueError):
    """The mapping or a row cannot be read; the message says which and why."""


@dataclass(frozen=True)
class Mapping_:
    """Target field -> the source columns joined to fill it."""

    targets: dict[str, tuple[str, ...]]

    def value(self, row: Mapping[str, str | None], target: str) -> str:
        columns = self.targets.get(target)
        if not columns:
            return ""
        parts = [(row.get(c) or "").strip() for c in columns]
        return "-".join(p for p in parts if p)


def parse_mapping(text: str, kind: str, header: Iterable[str]) -> Mapping_:
    """``src=target,a+b=target2`` checked against the file's header and the kind's fields. A column named
    like a field maps to it without being named (``order_id``, ``price``...), unless the mapping uses it
    for another field."""
    if kind not in KINDS:
        raise TableError(f"unknown table kind {kind!r}; expected one of {', '.join(KINDS)}")
    header = [h for h in header if h]
    allowed = ORDER_LINE_FIELDS if kind == "order-lines" else CATALOG_FIELDS
    targets: dict[str, tuple[str, ...]] = {}
    for item in (part.strip() for part in (text or "").split(",")):
        if not item:
            continue
        source, sep, target = item.partition("=")
        source, target = source.strip(), target.strip()
        if not sep or not source or not target:
            raise TableError(f"--map item {item!r} must read source=field (source columns joined with +)")
        if target not in allowed and not (target.startswith("attributes.") and len(target) > len("attributes.")):
            raise TableError(f"--map target {target!r} is not a field of {kind}; fields: {', '.join(allowed)}, "
                             "attributes.<name>")
        columns = tuple(c.strip() for c in source.split("+"))
        missing = [c for c in columns if c not in header]
        if missing:
            raise TableError(f"--map source column(s) {missing} not in the file's header {header}")
        if target in targets:
            raise TableError(f"--map names {target!r} twice")
        targets[target] = columns
    used = {c for columns in targets.values() for c in columns}
    for name in allowed:  # columns already named like a field need no mapping (unless mapped to another)
        if name not in targets and name in header and name not in used:
            targets[name] = (name,)
    missing = [t for t in REQUIRED[kind] if t not in targets]
    if kind == "order-lines" and "occurred_at" not in targets and "date" not in targets:
        missing.append("occurred_at (or date, with an optional time)")
    if missing:
        raise TableError(f"{kind} needs {', '.join(missing)}: add a column of that name or --map column=field")
    return Mapping_(targets)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TableError(f"unknown time zone {name!r} (an IANA name such as Europe/Berlin or UTC)") from None


def _when(mapping: Mapping_, row: Mapping[str, str | None], zone: ZoneInfo) -> datetime:
    text = mapping.value(row, "occurred_at")
    if not text:
        date_text, time_text = mapping.value(row, "date"), mapping.value(row, "time")
        if not date_text:
            raise TableError("no date")
        text = f"{date_text}T{time_text}" if time_text else date_text
    try:
        when = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    except ValueError:
        raise TableError(f"date {text!r} is not an ISO date or date-time (YYYY-MM-DD[ HH:MM[:SS]])") from None
    return (when.replace(tzinfo=zone) if when.tzinfo is None else when).astimezone(UTC)


def _number(text: str, what: str, default: float | None = None) -> float:
    if not text:
        if default is None:
            raise TableError(f"no {what}")
        return default
    # "1,234.50": a thousands separator; "12,50" (no point): a decimal comma.
    cleaned = text.replace(",", "") if "." in text else text.replace(",", ".", 1) if text.count(",") == 1 else text
    try:
        value = float(cleaned)
    except ValueError:
        raise TableError(f"{what} {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise TableError(f"{what} {text!r} must be a number >= 0")
    return value


def _quantity(text: str) -> int:
    value = _number(text, "quantity", 1.0)
    if value < 1 or value != int(value):
        raise TableError(f"quantity {text!r} must be a whole number >= 1")
    return int(value)


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _event(event_type: str, event_id: str, when: datetime, payload: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "type": event_type, "occurred_at": _iso(when), "source": SOURCE,
            "payload": payload}


def _content(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, ensure_ascii=False)


def _id(*parts: object) -> str:
    return str(uuid.uuid5(NAMESPACE, "\x1f".join(str(p) for p in parts)))


@dataclass
class _Order:
    order_id: str
    user_id: str
    when: datetime
    currency: str
    paid: bool
    quantities: dict[str, int] = field(default_factory=dict)
    prices: dict[str, float] = field(default_factory=dict)


@dataclass
class _Product:
    title: str
    category: str
    price: float
    currency: str
    first: datetime
    attributes: dict[str, str] = field(default_factory=dict)
    rows: list[int] = field(default_factory=list)


def _attributes(mapping: Mapping_, row: Mapping[str, str | None]) -> dict[str, str]:
    """The ``attributes.<name>`` targets; a product id joined from several columns (``name+size``) is a
    variant of the item its first column names: ``item_group_id`` = that value, the other columns become
    attributes (``size``), unless the mapping names ``attributes.item_group_id`` itself."""
    out = {t.removeprefix("attributes."): mapping.value(row, t) for t in mapping.targets
           if t.startswith("attributes.") and mapping.value(row, t)}
    columns = mapping.targets.get("product_id", ())
    if len(columns) > 1 and GROUP_ATTRIBUTE not in out:
        first = (row.get(columns[0]) or "").strip()
        if first:
            out[GROUP_ATTRIBUTE] = first
            for column in columns[1:]:
                value = (row.get(column) or "").strip()
                if value:
                    out.setdefault(column, value)
    return out


def _default_title(mapping: Mapping_, row: Mapping[str, str | None], pid: str) -> str:
    """``hawaiian (M)`` for a product id joined from ``name+size``; else the id."""
    columns = mapping.targets.get("product_id", ())
    if len(columns) > 1:
        parts = [(row.get(c) or "").strip() for c in columns]
        if parts[0]:
            rest = " ".join(p for p in parts[1:] if p)
            return f"{parts[0]} ({rest})" if rest else parts[0]
    return pid


RowResult = tuple[int, dict[str, Any] | None, str | None]  # (line, envelope or None, error or None)


def order_line_events(rows: Iterable[tuple[int, Mapping[str, str | None]]], mapping: Mapping_, *,
                      currency: str = "USD", timezone: str = "UTC", catalog: bool = True) -> Iterator[RowResult]:
    """(line, envelope, None) for every event of the table, or (line, None, reason) for a row that cannot be
    read. A bad row is reported and left out of its order; the rest of the file goes on."""
    zone = _zone(timezone)
    orders: dict[str, _Order] = {}
    products: dict[str, _Product] = {}
    bad: list[RowResult] = []
    for line, row in rows:
        try:
            oid, pid = mapping.value(row, "order_id"), mapping.value(row, "product_id")
            if not oid:
                raise TableError("no order_id")
            if not pid:
                raise TableError("no product_id")
            when = _when(mapping, row, zone)
            quantity = _quantity(mapping.value(row, "quantity"))
            price = _number(mapping.value(row, "unit_price"), "unit_price", 0.0)
            status = mapping.value(row, "status").lower()
        except TableError as exc:
            bad.append((line, None, str(exc)))
            continue
        cur = mapping.value(row, "currency") or currency
        order = orders.get(oid)
        if order is None:
            user = mapping.value(row, "user_id") or f"guest-{oid}"
            paid = "status" not in mapping.targets or status in PAID_STATUSES
            order = orders[oid] = _Order(oid, user, when, cur, paid)
        order.when = min(order.when, when)
        order.quantities[pid] = order.quantities.get(pid, 0) + quantity
        order.prices[pid] = price
        product = products.get(pid)
        if product is None:
            product = products[pid] = _Product(mapping.value(row, "title") or _default_title(mapping, row, pid),
                                               mapping.value(row, "category") or DEFAULT_CATEGORY, price, cur, when,
                                               _attributes(mapping, row))
        product.first = min(product.first, when)
        product.price, product.rows = price, [*product.rows, line]
    yield from bad
    if catalog:
        for pid, p in products.items():
            payload = {"product_id": pid, "title": p.title, "category": p.category, "price": p.price,
                       "currency": p.currency, **({"attributes": p.attributes} if p.attributes else {})}
            yield p.rows[0], _event("product.upserted", _id("product", _content(payload), *p.rows), p.first,
                                    payload), None
    for o in sorted(orders.values(), key=lambda o: o.when):
        lines = [{"product_id": pid, "quantity": q, "unit_price": o.prices[pid]} for pid, q in o.quantities.items()]
        total = round(sum(line["quantity"] * line["unit_price"] for line in lines), 2)
        order = {"order_id": o.order_id, "user_id": o.user_id, "lines": lines, "total": total, "currency": o.currency}
        yield 0, _event("order.created", _id("order.created", o.order_id), o.when, order), None
        if not o.paid:
            continue
        yield 0, _event("order.paid", _id("order.paid", o.order_id), o.when,
                        {"order_id": o.order_id, "user_id": o.user_id, "total": total, "currency": o.currency}), None
        for line in lines:
            yield 0, _event("interaction.purchase", _id("purchase", o.order_id, line["product_id"]), o.when, {
                "user_id": o.user_id, "product_id": line["product_id"], "quantity": line["quantity"],
                "price": line["unit_price"]}), None


def catalog_events(rows: Iterable[tuple[int, Mapping[str, str | None]]], mapping: Mapping_, *,
                   currency: str = "USD", timezone: str = "UTC", now: datetime | None = None) -> Iterator[RowResult]:
    """One ``product.upserted`` per row (at ``occurred_at`` when mapped, else ``now``)."""
    zone = _zone(timezone)
    now = now or datetime.now(UTC)
    for line, row in rows:
        try:
            pid = mapping.value(row, "product_id")
            if not pid:
                raise TableError("no product_id")
            when = _when(mapping, row, zone) if "occurred_at" in mapping.targets else now
            payload: dict[str, Any] = {"product_id": pid, "title": mapping.value(row, "title") or pid,
                                       "category": mapping.value(row, "category") or DEFAULT_CATEGORY,
                                       "currency": mapping.value(row, "currency") or currency}
            for name in ("price", "cost"):
                if mapping.value(row, name):
                    payload[name] = _number(mapping.value(row, name), name)
            for name in ("title_zh", "description", "description_zh", "brand", "image_url"):
                if mapping.value(row, name):
                    payload[name] = mapping.value(row, name)
            tags = mapping.value(row, "tags")
            if tags:
                payload["tags"] = [t.strip() for t in tags.replace(";", ",").replace("|", ",").split(",") if t.strip()]
            attributes = _attributes(mapping, row)
            if attributes:
                payload["attributes"] = attributes
        except TableError as exc:
            yield line, None, str(exc)
            continue
        yield line, _event("product.upserted", _id("catalog", _content(payload), line), when, payload), None
