"""Offline training: the daily aggregates in Redis -> a versioned ForecastingModel.

One job does the expensive parts once: the rolling-origin backtest that chooses each product's and
each category's model (in parallel across cores), the price elasticities, and the customer-value
model. Requests and the refresher then only fit the chosen model on the newest history.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime

import numpy as np

from services.common.jobs import Progress, TrainResult
from services.common.logging import get_logger
from services.common.models import ModelHolder, ModelRegistry, gate_params, new_version, quality_gate
from services.forecasting.core import behaviour, pricing, top_down
from services.forecasting.core.bundle import ForecastingModel, target_key, to_series
from services.forecasting.core.forecast import (
    Outcome,
    Series,
    backtest_many,
    default_model,
    forecast_many,
    is_intermittent,
    versus_baselines,
)
from services.forecasting.store import DailyHistory, ForecastStore

log = get_logger(__name__)
HORIZON = 28
# Six 28-day folds: on the daily benchmark series three folds chose a baseline or the wrong model on 6 of 9
# (benchmarks/README.md, "Daily series through the service").
FOLDS = 6
TRAIN_PARAMS = ("horizon", "folds", "max_products")


class NotEnoughData(RuntimeError):
    pass


def parse_params(params: Mapping[str, str]) -> dict[str, int]:
    unknown = sorted(set(params) - set(TRAIN_PARAMS))
    if unknown:
        raise ValueError(f"unknown params {unknown}; known: {', '.join(TRAIN_PARAMS)}")
    out = {"horizon": HORIZON, "folds": FOLDS, "max_products": 0}
    for name, value in params.items():
        try:
            out[name] = int(value)
        except ValueError:
            raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if not 1 <= out["horizon"] <= 365:
        raise ValueError("horizon must be 1..365")
    if not 1 <= out["folds"] <= 10:
        raise ValueError("folds must be 1..10")
    if out["max_products"] < 0:
        raise ValueError("max_products must be >= 0 (0 = every product)")
    return out


def elasticity_data(h: DailyHistory) -> dict[str, np.ndarray]:
    """Per-day observations for the price model: the price shown in views (the paid price where no
    view carried one), units, views as exposure, and calendar controls; days without views dropped."""
    price = np.where(np.isfinite(h.seen_price), h.seen_price, h.price)
    keep = (h.views > 0) & np.isfinite(price) & (price > 0)
    days = np.array([h.start.toordinal() + i for i in range(len(h.units))])[keep]
    dow = np.array([date.fromordinal(int(d)).weekday() for d in days], dtype=int)
    month = np.array([date.fromordinal(int(d)).month for d in days], dtype=int)
    return {"price": price[keep], "units": h.units[keep], "exposure": h.views[keep], "day_of_week": dow,
            "month": month}


# The quality gate's figure: the mean backtest MASE, over every series both models forecast, of each one's
# model for the series (its chosen one, or the default the service falls back to), on the same held-out
# folds: the last FOLDS windows of HORIZON days, whatever the job's own horizon and folds.
GATE_METRIC = "mean_mase"


def gate_figures(items: Mapping[str, Series], outcomes: Mapping[str, Outcome], chosen: Mapping[str, str],
                 serving_chosen: Mapping[str, str], options: Mapping[str, int],
                 holidays_country: str | None) -> tuple[float | None, float | None]:
    """(new, serving) :data:`GATE_METRIC` on the same folds; None, None without a series both scored.
    The selection backtest's scores are reused when the job ran on the gate's folds; the rest is backtested."""
    same_folds = options["horizon"] == HORIZON and options["folds"] == FOLDS
    new, old = [], []
    for key, series in items.items():
        outcome = outcomes.get(key)
        if outcome is None or outcome.error is not None:
            continue
        mine = chosen.get(key) or default_model(series)
        theirs = serving_chosen.get(key) or default_model(series)
        scores = dict(outcome.scores or {}) if same_folds else {}
        missing = [m for m in dict.fromkeys((mine, theirs)) if m not in scores]
        if missing:
            try:
                scores.update(backtest_many(series, missing, HORIZON, FOLDS, holidays_country))
            except ValueError:  # a model name this version no longer knows
                continue
        a, b = scores[mine], scores[theirs]
        if a.folds and b.folds and np.isfinite(a.mase) and np.isfinite(b.mase):
            new.append(a.mase)
            old.append(b.mase)
    if not new:
        return None, None
    return float(np.mean(new)), float(np.mean(old))


class ForecastTrainer:
    def __init__(self, store: ForecastStore, registry: ModelRegistry, holder: ModelHolder[ForecastingModel],
                 secret: bytes, n_jobs: int = 2, holidays_country: str | None = "CN",
                 on_new_version: Callable[[str, dict], None] | None = None) -> None:
        self.store = store
        self.registry = registry
        self.holder = holder
        self.secret = secret
        self.n_jobs = n_jobs
        self.holidays_country = holidays_country or None
        self.on_new_version = on_new_version

    def train(self, model: str, params: Mapping[str, str], progress: Progress) -> TrainResult:
        own, force = gate_params(params)
        options = parse_params(own)
        started = time.perf_counter()
        events_before = self.store.events_seen()
        end = self.store.last_day()
        products = self.store.products_with_sales()
        if end is None or not products:
            raise NotEnoughData("no sales yet: orders.v1 has not delivered any order.created")
        progress(0.02, f"reading the daily sales of {len(products)} products")
        histories = self.store.histories("p", products, end)
        if options["max_products"]:
            top = sorted(histories, key=lambda p: -histories[p].units.sum())[:options["max_products"]]
            histories = {p: histories[p] for p in top}
        categories = self.store.histories("c", sorted(self.store.categories()), end)
        details = {p: self.store.product(p) for p in histories}
        items = {target_key("p", p): to_series(h.start, h.units, h.price, _float(details[p].get("price")))
                 for p, h in histories.items()}
        items.update({target_key("c", c): to_series(h.start, h.units) for c, h in categories.items()})

        def selection_progress(done: int, total: int) -> None:
            progress(0.05 + 0.7 * done / max(total, 1), f"choosing models: {done}/{total} series backtested")

        outcomes = forecast_many(items, horizon=options["horizon"], select=True, n_jobs=self.n_jobs,
                                 progress=selection_progress, holidays_country=self.holidays_country,
                                 folds=options["folds"])
        chosen = {k: o.model for k, o in outcomes.items() if o.error is None}
        progress(0.76, "top-down: the sparse products against their categories' forecasts")
        for key, score in self._top_down(items, outcomes, chosen, details, options).items():
            chosen[key] = top_down.TOP_DOWN
            outcomes[key] = replace(outcomes[key], model=top_down.TOP_DOWN, backtest=score,
                                    scores={**(outcomes[key].scores or {}), top_down.TOP_DOWN: score})
        backtests = {k: o.backtest for k, o in outcomes.items() if o.error is None and o.backtest is not None}
        failed = {k: o.error for k, o in outcomes.items() if o.error is not None}

        serving, serving_version = self.holder.model, self.holder.version
        new_figure, serving_figure = None, None
        if serving is not None:
            progress(0.78, f"measuring the serving model {serving_version} on the same folds")
            new_figure, serving_figure = gate_figures(items, outcomes, chosen, serving.chosen, options,
                                                      self.holidays_country)
        gate = quality_gate(GATE_METRIC, new_figure, serving_figure, serving_version=serving_version,
                            higher_is_better=False, force=force)

        progress(0.8, "estimating price elasticities")
        elasticities, category_priors = self._elasticities(histories, details)
        progress(0.9, "fitting the customer-value model")
        purchases = [behaviour.Purchase(user, datetime.fromtimestamp(t, UTC), total, oid)
                     for oid, user, t, total, _ in self.store.orders()]
        try:
            value_model = behaviour.BehaviourModel.fit(purchases, end) if purchases else None
        except ValueError:  # e.g. no order on or before the last day
            value_model = None

        version = new_version("forecast")
        bundle = ForecastingModel(version=version, as_of=end, chosen=chosen, backtests=backtests,
                                  elasticities=elasticities, category_priors=category_priors,
                                  behaviour=value_model, trained_at=time.time())
        mases = [b.mase for b in backtests.values() if b.folds and np.isfinite(b.mase)]
        models_used: dict[str, int] = {}
        for name in chosen.values():
            models_used[name] = models_used.get(name, 0) + 1
        metrics = {"series": float(len(chosen)), "failed": float(len(failed)),
                   "top_down_products": float(models_used.get(top_down.TOP_DOWN, 0)),
                   "median_mase": float(np.median(mases)) if mases else float("nan"),
                   "elasticities": float(sum(1 for e in elasticities.values() if e.enough_variation)),
                   "category_elasticities": float(len(category_priors)), **versus_baselines(outcomes),
                   **gate.metrics()}
        meta = {"metrics": metrics, "models_used": models_used, "as_of": end.isoformat(),
                "events_seen": events_before, "failed": dict(list(failed.items())[:20]), "params": options,
                "train_seconds": round(time.perf_counter() - started, 2)}
        progress(0.95, f"saving {version}")
        self.holder.offer(bundle, version, meta, gate)
        if self.on_new_version is not None:
            self.on_new_version(version, meta)
        log.info("model_trained", version=version, seconds=meta["train_seconds"], series=len(chosen),
                 served=gate.serve)
        return TrainResult(model_version=version, metrics=metrics,
                           message=f"models chosen for {len(chosen)} series ({len(failed)} failed); {gate.reason}")

    def _top_down(self, items: Mapping[str, Series], outcomes: Mapping[str, Outcome], chosen: Mapping[str, str],
                  details: Mapping[str, dict], options: Mapping[str, int]) -> dict:
        """The products whose backtest top-down wins (core/top_down.py), with its score: each category's
        chosen model is backtested once on the selection's folds and lent to its sparse products."""
        category_of = {target_key("p", p): target_key("c", d["category"]) for p, d in details.items()
                       if d.get("category") and target_key("c", d["category"]) in chosen}
        products = {k: items[k] for k in category_of
                    if k in outcomes and outcomes[k].error is None and is_intermittent(items[k].y)}
        categories = {c: items[c] for c in {category_of[k] for k in products}}
        if not products:
            return {}
        folds = top_down.category_folds(categories, chosen, options["horizon"], options["folds"],
                                        self.holidays_country)
        return top_down.choose(products, {k: outcomes[k].backtest for k in products}, category_of, categories,
                               folds, options["horizon"], options["folds"])

    def _elasticities(self, histories: Mapping[str, DailyHistory], details: Mapping[str, dict]):
        """Each product's own elasticity estimate (Poisson, views as exposure), and each category's
        prior: its pooled estimate (one slope, a fixed effect per product) as the mean and the spread
        between its products. A product's answer is its own estimate shrunk toward that prior, or the
        prior alone when its price never changed (the recipe ``make bench-forecasting`` measures)."""
        own: dict = {}
        by_category: dict[str, list[tuple[str, dict[str, np.ndarray], object]]] = {}
        for pid, h in histories.items():
            data = elasticity_data(h)
            if len(data["price"]) < 5:
                continue
            estimate = pricing.estimate_elasticity(data["price"], data["units"], data["exposure"])
            own[target_key("p", pid)] = estimate
            category = details.get(pid, {}).get("category")
            if category:
                by_category.setdefault(category, []).append((pid, data, estimate))
        priors: dict[str, tuple[float, float]] = {}
        for category, members in by_category.items():
            product = np.concatenate([[pid] * len(data["price"]) for pid, data, _ in members])
            stacked = {k: np.concatenate([data[k] for _, data, _ in members]) for k in ("price", "units", "exposure")}
            try:
                pooled = pricing.pooled_elasticity(product, stacked["price"], stacked["units"], stacked["exposure"])
            except ValueError:
                pooled = None
            try:
                priors[category] = pricing.category_prior([e for _, _, e in members], pooled)
            except ValueError:  # no product of the category changed its price enough
                pass
        return own, priors


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
