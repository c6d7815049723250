"""Behaviour analytics on the real CDNOW purchase log (69,659 transactions of 23,570 customers who
first bought in 1997-Q1, log to 1998-06-30), the standard protocol of Fader, Hardie & Lee (2005):
calibration 1997-01-01..1997-09-30 (39 weeks), holdout 1997-10-01..1998-06-30 (39 weeks), weeks as
the time unit, purchases counted per customer-day.

* RFM segments as of the calibration end, with what each segment did in the holdout.
* BG/NBD + Gamma-Gamma fitted on the calibration period, against the published parameters.
* Holdout repeat purchases per customer: totals, MAE, AUC and Brier of P(purchase in the holdout);
  the same published parameters and two baselines (each customer repeats at their calibration rate;
  the RFM score r + f + m) in the same run. Spend per customer likewise.

``run_behaviour(quick)`` returns the tables (lists of row dicts); ``benchmarks.bench_forecasting`` writes
them. ``python -m benchmarks.bench_forecasting_behaviour [--quick]`` prints them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from services.forecasting.core import behaviour as bh

CAL_END = date(1997, 9, 30)
HOLDOUT_END = date(1998, 6, 30)
HOLDOUT_WEEKS = 39.0
QUICK_CUSTOMERS = 5000
PUBLISHED_BGNBD = bh.BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)  # FHL 2005, CDNOW 1/10 sample
PUBLISHED_GG = bh.GammaGammaParams(p=6.25, q=3.74, gamma=15.44)  # FHL 2005 "RFM and CLV", same sample
SOURCE = "Fader, Hardie & Lee (2005), CDNOW 2,357-customer sample, weeks"


def cdnow_path() -> Path:
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the lifetimes package (which ships CDNOW_master.txt) is not installed")
    return Path(os.path.dirname(spec.origin)) / "datasets" / "CDNOW_master.txt"


def load_cdnow(path: Path | None = None) -> bh.PurchaseLog:
    """The CDNOW master log: customer id, YYYYMMDD, CDs, dollars (one row per transaction)."""
    raw = np.loadtxt(path or cdnow_path(), skiprows=1, dtype=np.float64)
    ymd = raw[:, 1].astype(np.int64)
    months = ((ymd // 10000 - 1970) * 12 + ymd // 100 % 100 - 1).astype("datetime64[M]")
    days = months.astype("datetime64[D]") + (ymd % 100 - 1).astype("timedelta64[D]")
    return bh.PurchaseLog.from_arrays(raw[:, 0].astype(np.int64), days, raw[:, 3])


def sample_customers(log: bh.PurchaseLog, n: int, seed: int = 42) -> bh.PurchaseLog:
    """Every transaction of ``n`` customers drawn at random."""
    chosen = np.random.default_rng(seed).choice(log.user_ids.size, size=min(n, log.user_ids.size), replace=False)
    keep = np.isin(log.users, chosen)
    codes = np.full(log.user_ids.size, -1)
    codes[np.sort(chosen)] = np.arange(chosen.size)
    return bh.PurchaseLog(log.user_ids[np.sort(chosen)], codes[log.users[keep]], log.days[keep], log.amounts[keep])


def auc(score: np.ndarray, label: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties averaged)."""
    pos = label.astype(bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def holdout_actuals(log: bh.PurchaseLog, user_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per customer of ``user_ids``: distinct purchase days and spend in the holdout."""
    lo, hi = bh.utc_day(CAL_END) + 1, bh.utc_day(HOLDOUT_END)
    mask = (log.days >= lo) & (log.days <= hi)
    position = {u: i for i, u in enumerate(user_ids.tolist())}
    index = np.array([position.get(u, -1) for u in log.user_ids.tolist()])[log.users[mask]]
    ok = index >= 0
    pairs = np.unique(np.stack([index[ok], log.days[mask][ok]]), axis=1)
    count = np.bincount(pairs[0], minlength=user_ids.size).astype(np.float64)
    spend = np.bincount(index[ok], weights=log.amounts[mask][ok], minlength=user_ids.size)
    return count, spend


def _row(name: str, predicted: np.ndarray | None, actual: np.ndarray, score: np.ndarray,
         prob: np.ndarray | None, repeaters: np.ndarray) -> dict[str, Any]:
    bought = actual > 0
    row: dict[str, Any] = {"method": name, "actual_total": float(actual.sum())}
    if predicted is not None:
        row |= {"predicted_total": round(float(predicted.sum()), 1),
                "total_error_pct": round(100 * (predicted.sum() / actual.sum() - 1), 1),
                "mae_per_customer": round(float(np.mean(np.abs(predicted - actual))), 4),
                "rmse_per_customer": round(float(np.sqrt(np.mean((predicted - actual) ** 2))), 4)}
    else:
        row |= {"predicted_total": None, "total_error_pct": None, "mae_per_customer": None,
                "rmse_per_customer": None}
    row["auc_purchase"] = round(auc(score, bought), 4)
    row["auc_calibration_repeaters"] = round(auc(score[repeaters], bought[repeaters]), 4)
    row["auc_one_time_buyers"] = round(auc(score[~repeaters], bought[~repeaters]), 4)
    row["brier_purchase"] = round(float(np.mean((prob - bought) ** 2)), 4) if prob is not None else None
    return row


def run_behaviour(quick: bool) -> dict[str, Any]:
    """All behaviour tables; quick = a random sample of customers."""
    started = time.perf_counter()
    t0 = time.perf_counter()
    full = load_cdnow()
    load_s = time.perf_counter() - t0
    log = sample_customers(full, QUICK_CUSTOMERS) if quick else full
    timings: dict[str, float] = {"load_cdnow_s": round(load_s, 3)}

    # RFM segments at the calibration end, and what each segment did in the holdout.
    t0 = time.perf_counter()
    rows = bh.rfm(log, CAL_END)
    report = bh.segments(rows, sample_size=3, secret=b"benchmark")
    timings["rfm_and_segments_s"] = round(time.perf_counter() - t0, 3)

    # BG/NBD + Gamma-Gamma on the calibration period (weeks).
    summary = bh.repeat_summary(log, CAL_END, unit_days=7.0)
    t0 = time.perf_counter()
    model = bh.CustomerValueModel().fit(summary)
    timings["fit_bgnbd_gamma_gamma_s"] = round(time.perf_counter() - t0, 3)
    horizon = HOLDOUT_WEEKS * 7
    t0 = time.perf_counter()
    pred = model.predict(summary, horizon_days=horizon, window_days=horizon)
    timings["predict_s"] = round(time.perf_counter() - t0, 3)
    published = bh.CustomerValueModel(unit_days=7.0, bgnbd=PUBLISHED_BGNBD, gamma_gamma=PUBLISHED_GG)
    pub = published.predict(summary, horizon_days=horizon, window_days=horizon)
    actual, actual_spend = holdout_actuals(log, summary.user_ids)

    by_id = {row.user_id: row for row in rows}
    holdout, base_pred = _holdout_rows(summary, by_id, pred, pub, actual)
    spend = _spend_rows(log, summary, pred, pub, base_pred, actual, actual_spend)
    bought = actual > 0
    segment_rows = _segment_rows(report, summary, by_id, pred, bought)
    params = _parameter_rows(model, summary)
    spread = {name: {str(k): int(v) for k, v in zip(*np.unique([getattr(r, name) for r in rows], return_counts=True),
                                                     strict=True)}
              for name in ("r_score", "f_score", "m_score")}
    timings["total_s"] = round(time.perf_counter() - started, 3)
    return {
        "dataset": {"name": "CDNOW master", "transactions": len(log), "customers": int(log.user_ids.size),
                    "quick_sample": QUICK_CUSTOMERS if quick else None, "calibration_end": CAL_END.isoformat(),
                    "holdout_end": HOLDOUT_END.isoformat(), "time_unit": "week",
                    "holdout_repeat_buyers_share": round(float(bought.mean()), 4)},
        "segments": segment_rows,
        "segments_totals": {"customers": report.total_customers, "revenue": round(report.total_revenue, 2)},
        "score_counts": spread,
        "parameters": params,
        "holdout_purchases": holdout,
        "holdout_spend": spend,
        "timings": timings,
    }


def _holdout_rows(summary: bh.RepeatSummary, by_id: dict[str, bh.CustomerRfm], pred: bh.ValuePrediction,
                  pub: bh.ValuePrediction, actual: np.ndarray) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Holdout repeat purchases: our fit, the published parameters and two baselines (the calibration-period
    rate without dropout, and the RFM score); also the rate baseline's predictions."""
    rate = summary.frequency / summary.age  # repeat days per week since the first purchase
    base_pred = rate * HOLDOUT_WEEKS
    base_prob = -np.expm1(-base_pred)
    rfm_score = np.array([by_id[u].r_score + by_id[u].f_score + by_id[u].m_score for u in summary.user_ids.tolist()],
                         dtype=np.float64)
    rep = summary.frequency > 0
    holdout = [
        _row("BG/NBD (ours, fitted on calibration)", pred.expected_purchases, actual, pred.p_purchase,
             pred.p_purchase, rep),
        _row("BG/NBD with the published parameters", pub.expected_purchases, actual, pub.p_purchase,
             pub.p_purchase, rep),
        _row("baseline: calibration-period rate x 39 weeks", base_pred, actual, rate, base_prob, rep),
        _row("baseline: RFM score r+f+m (ranking only)", None, actual, rfm_score, None, rep),
    ]
    return holdout, base_pred


def _spend_rows(log: bh.PurchaseLog, summary: bh.RepeatSummary, pred: bh.ValuePrediction,
                pub: bh.ValuePrediction, base_pred: np.ndarray, actual: np.ndarray,
                actual_spend: np.ndarray) -> list[dict[str, Any]]:
    """Spend: expected purchases x expected AOV vs the holdout spend; AOV on customers seen in both."""
    cal_log = log.until(bh.utc_day(CAL_END))
    cal_days = summary.frequency + 1
    cal_spend = np.zeros(summary.user_ids.size)
    position = {u: i for i, u in enumerate(summary.user_ids.tolist())}
    index = np.array([position.get(u, -1) for u in cal_log.user_ids.tolist()])[cal_log.users]
    np.add.at(cal_spend, index[index >= 0], cal_log.amounts[index >= 0])
    cal_aov = cal_spend / cal_days
    both = (summary.frequency > 0) & (actual > 0)
    holdout_aov = np.divide(actual_spend, actual, out=np.zeros_like(actual), where=actual > 0)
    spend = []
    for name, value, aov in [
        ("BG/NBD x Gamma-Gamma (ours)", pred.customer_value, pred.expected_aov),
        ("published parameters", pub.customer_value, pub.expected_aov),
        ("baseline: calibration rate x calibration mean spend", base_pred * cal_aov, summary.monetary),
    ]:
        spend.append({
            "method": name, "predicted_total": round(float(value.sum()), 1),
            "actual_total": round(float(actual_spend.sum()), 1),
            "total_error_pct": round(100 * (value.sum() / actual_spend.sum() - 1), 1),
            "mae_per_customer": round(float(np.mean(np.abs(value - actual_spend))), 3),
            "aov_mae_repeaters": round(float(np.mean(np.abs(aov[both] - holdout_aov[both]))), 3),
            "aov_customers": int(both.sum()),
        })
    return spend


def _segment_rows(report: bh.SegmentReport, summary: bh.RepeatSummary, by_id: dict[str, bh.CustomerRfm],
                  pred: bh.ValuePrediction, bought: np.ndarray) -> list[dict[str, Any]]:
    """Each RFM segment at the calibration end, with its holdout purchase rate and our predicted one."""
    seg_of = np.array([by_id[u].segment for u in summary.user_ids.tolist()])
    segment_rows = []
    for s in report.segments:
        members = seg_of == s.name
        segment_rows.append({
            "segment": s.name, "customers": s.customers, "customer_share": round(s.customer_share, 4),
            "revenue_share": round(s.revenue_share, 4), "avg_recency_days": round(s.avg_recency_days, 1),
            "avg_frequency": round(s.avg_frequency, 2), "avg_monetary": round(s.avg_monetary, 2),
            "holdout_purchase_rate": round(float(bought[members].mean()), 4) if members.any() else None,
            "predicted_p_purchase": round(float(pred.p_purchase[members].mean()), 4) if members.any() else None,
            "description": s.description,
        })
    return segment_rows


def _parameter_rows(model: bh.CustomerValueModel, summary: bh.RepeatSummary) -> list[dict[str, Any]]:
    """Our fitted BG/NBD and Gamma-Gamma parameters next to the published ones."""
    bg, gg = model.bgnbd, model.gamma_gamma
    assert bg is not None and gg is not None
    return [
        {"model": "BG/NBD", "source": "ours (calibration period)", "r": round(bg.r, 4), "alpha": round(bg.alpha, 4),
         "a": round(bg.a, 4), "b": round(bg.b, 4), "customers": len(summary)},
        {"model": "BG/NBD", "source": SOURCE, "r": PUBLISHED_BGNBD.r, "alpha": PUBLISHED_BGNBD.alpha,
         "a": PUBLISHED_BGNBD.a, "b": PUBLISHED_BGNBD.b, "customers": 2357},
        {"model": "Gamma-Gamma", "source": "ours (calibration repeaters)", "p": round(gg.p, 4), "q": round(gg.q, 4),
         "gamma": round(gg.gamma, 4), "mean_aov": round(gg.mean, 2), "customers": int((summary.frequency > 0).sum())},
        {"model": "Gamma-Gamma", "source": SOURCE, "p": PUBLISHED_GG.p, "q": PUBLISHED_GG.q,
         "gamma": PUBLISHED_GG.gamma, "mean_aov": round(PUBLISHED_GG.mean, 2), "customers": 946},
    ]


def _print_table(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n## {title}")
    keys = list(dict.fromkeys(k for row in rows for k in row if k != "description"))
    print(" | ".join(keys))
    for row in rows:
        print(" | ".join("" if row.get(k) is None else str(row.get(k)) for k in keys))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    result = run_behaviour(parser.parse_args().quick)
    print(json.dumps(result["dataset"]))
    for key in ("segments", "parameters", "holdout_purchases", "holdout_spend"):
        _print_table(key, result[key])
    print(json.dumps(result["score_counts"]))
    print(json.dumps(result["timings"]))


if __name__ == "__main__":
    main()
