"""The seeded demo shop: a fashion catalog, users with hidden tastes, two years of behaviour, orders, stock.

``generate(DemoShopConfig(seed=42))`` returns a :class:`DemoShop` whose events are in the envelope format
of ``services/common/events.py`` (payload fields as in ``protos/events.proto``) and whose ``truth`` holds
the hidden parameters the simulation used, for tests and benchmarks. Nothing reads the wall clock: the same
config always gives the same events, event ids included (uuid5 of ``f"{seed}:{type}:{counter}"``).

``stream(config)`` gives the same events while the simulation runs, holding only the catalog and a few days
of events at a time: what publishes a large shop (``shopai seed --products 50000 --users 100000 --days 365``).

The simulation itself is ``simulation.ShopSimulation``; see docs/demo-shop.md for the model in words.
"""

from __future__ import annotations

import heapq
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from shopai.demo.emitter import NAMESPACE, SOURCE
from shopai.demo.simulation import LOCATION, ShopSimulation

__all__ = ["LOCATION", "NAMESPACE", "SOURCE", "DemoShop", "DemoShopConfig", "ShopStream", "generate", "stream"]


@dataclass
class DemoShopConfig:
    seed: int = 42
    n_products: int = 2000
    n_users: int = 3000
    days: int = 730
    end_date: date = date(2026, 11, 28)
    sessions_per_day: float = 150.0  # mean before weekly/yearly/promo/trend factors, at least...
    sessions_per_user_day: float = 0.03  # ...and this many per user (it sets the traffic above 5,000 users)
    views_per_session: float = 2.6  # mean product views in a session (at least 1)
    search_rate: float = 0.3  # share of sessions that start with a search
    price_changes_per_year: float = 1.5  # mean list-price steps per product and year
    late_product_share: float = 0.015  # cold-start products launched in the last weeks
    removed_product_share: float = 0.015  # products removed in the last weeks
    return_rate: float = 0.06  # base share of delivered orders returned (more when the match is poor)

    def validate(self) -> None:
        if self.n_products < 10:
            raise ValueError("n_products must be at least 10 (one per category)")
        if self.n_users < 1 or self.days < 1:
            raise ValueError("n_users and days must be at least 1")
        if self.sessions_per_day <= 0 or self.views_per_session < 1:
            raise ValueError("sessions_per_day must be > 0 and views_per_session >= 1")
        if self.sessions_per_user_day < 0:
            raise ValueError("sessions_per_user_day must be >= 0")

    @property
    def mean_sessions_per_day(self) -> float:
        """The mean sessions a day before the factors: ``sessions_per_day``, or ``sessions_per_user_day`` for
        every user when that is more (the demo shop's 3,000 users: 150; 100,000 users: 3,000)."""
        return max(self.sessions_per_day, self.sessions_per_user_day * self.n_users)


@dataclass
class DemoShop:
    catalog: list[dict]  # product.* events, time ordered
    inventory: list[dict]  # inventory.* events, time ordered
    interactions: list[dict]  # interaction.* events, time ordered
    orders: list[dict]  # order.* events, time ordered
    truth: dict = field(default_factory=dict)

    def events(self, catalog_first: bool = True) -> Iterator[dict]:
        """Every event. By default the catalog first (so consumers know every product before any
        behaviour), then inventory, orders and interactions merged by ``occurred_at``. With
        ``catalog_first=False`` the catalog is merged in time too (price changes, launches and
        removals then appear when they happened)."""
        key = _occurred_at
        if catalog_first:
            yield from self.catalog
            yield from heapq.merge(self.inventory, self.orders, self.interactions, key=key)
        else:
            yield from heapq.merge(self.catalog, self.inventory, self.orders, self.interactions, key=key)

    def counts(self) -> dict[str, int]:
        """Number of events per type."""
        c: Counter[str] = Counter()
        for stream in (self.catalog, self.inventory, self.interactions, self.orders):
            c.update(e["type"] for e in stream)
        return dict(sorted(c.items()))

    def write_truth(self, path) -> None:
        _write_truth(self.truth, path)


def _write_truth(truth: dict, path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        json.dump(truth, fh, ensure_ascii=False, indent=1)
        fh.write("\n")


def _occurred_at(e: dict) -> str:
    return e["occurred_at"]


def generate(config: DemoShopConfig, progress: bool = True) -> DemoShop:
    """Simulate the shop described by ``config``; deterministic in ``config``."""
    simulation = ShopSimulation(config, progress).run()
    shop = DemoShop(*simulation.streams())
    shop.truth = simulation.truth(shop.counts()).to_dict()
    return shop


class ShopStream:
    """The events of ``generate(config).events(catalog_first)``, in the same order, made while the simulation
    runs: the catalog (known in advance) and the events of the day being simulated are held, not the history.
    Iterate ``events()`` once; afterwards ``counts`` and ``truth`` are the same as ``generate``'s."""

    def __init__(self, config: DemoShopConfig, progress: bool = True, catalog_first: bool = True) -> None:
        self.config = config
        self.progress = progress
        self.catalog_first = catalog_first
        self.counts: dict[str, int] = {}
        self.truth: dict = {}

    def events(self) -> Iterator[dict]:
        if self.truth:
            raise RuntimeError("a ShopStream's events can be read once")
        simulation = ShopSimulation(self.config, self.progress)
        counts: Counter[str] = Counter()
        key = _occurred_at
        for d in simulation.days():
            if d == 0 and self.catalog_first:  # the whole catalog first (it is made before the first day)
                catalog = simulation.take_catalog()
                counts.update(e["type"] for e in catalog)
                yield from catalog
                del catalog
            day_catalog, inventory, interactions, orders = simulation.take_final(d)
            streams = (inventory, orders, interactions) if self.catalog_first else (
                day_catalog, inventory, orders, interactions)
            for events in streams:
                counts.update(e["type"] for e in events)
            yield from heapq.merge(*streams, key=key)
        self.counts = dict(sorted(counts.items()))
        self.truth = simulation.truth(self.counts).to_dict()

    def write_truth(self, path) -> None:
        _write_truth(self.truth, path)


def stream(config: DemoShopConfig, progress: bool = True, catalog_first: bool = True) -> ShopStream:
    """``generate(config).events(catalog_first)``, streamed: see ``ShopStream``."""
    config.validate()
    return ShopStream(config, progress, catalog_first)
