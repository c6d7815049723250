"""Forecasts of one product or category from its newest daily history, kept in Redis, and the
inventory plan of a product built on its forecast.

A forecast is kept (hash ``fc:forecast:<kind>|<target>``, one field per model version, last day,
chosen model, horizon and level) until the target's sales move (the refresher replaces it) or the
model changes; it expires after a day in any case. The refresher keeps the forecast of every target
with sales at ``KEPT_HORIZON`` days and the default level, so a request reads it (:meth:`Forecaster.kept`:
a shorter horizon is its first days) and never fits a model; :meth:`Forecaster.predict`, which fits
what is not kept, runs in the background workers only (refresher.py, ondemand.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import date

import numpy as np

from services.common.models import ModelHolder
from services.forecasting.core import inventory, top_down
from services.forecasting.core.bundle import ForecastingModel, target_key, to_series
from services.forecasting.core.forecast import Prediction, default_model, fit_predict
from services.forecasting.store import DailyHistory, ForecastStore
from services.forecasting.store import ForecastKeys as K

DEFAULT_HORIZON = 28
DEFAULT_LEVEL = 0.8
KEPT_HORIZON = DEFAULT_HORIZON  # what the refresher keeps for every target; a request's shorter horizon is sliced
FORECAST_CACHE_SECONDS = 24 * 3600


def number(value: str | None) -> float | None:
    """A stored number (a catalog field), or None when missing or not a number."""
    try:
        return float(value) if value else None
    except ValueError:
        return None


def prediction_json(p: Prediction) -> dict:
    return {"model": p.model, "dates": [d.isoformat() for d in p.dates], "yhat": [float(v) for v in p.yhat],
            "lower": [float(v) for v in p.lower], "upper": [float(v) for v in p.upper], "level": p.level}


def prediction_from_json(c: dict, horizon: int | None = None) -> Prediction:
    """The kept prediction, or its first ``horizon`` days."""
    n = slice(None, horizon)
    return Prediction(model=c["model"], dates=[date.fromisoformat(d) for d in c["dates"][n]],
                      yhat=np.array(c["yhat"][n]), lower=np.array(c["lower"][n]), upper=np.array(c["upper"][n]),
                      level=c["level"])


def cache_field(version: str | None, end: date, model: str, horizon: int, level: float) -> str:
    """The field of one forecast in its target's hash; ``model`` is the one chosen for the target."""
    return f"{version}:{end.isoformat()}:{model}:{horizon}:{level:.4f}"


