"""Forecasts of one product or category from its newest daily history, cached in Redis, and the
inventory plan of a product built on its forecast.

A forecast is cached (hash ``fc:forecast:<kind>|<target>``, one field per model version, last day,
model, horizon and level) until the target's sales move (the refresher replaces the cache) or the
model changes; the cache expires after a day in any case.
"""

from __future__ import annotations

import json
import math
from datetime import date

import numpy as np

from services.common.models import ModelHolder
from services.forecasting.core import inventory
from services.forecasting.core.bundle import ForecastingModel, target_key, to_series
from services.forecasting.core.forecast import Prediction, default_model, fit_predict
from services.forecasting.store import DailyHistory, ForecastStore
from services.forecasting.store import ForecastKeys as K

DEFAULT_HORIZON = 28
DEFAULT_LEVEL = 0.8
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


def prediction_from_json(c: dict) -> Prediction:
    return Prediction(model=c["model"], dates=[date.fromisoformat(d) for d in c["dates"]],
                      yhat=np.array(c["yhat"]), lower=np.array(c["lower"]), upper=np.array(c["upper"]),
                      level=c["level"])


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

    def predict(self, kind: str, target: str, horizon: int, level: float
                ) -> tuple[DailyHistory, Prediction] | tuple[None, None]:
        """(history, Prediction) or (None, None) without any sale."""
        h, series = self.series(kind, target)
        if h is None:
            return None, None
        name = self.model_for(kind, target, series)
        field = f"{self.holder.version}:{h.end.isoformat()}:{name}:{horizon}:{level:.4f}"
        cache = K.forecast(target_key(kind, target))
        raw = self.store.redis.hget(cache, field)
        if raw:
            return h, prediction_from_json(json.loads(raw))
        prediction = fit_predict(series, name, horizon, level, holidays_country=self.holidays_country)
        self.store.redis.hset(cache, field, json.dumps(prediction_json(prediction)))
        self.store.redis.expire(cache, FORECAST_CACHE_SECONDS)
        return h, prediction

    def store_predictions(self, kind: str, target: str, end: date, prediction: Prediction) -> None:
        field = f"{self.holder.version}:{end.isoformat()}:{prediction.model}:{DEFAULT_HORIZON}:{DEFAULT_LEVEL:.4f}"
        cache = K.forecast(target_key(kind, target))
        with self.store.redis.pipeline() as pipe:
            pipe.delete(cache)
            pipe.hset(cache, field, json.dumps(prediction_json(prediction)))
            pipe.expire(cache, FORECAST_CACHE_SECONDS)
            pipe.execute()

    def drop_predictions(self, kind: str, target: str) -> None:
        self.store.redis.delete(K.forecast(target_key(kind, target)))

    def plan(self, pid: str, details: dict[str, str], service_level: float = 0.95, lead_time: float = 7.0,
             ordering_cost: float = 50.0, holding_rate: float = 0.25
             ) -> tuple[inventory.InventoryPlan, int, float]:
        """(plan, on_hand, unit_cost) of one product, or raise LookupError with the reason (ValueError
        for parameters out of range)."""
        on_hand = self.store.stock.on_hand(pid)
        if on_hand is None:
            raise LookupError(f"the stock of {pid!r} was never counted: send an inventory.set first")
        horizon = max(DEFAULT_HORIZON, math.ceil(lead_time) + 1)
        _, prediction = self.predict("p", pid, horizon, DEFAULT_LEVEL)
        forecast, std = inventory.forecast_demand(prediction, horizon)
        unit_cost = number(details.get("cost")) or number(details.get("price")) or 0.0
        plan = inventory.plan_inventory(
            mean_daily_demand=float(np.mean(forecast)), daily_demand_std=float(np.sqrt(np.mean(std ** 2))),
            on_hand=on_hand, lead_time_days=lead_time, service_level=service_level, ordering_cost=ordering_cost,
            holding_cost_rate=holding_rate, unit_cost=unit_cost, forecast_daily=list(forecast),
            forecast_daily_std=list(std))
        return plan, on_hand, unit_cost
