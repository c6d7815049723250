"""The refresher: keeps a forecast of every product and category with sales, fresh as sales arrive, and
raises reorder alerts.

Every few seconds it takes the targets whose sales or stock moved (the projection marks them dirty),
re-forecasts them with their chosen models (in parallel) and publishes ``alert.reorder_needed`` on
``alerts.v1`` when a product's stock falls to its reorder point: one alert per crossing, cleared when
the stock is back above it. Once a model is loaded, and again whenever the model version or the last day
seen changes (a retraining, a new day: every kept forecast is then out of date), it also sweeps every
target with sales and forecasts those with nothing kept for the current version and day, in batches
between which new sales are refreshed first. A request then reads what is kept (issue #21: the slow path
is a background job, never the request).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any

from services.common import topics
from services.common.events import envelope
from services.common.logging import get_logger
from services.forecasting.core import top_down
from services.forecasting.core.forecast import forecast_many
from services.forecasting.forecaster import DEFAULT_HORIZON, DEFAULT_LEVEL, Forecaster
from services.forecasting.store import ForecastKeys as K

log = get_logger(__name__)
REFRESH_BATCH = 500
SWEEP_BATCH = 200  # targets per step of a sweep (in worker processes); new sales are refreshed between steps


class Refresher:
    """Re-forecasts what new sales moved and raises reorder alerts (see the module docstring)."""

    def __init__(self, forecaster: Forecaster, publish: Callable[[str, str, dict[str, Any]], Any],
                 every_seconds: float, n_jobs: int) -> None:
        self.forecaster = forecaster
        self.store = forecaster.store
        self.publish = publish
        self.every = every_seconds
        self.n_jobs = n_jobs
        self.swept: Hashable = None  # (model version, last day) of the last complete sweep

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.every):
            try:
                self.refresh()
                self.keep_all(stop)
            except Exception:
                log.warning("refresh_failed", exc_info=True)

    def keep_all(self, stop: threading.Event | None = None) -> int:
        """Forecast every target with sales that has nothing kept for this model version and last day; returns
        how many. Only with a model loaded (before, the first training would make it all out of date again)."""
        holder, last_day = self.forecaster.holder, self.store.last_day()
        state = (holder.version, last_day)
        if holder.model is None or last_day is None or state == self.swept:
            return 0
        # Categories first: a top-down product's forecast is its share of its category's.
        targets = [f"{kind}|{t}" for kind in ("c", "p") for t in self.store.targets_with_sales(kind)]
        lacking = self.forecaster.lacking(targets, last_day)
        log.info("forecast_sweep", targets=len(targets), lacking=len(lacking), model_version=holder.version)
        for i in range(0, len(lacking), SWEEP_BATCH):
            if stop is not None and stop.is_set():
                return i
            # Asked for (ondemand.py) or sold since the sweep began: kept already.
            self.reforecast(self.forecaster.lacking(lacking[i:i + SWEEP_BATCH], last_day))
            self.refresh()  # new sales first: they move what was just kept
        self.swept = state
        return len(lacking)

    def refresh(self) -> int:
        dirty = self.store.take_dirty(REFRESH_BATCH)
        if not dirty:
            return 0
        self.reforecast(sorted({d for d in dirty if not d.startswith("stock|")}))
        for pid in sorted({d.split("|", 1)[1] for d in dirty if d.startswith("stock|")}):
            self.check_stock(pid)
        return len(dirty)

    def reforecast(self, sales: list[str]) -> None:
        """Forecast again each ``kind|target`` whose sales moved and cache the forecasts."""
        items, ends = {}, {}
        for entry in sales:
            kind, target = entry.split("|", 1)
            h, series = self.forecaster.series(kind, target)
            if series is not None:
                items[entry] = series
                ends[entry] = h.end
        if not items:
            return
        chosen = {k: self.forecaster.model_for(*k.split("|", 1), items[k]) for k in items}
        own = {k: s for k, s in items.items() if chosen[k] != top_down.TOP_DOWN}
        outcomes = forecast_many(own, DEFAULT_HORIZON, DEFAULT_LEVEL, chosen=chosen,
                                 n_jobs=self.n_jobs if len(own) > 50 else 1,
                                 holidays_country=self.forecaster.holidays_country)
        for k, outcome in outcomes.items():
            kind, target = k.split("|", 1)
            if outcome.error is None:
                self.forecaster.store_predictions(kind, target, ends[k], chosen[k], outcome.prediction)
            else:  # e.g. every sale cancelled (NoDemand): the next request answers the reason, not a stale forecast
                self.forecaster.drop_predictions(kind, target)
        # After the categories above: a top-down product is its share of its category's forecast (no fit),
        # each category read once for the batch.
        categories: dict = {}
        for k in top_down.order_for_refresh([k for k in items if k not in own]):
            kind, target = k.split("|", 1)
            try:
                prediction = self.forecaster.fit(kind, target, items[k], top_down.TOP_DOWN, DEFAULT_HORIZON,
                                                 DEFAULT_LEVEL, categories)
            except Exception:  # noqa: BLE001 - as forecast_many's failing items
                self.forecaster.drop_predictions(kind, target)
                continue
            self.forecaster.store_predictions(kind, target, ends[k], chosen[k], prediction)

    def check_stock(self, pid: str) -> None:
        details = self.store.product(pid)
        if not details:
            return
        try:
            plan, on_hand, _ = self.forecaster.plan(pid, details)
        except (LookupError, ValueError):
            return
        alerted = self.store.redis.hget(K.alerted, pid)
        if not plan.reorder_now:
            if alerted is not None:
                self.store.redis.hdel(K.alerted, pid)
            return
        if alerted is not None:
            return  # one alert per crossing; cleared when stock is back above the reorder point
        payload = {"product_id": pid, "on_hand": on_hand, "reorder_point": round(plan.reorder_point, 2),
                   "order_quantity": int(plan.order_quantity), "stockout_risk": round(plan.stockout_risk, 4),
                   "days_of_cover": round(plan.days_of_cover, 2), "title": details.get("title", "")}
        self.publish(topics.ALERTS, pid, envelope("alert.reorder_needed", payload, "forecasting"))
        self.store.redis.hset(K.alerted, pid, plan.reorder_point)
        log.info("reorder_alert", product_id=pid, on_hand=on_hand, reorder_point=payload["reorder_point"])