class Forecaster:
    """Forecasts of one target from its newest history with the model chosen for it, cached in
    Redis until the target's sales move (the refresher drops the cache) or the model changes."""

    def __init__(self, store: ForecastStore, holder: ModelHolder[ForecastingModel], holidays_country: str | None):
        self.store = store
        self.holder = holder
        self.holidays_country = holidays_country or None

    def model_for(self, kind: str, target: str, series) -> str:
        model = self.holder.model
        chosen = model.chosen.get(target_key(kind, target)) if model is not None else None
        return chosen or default_model(series)

    def series(self, kind: str, target: str):
        h = self.store.history(kind, target)
        if h is None:
            return None, None
        list_price = None
        if kind == "p":
            list_price = number(self.store.product(target).get("price")) or None
        return h, to_series(h.start, h.units, h.price if kind == "p" else None, list_price)

    def kept(self, kind: str, target: str, horizon: int, level: float
             ) -> tuple[DailyHistory, Prediction | None] | tuple[None, None]:
        """(history, the kept Prediction) without fitting anything: (history, None) when nothing is kept for
        these parameters yet, (None, None) without any sale. The default level's forecast kept for every
        target answers any horizon up to ``KEPT_HORIZON`` (its first days)."""
        h, series = self.series(kind, target)
        if h is None:
            return None, None
        name = self.model_for(kind, target, series)
        fields = [cache_field(self.holder.version, h.end, name, horizon, level)]
        if round(level, 4) == DEFAULT_LEVEL and horizon < KEPT_HORIZON:
            fields.append(cache_field(self.holder.version, h.end, name, KEPT_HORIZON, level))
        for raw in self.store.redis.hmget(K.forecast(target_key(kind, target)), fields):
            if raw:
                return h, prediction_from_json(json.loads(raw), horizon)
        return h, None

    def predict(self, kind: str, target: str, horizon: int, level: float
                ) -> tuple[DailyHistory, Prediction] | tuple[None, None]:
        """(history, Prediction) or (None, None) without any sale: the kept one, else fitted now and kept.
        Fitting takes up to seconds (Prophet): the background workers call this, requests read ``kept``."""
        h, prediction = self.kept(kind, target, horizon, level)
        if h is None or prediction is not None:
            return h, prediction
        if round(level, 4) == DEFAULT_LEVEL and horizon < KEPT_HORIZON:
            _, prediction = self.predict(kind, target, KEPT_HORIZON, level)  # kept for every shorter horizon
            return h, Prediction(prediction.model, prediction.dates[:horizon], prediction.yhat[:horizon],
                                 prediction.lower[:horizon], prediction.upper[:horizon], prediction.level)
        h, series = self.series(kind, target)
        name = self.model_for(kind, target, series)
        prediction = self.fit(kind, target, series, name, horizon, level)
        cache = K.forecast(target_key(kind, target))
        self.store.redis.hset(cache, cache_field(self.holder.version, h.end, name, horizon, level),
                              json.dumps(prediction_json(prediction)))
        self.store.redis.expire(cache, FORECAST_CACHE_SECONDS)
        return h, prediction

    def fit(self, kind: str, target: str, series, name: str, horizon: int, level: float,
            categories: dict | None = None) -> Prediction:
        """``name``'s forecast of the target. ``top_down`` (a product): its share of its category's forecast
        (kept, or fitted now and kept), or its default model where it has no category or no share.
        ``categories``: category -> (series, forecast) already read, shared by a batch of products."""
        if name == top_down.TOP_DOWN:
            prediction = self.top_down(target, series, horizon, level, categories) if kind == "p" else None
            if prediction is not None:
                return prediction
            name = default_model(series)
        return fit_predict(series, name, horizon, level, holidays_country=self.holidays_country)

    def top_down(self, pid: str, series, horizon: int, level: float,
                 categories: dict | None = None) -> Prediction | None:
        category = self.store.product(pid).get("category")
        if not category:
            return None
        categories = {} if categories is None else categories
        if category not in categories:
            h, category_prediction = self.predict("c", category, horizon, level)  # one read of its history
            categories[category] = (None if h is None else to_series(h.start, h.units), category_prediction)
        category_series, category_prediction = categories[category]
        if category_series is None:
            return None
        return top_down.predict(series, category_series, category_prediction, level)

    def lacking(self, targets: list[str], end: date) -> list[str]:
        """The ``kind|target`` entries with no forecast kept for this model version and last day."""
        prefix, suffix = f"{self.holder.version}:{end.isoformat()}:", f":{KEPT_HORIZON}:{DEFAULT_LEVEL:.4f}"
        with self.store.redis.pipeline(transaction=False) as pipe:
            for entry in targets:
                pipe.hkeys(K.forecast(target_key(*entry.split("|", 1))))
            kept = pipe.execute()
        return [entry for entry, fields in zip(targets, kept, strict=True)
                if not any(f.startswith(prefix) and f.endswith(suffix) for f in fields)]

    def store_predictions(self, kind: str, target: str, end: date, model: str, prediction: Prediction) -> None:
        """Keep the forecast the refresher made with ``model`` (the one chosen for the target: the request reads
        it under that name, even when a fallback made it), replacing every other one of the target."""
        field = cache_field(self.holder.version, end, model, KEPT_HORIZON, DEFAULT_LEVEL)
        cache = K.forecast(target_key(kind, target))
        with self.store.redis.pipeline() as pipe:
            pipe.delete(cache)
            pipe.hset(cache, field, json.dumps(prediction_json(prediction)))
            pipe.expire(cache, FORECAST_CACHE_SECONDS)
            pipe.execute()

    def drop_predictions(self, kind: str, target: str) -> None:
        self.store.redis.delete(K.forecast(target_key(kind, target)))

    def plan(self, pid: str, details: dict[str, str], service_level: float = 0.95, lead_time: float = 7.0,
             ordering_cost: float = 50.0, holding_rate: float = 0.25, predict: Callable | None = None
             ) -> tuple[inventory.InventoryPlan, int, float]:
        """(plan, on_hand, unit_cost) of one product, or raise LookupError with the reason (ValueError
        for parameters out of range). ``predict`` (default :meth:`predict`) gives the forecast: a request
        passes one that reads what is kept."""
        on_hand = self.store.stock.on_hand(pid)
        if on_hand is None:
            raise LookupError(f"the stock of {pid!r} was never counted: send an inventory.set first")
        horizon = max(DEFAULT_HORIZON, math.ceil(lead_time) + 1)
        _, prediction = (predict or self.predict)("p", pid, horizon, DEFAULT_LEVEL)
        forecast, std = inventory.forecast_demand(prediction, horizon)
        unit_cost = number(details.get("cost")) or number(details.get("price")) or 0.0
        plan = inventory.plan_inventory(
            mean_daily_demand=float(np.mean(forecast)), daily_demand_std=float(np.sqrt(np.mean(std ** 2))),
            on_hand=on_hand, lead_time_days=lead_time, service_level=service_level, ordering_cost=ordering_cost,
            holding_cost_rate=holding_rate, unit_cost=unit_cost, forecast_daily=list(forecast),
            forecast_daily_std=list(std))
        return plan, on_hand, unit_cost
