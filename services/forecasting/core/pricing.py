"""Price elasticity of demand and price recommendations.

**Demand model**: constant elasticity, ``demand(p) = base * (p / p0) ** e``, i.e.
``log E[units] = a + e log(price) + controls``.

**Estimation** (:func:`estimate_elasticity`). The textbook way is a log-log least-squares regression of
``log(units)`` on ``log(price)``. Shop demand per product and day is a small count, mostly 0, and
``log(0)`` is undefined: dropping the zero days keeps only the days that happened to sell (a biased,
selected sample) and adding a constant (``log(1 + units)``) bends the curve. So the default
``method="poisson"`` fits the same log-linear model in count form: a **Poisson GLM with log link** of
daily units on ``log(price)`` (statsmodels), with ``log(exposure)`` as offset when the exposure (e.g.
product views that day) is known, so the model is for demand *per view* and traffic swings (weekends,
promotion days, seasons) drop out. Poisson pseudo-maximum likelihood is consistent for a constant-
elasticity mean even when the counts are over-dispersed (quantities of 2-3, heterogeneous shoppers);
the standard error is scaled by the Pearson dispersion (quasi-Poisson, never below 1). Aggregating
days by price level would give the same estimate without controls (the counts and exposures per level
are sufficient statistics), so days are kept as rows and the controls can be used. Seasonality
controls: day-of-week and month dummies and a promotion-day flag, each when given. With an exposure
offset they mainly cost precision when conversion per view has no seasonality; without exposure they
are needed. ``method="ols"`` is the classic log-log regression on the days with sales (a baseline).

Leave out (``in_stock=False``) the days a product was out of stock: their sales are censored.

**Variation** (``enough_variation``): at least 2 price levels (prices within 0.5 % are one level) with
``min_level_observations`` days each, and a log-price standard deviation of at least
``min_log_price_std``. Without it the elasticity is not identified or very noisy.

**Pooling.** A shop product rarely sells enough for its own estimate (the default demo shop: ~8 units
per product in two years; one product needs a few thousand units for +-10 %). :func:`pooled_elasticity`
estimates one elasticity per category (Poisson with product fixed effects, cluster-robust error);
:func:`category_prior` / :func:`shrink_elasticities` / :func:`pool_elasticity` shrink each product's
estimate toward it by precision (empirical Bayes), and use the category value alone when the product
has too few price changes. Measured on the demo shop (benchmarks/bench_forecasting_pricing.py): with
~4,800 units per product the per-product estimate has a median error of 8 % and shrinkage 7.6 % (80 %
of products within 10 %); with the default shop's sparse data, per-product estimates are useless
(median error 167 %) and the shrunk ones are as good as the category value (median 32 %).

**Recommendation** (:func:`recommend_price`): closed form on the constant-elasticity curve within
``[current (1 - max_change), current (1 + max_change)]``, the lower bound raised to
``unit_cost / (1 - min_margin)``. Revenue ``p d(p)`` grows with price when ``e > -1`` and falls when
``e < -1`` (an optimum at a bound unless ``e == -1``, where revenue is flat and the price is kept).
Profit ``(p - c) d(p)`` peaks at ``p* = c e / (1 + e)`` for ``e < -1`` (clipped to the bounds) and grows
with price otherwise. Prices are rounded to cents.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

Z95 = 1.959963984540054  # two-sided 95 % normal quantile
LEVEL_TOLERANCE = 0.005  # prices within 0.5 % of a level's lowest price belong to that level


@dataclass(frozen=True)
class Elasticity:
    """An estimated constant price elasticity of demand."""

    elasticity: float  # log-log slope (NaN when not estimable); -1.5: +1 % price -> -1.5 % demand
    ci_low: float  # 95 % confidence interval (Wald; NaN when not estimable)
    ci_high: float
    std_error: float
    r_squared: float  # OLS R², or the deviance pseudo-R² of the Poisson fit (vs. intercept + offset)
    observations: int  # rows (days) used in the fit
    units: float  # total units in those rows
    price_levels: int  # distinct price levels (within 0.5 %); pooled: products with price variation
    log_price_std: float  # standard deviation of log(price) over the rows
    enough_variation: bool
    method: str  # "poisson", "ols", "pooled" (category fit), "shrunk" or "category" (fallback)
    note: str = ""


@dataclass(frozen=True)
class PriceAdvice:
    """A price recommendation on the constant-elasticity demand curve."""

    objective: str  # "revenue" or "profit"
    current_price: float
    recommended_price: float  # within [lower_bound, upper_bound], in cents
    lower_bound: float
    upper_bound: float
    feasible: bool  # False when the minimum margin needs more than the largest allowed rise
    margin_floor: float  # unit_cost / (1 - min_margin); 0 when the cost is unknown (0)
    elasticity: float
    unit_cost: float
    base_demand: float  # units per day at the current price
    expected_demand_current: float  # units per day
    expected_demand_recommended: float
    expected_revenue_current: float  # per day
    expected_revenue_recommended: float
    expected_profit_current: float  # per day, (price - unit cost) * demand
    expected_profit_recommended: float
    note: str


# ------------------------------------------------------------------------------------------ validation


def _vector(name: str, values, n: int | None = None) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if n is not None and arr.size != n:
        raise ValueError(f"{name} must have the same length as price ({n}), got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return v


def price_levels(price: np.ndarray, tolerance: float = LEVEL_TOLERANCE) -> np.ndarray:
    """Level index of each price: sorted prices start a new level when more than ``tolerance``
    (relative) above the first price of the current level."""
    order = np.argsort(price, kind="stable")
    levels = np.empty(price.size, dtype=np.int64)
    level, start = -1, -math.inf
    for i in order:
        if price[i] > start * (1.0 + tolerance):
            level += 1
            start = price[i]
        levels[i] = level
    return levels


# ------------------------------------------------------------------------------------------ estimation


def _design(
    log_price: np.ndarray, controls: list[tuple[str, np.ndarray]]
) -> tuple[np.ndarray, list[str], list[str]]:
    """Columns: constant, centred log price, then each control column kept only if it adds rank
    (dummies absent from the data or collinear with earlier columns are dropped)."""
    cols = [np.ones_like(log_price), log_price - log_price.mean()]
    names = ["const", "log_price"]
    dropped: list[str] = []
    current = np.column_stack(cols)
    rank = np.linalg.matrix_rank(current)
    for name, col in controls:
        trial = np.column_stack([current, col])
        r = np.linalg.matrix_rank(trial)
        if r > rank:
            current, rank = trial, r
            names.append(name)
        else:
            dropped.append(name)
    return current, names, dropped


def _controls(
    day_of_week: np.ndarray | None, month: np.ndarray | None, promo: np.ndarray | None
) -> list[tuple[str, np.ndarray]]:
    out: list[tuple[str, np.ndarray]] = []
    if promo is not None:
        out.append(("promo", promo.astype(np.float64)))
    if day_of_week is not None:
        present = np.unique(day_of_week)
        for d in present[1:]:  # first present day is the reference
            out.append((f"dow_{int(d)}", (day_of_week == d).astype(np.float64)))
    if month is not None:
        present = np.unique(month)
        for m in present[1:]:
            out.append((f"month_{int(m)}", (month == m).astype(np.float64)))
    return out


def _not_estimable(obs: int, units: float, levels: int, sd: float, method: str, note: str) -> Elasticity:
    nan = float("nan")
    return Elasticity(nan, nan, nan, nan, nan, obs, units, levels, sd, False, method, note)


def _observations(
    price: np.ndarray, units: np.ndarray, exposure: np.ndarray | None, in_stock: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The checked per-row price, units, exposure and in-stock vectors every estimator takes."""
    p = _vector("price", price)
    n = p.size
    if n == 0:
        raise ValueError("price is empty: at least one observation is needed")
    if np.any(p <= 0):
        raise ValueError("price must be > 0 on every row")
    y = _vector("units", units, n)
    if np.any(y < 0):
        raise ValueError("units must be >= 0")
    ex = None if exposure is None else _vector("exposure", exposure, n)
    if ex is not None and np.any(ex < 0):
        raise ValueError("exposure must be >= 0")
    stocked = None if in_stock is None else _vector("in_stock", in_stock, n)
    if stocked is not None and not np.all((stocked == 0) | (stocked == 1)):
        raise ValueError("in_stock must hold booleans (0/1)")
    return p, y, ex, stocked


def estimate_elasticity(
    price: np.ndarray,
    units: np.ndarray,
    exposure: np.ndarray | None = None,
    day_of_week: np.ndarray | None = None,
    month: np.ndarray | None = None,
    promo: np.ndarray | None = None,
    *,
    in_stock: np.ndarray | None = None,
    method: str = "poisson",
    min_level_observations: int = 7,
    min_log_price_std: float = 0.02,
) -> Elasticity:
    """Own-price elasticity from daily (or any period) observations of one product.

    ``price`` > 0 paid that day, ``units`` >= 0 sold, optional ``exposure`` >= 0 (e.g. views: rows
    with zero exposure carry no information and are dropped), ``day_of_week`` 0-6, ``month`` 1-12,
    ``promo`` 0/1 (a shop-wide promotion day: a traffic control; with an exposure offset it is rarely
    needed and it absorbs part of the price variation when the product's own discounts coincide with
    it). ``in_stock``: optional booleans, False for days on which the product was out of stock at some
    moment; those days are dropped (their sales are censored, and keeping them biases the estimate
    toward 0 when discounted days sell out). ``method``: "poisson" (default, see the module
    docstring) or "ols" (log-log least squares on the days with sales).
    Returns NaN estimates with ``enough_variation=False`` and a note when the price never changed or
    nothing sold; ValueError for malformed input.
    """
    if method not in ("poisson", "ols"):
        raise ValueError(f"method must be 'poisson' or 'ols', got {method!r}")
    p, y, ex, stocked = _observations(price, units, exposure, in_stock)
    dow, mon, pr = _checked_controls(day_of_week, month, promo, p.size)
    notes: list[str] = []
    keep = _rows_kept(y, ex, stocked, method, notes)
    p, y = p[keep], y[keep]
    ex, dow, mon, pr = (None if a is None else a[keep] for a in (ex, dow, mon, pr))
    obs = int(p.size)
    total = float(y.sum())
    lp = np.log(p) if obs else np.zeros(0)
    sd = float(lp.std()) if obs else 0.0
    n_levels, enough = _price_variation(p, sd, min_level_observations, min_log_price_std, notes)
    if obs < 3 or n_levels < 2 or sd == 0.0:
        return _not_estimable(obs, total, n_levels, sd, method, "; ".join(notes or ["no price variation"]))
    if total == 0:
        notes.append("no sales in the data")
        return _not_estimable(obs, total, n_levels, sd, method, "; ".join(notes))

    X, _names, dropped = _design(lp, _controls(dow, mon, pr))
    if dropped:
        notes.append(f"{len(dropped)} control column(s) dropped (absent or collinear)")
    if X.shape[0] <= X.shape[1]:
        notes.append("fewer observations than parameters")
        return _not_estimable(obs, total, n_levels, sd, method, "; ".join(notes))
    fit = _fit(method, y, X, ex, notes)
    if fit is None:
        return _not_estimable(obs, total, n_levels, sd, method, "; ".join(notes))
    b, se, r2 = fit
    if not (math.isfinite(b) and math.isfinite(se)):
        notes.append("the fit gave no finite estimate")
        return _not_estimable(obs, total, n_levels, sd, method, "; ".join(notes))
    if b > 0:
        notes.append("positive elasticity: demand rises with price in this data (confounded or noisy)")
    return Elasticity(
        elasticity=b,
        ci_low=b - Z95 * se,
        ci_high=b + Z95 * se,
        std_error=se,
        r_squared=r2,
        observations=obs,
        units=total,
        price_levels=n_levels,
        log_price_std=sd,
        enough_variation=enough,
        method=method,
        note="; ".join(notes),
    )


def _checked_controls(
    day_of_week: np.ndarray | None, month: np.ndarray | None, promo: np.ndarray | None, n: int
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """The optional control columns as checked float vectors of length ``n``."""
    dow = None if day_of_week is None else _vector("day_of_week", day_of_week, n)
    if dow is not None and (np.any(dow < 0) or np.any(dow > 6) or np.any(dow != np.round(dow))):
        raise ValueError("day_of_week must hold integers 0 (Monday) to 6")
    mon = None if month is None else _vector("month", month, n)
    if mon is not None and (np.any(mon < 1) or np.any(mon > 12) or np.any(mon != np.round(mon))):
        raise ValueError("month must hold integers 1 to 12")
    pr = None if promo is None else _vector("promo", promo, n)
    if pr is not None and not np.all((pr == 0) | (pr == 1)):
        raise ValueError("promo must hold 0 or 1")
    return dow, mon, pr


def _rows_kept(
    y: np.ndarray, ex: np.ndarray | None, stocked: np.ndarray | None, method: str, notes: list[str]
) -> np.ndarray:
    """The rows a fit uses: in stock, with exposure (when known) and, for OLS, with sales."""
    keep = np.ones(y.size, dtype=bool) if stocked is None else stocked.astype(bool)
    if ex is not None:
        keep &= ex > 0
        lost = int(((ex == 0) & (y > 0)).sum())
        if lost:
            notes.append(f"{lost} rows with sales but zero exposure dropped")
    if method == "ols":
        keep &= y > 0
    return keep


def _price_variation(
    p: np.ndarray, sd: float, min_level_observations: int, min_log_price_std: float, notes: list[str]
) -> tuple[int, bool]:
    """(number of price levels, whether the price varied enough to identify the elasticity)."""
    obs = p.size
    levels = price_levels(p) if obs else np.zeros(0, dtype=np.int64)
    n_levels = int(levels.max() + 1) if obs else 0
    per_level = np.bincount(levels) if obs else np.zeros(0, dtype=np.int64)
    enough = bool((per_level >= min_level_observations).sum() >= 2 and sd >= min_log_price_std)
    if not enough:
        notes.append(
            f"too few price changes: {int((per_level >= min_level_observations).sum())} price level(s) with "
            f">= {min_level_observations} observations, log-price std {sd:.3f}"
        )
    return n_levels, enough


def _fit(
    method: str, y: np.ndarray, X: np.ndarray, ex: np.ndarray | None, notes: list[str]
) -> tuple[float, float, float] | None:
    """(slope, its standard error, R²) of log price, or None when the Poisson fit failed (a note says why)."""
    import statsmodels.api as sm  # heavy import, only when fitting
    from statsmodels.tools.sm_exceptions import PerfectSeparationError

    offset = None if ex is None else np.log(ex)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method != "poisson":
            target = np.log(y) - (0.0 if offset is None else offset)
            res = sm.OLS(target, X).fit()
            return float(res.params[1]), float(res.bse[1]), float(res.rsquared)
        try:
            res = sm.GLM(y, X, family=sm.families.Poisson(), offset=offset).fit(maxiter=100)
        except (
            PerfectSeparationError,
            ValueError,
            np.linalg.LinAlgError,
            FloatingPointError,
            OverflowError,
        ) as exc:  # report rather than crash
            notes.append(f"Poisson fit failed: {type(exc).__name__}")
            return None
        mu = res.fittedvalues
        df = max(1, y.size - X.shape[1])
        dispersion = max(1.0, float(np.sum((y - mu) ** 2 / np.maximum(mu, 1e-12))) / df)
        if not res.converged:
            notes.append("Poisson fit did not converge")
        return float(res.params[1]), float(res.bse[1]) * math.sqrt(dispersion), _poisson_pseudo_r2(y, mu, ex)


def _poisson_deviance(y: np.ndarray, mu: np.ndarray) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(y > 0, y * np.log(y / mu), 0.0)
    return float(2.0 * np.sum(term - (y - mu)))


def _poisson_pseudo_r2(y: np.ndarray, mu: np.ndarray, exposure: np.ndarray | None) -> float:
    """1 - deviance / null deviance, the null model being a constant rate per unit of exposure."""
    ex = np.ones_like(y) if exposure is None else exposure
    mu0 = ex * (y.sum() / ex.sum())
    d0 = _poisson_deviance(y, mu0)
    if d0 <= 0:
        return 0.0
    return float(min(1.0, max(0.0, 1.0 - _poisson_deviance(y, mu) / d0)))


# ------------------------------------------------------------------------------------------ pooling


def pool_elasticity(
    estimate: Elasticity, category_elasticity: float, category_spread: float = 0.6
) -> Elasticity:
    """Combine a product's estimate with its category's elasticity (normal prior, mean
    ``category_elasticity``, standard deviation ``category_spread`` = how much products of a category
    differ). Without enough price variation (or no finite estimate) the category elasticity is used
    (note "too few price changes: category elasticity used"); otherwise the precision-weighted mean
    ``(e/se² + c/s²) / (1/se² + 1/s²)``, which moves noisy estimates most."""
    c = float(category_elasticity)
    if not math.isfinite(c):
        raise ValueError("category_elasticity must be finite")
    s = _positive("category_spread", category_spread)
    usable = estimate.enough_variation and math.isfinite(estimate.elasticity)
    if not usable or not math.isfinite(estimate.std_error) or estimate.std_error <= 0:
        return replace(
            estimate,
            elasticity=c,
            ci_low=c - Z95 * s,
            ci_high=c + Z95 * s,
            std_error=s,
            method="category",
            note="too few price changes: category elasticity used",
        )
    w_e, w_c = 1.0 / estimate.std_error**2, 1.0 / s**2
    post = (w_e * estimate.elasticity + w_c * c) / (w_e + w_c)
    post_se = 1.0 / math.sqrt(w_e + w_c)
    share = w_c / (w_e + w_c)
    note = f"shrunk {share:.0%} toward the category elasticity {c:.2f}"
    return replace(
        estimate,
        elasticity=post,
        ci_low=post - Z95 * post_se,
        ci_high=post + Z95 * post_se,
        std_error=post_se,
        method="shrunk",
        note=f"{estimate.note}; {note}" if estimate.note else note,
    )


def pooled_elasticity(
    product: Sequence | np.ndarray,
    price: np.ndarray,
    units: np.ndarray,
    exposure: np.ndarray | None = None,
    *,
    in_stock: np.ndarray | None = None,
    min_log_price_std: float = 0.02,
) -> Elasticity:
    """One elasticity for a group of products (a category): a Poisson model with one intercept per
    product (fixed effects, so a product's popularity cannot stand in for its price) and a common
    log-price slope, ``log(exposure)`` offset when given. The product intercepts are profiled out
    (conditional likelihood: each product's units spread over its rows in proportion to
    ``exposure * price^e``) and the slope found by Newton's method. Standard error: cluster-robust by
    product (sandwich), which also covers products whose elasticities differ. Rows: one per product and
    day, as for :func:`estimate_elasticity`; ``method="pooled"``."""
    p, y, ex, stocked = _observations(price, units, exposure, in_stock)
    n = p.size
    ids = np.asarray(product)
    if ids.ndim != 1 or ids.size != n:
        raise ValueError(f"product must have the same length as price ({n}), got {ids.size}")
    if ex is None:
        ex = np.ones(n)
    keep = ex > 0
    if stocked is not None:
        keep &= stocked.astype(bool)
    _, code = np.unique(ids[keep], return_inverse=True)
    x, y, ex = np.log(p[keep]), y[keep], ex[keep]
    k = int(code.max() + 1) if code.size else 0
    cnt = np.bincount(code, minlength=k)
    # centre log price within each product (the fixed effects absorb the level)
    x = x - (np.bincount(code, weights=x, minlength=k) / np.maximum(cnt, 1))[code]
    sd_i = np.sqrt(np.bincount(code, weights=x * x, minlength=k) / np.maximum(cnt, 1))
    Y = np.bincount(code, weights=y, minlength=k)
    informative = (Y > 0) & (sd_i > 0)
    n_var = int((sd_i >= min_log_price_std).sum())
    sd = float(x.std()) if x.size else 0.0
    note = f"pooled over {k} products ({n_var} with price variation, {int(informative.sum())} informative)"
    if not informative.any():
        return _not_estimable(int(x.size), float(y.sum()), n_var, sd, "pooled", note)
    b = _profile_slope(x, y, ex, code, k)
    m1, m2, share = _moments(b, x, ex, code, k)
    info = float((Y * (m2 - m1 * m1)).sum())
    score = np.bincount(code, weights=y * x, minlength=k) - Y * m1  # per product
    se = math.sqrt(float((score**2).sum())) / info if info > 0 else float("nan")
    r2 = _pooled_r2(y, ex, Y, share, code, k)
    if not (math.isfinite(b) and math.isfinite(se)):
        return _not_estimable(int(x.size), float(y.sum()), n_var, sd, "pooled", note + "; no finite estimate")
    return Elasticity(
        elasticity=b,
        ci_low=b - Z95 * se,
        ci_high=b + Z95 * se,
        std_error=se,
        r_squared=r2,
        observations=int(x.size),
        units=float(y.sum()),
        price_levels=n_var,  # here: products with price variation
        log_price_std=sd,
        enough_variation=n_var >= 1 and sd >= min_log_price_std,
        method="pooled",
        note=note,
    )


def _moments(
    b: float, x: np.ndarray, ex: np.ndarray, code: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per product: mean and mean square of x under the weights exposure * e^(b x), and each
    row's share of its product's weight."""
    z = b * x
    w = ex * np.exp(z - _group_max(z, code, k)[code])  # shifted per product: no overflow
    tot = np.bincount(code, weights=w, minlength=k)
    tot = np.where(tot > 0, tot, 1.0)
    m1 = np.bincount(code, weights=w * x, minlength=k) / tot
    m2 = np.bincount(code, weights=w * x * x, minlength=k) / tot
    return m1, m2, w / tot[code]


def _profile_slope(x: np.ndarray, y: np.ndarray, ex: np.ndarray, code: np.ndarray, k: int) -> float:
    """The common log-price slope maximising the profile likelihood (the product intercepts profiled
    out). It is concave in b: Newton's method with a bounded step converges."""
    sxy = np.bincount(code, weights=y * x, minlength=k)
    Y = np.bincount(code, weights=y, minlength=k)
    b = 0.0
    for _ in range(100):
        m1, m2, _ = _moments(b, x, ex, code, k)
        grad = float((sxy - Y * m1).sum())
        curvature = float((Y * (m2 - m1 * m1)).sum())
        if curvature <= 0:
            break
        step = max(-2.0, min(2.0, grad / curvature))
        b += step
        if abs(step) < 1e-10:
            break
    return b


def _pooled_r2(y: np.ndarray, ex: np.ndarray, Y: np.ndarray, share: np.ndarray, code: np.ndarray, k: int) -> float:
    """Deviance pseudo-R² of the pooled fit against b = 0 (each product's units in proportion to exposure)."""
    mu = Y[code] * share
    ex_tot = np.bincount(code, weights=ex, minlength=k)
    mu0 = Y[code] * ex / np.where(ex_tot > 0, ex_tot, 1.0)[code]
    d0 = _poisson_deviance(y, mu0)
    return 0.0 if d0 <= 0 else float(min(1.0, max(0.0, 1.0 - _poisson_deviance(y, mu) / d0)))


def _group_max(z: np.ndarray, code: np.ndarray, k: int) -> np.ndarray:
    out = np.full(k, -np.inf)
    np.maximum.at(out, code, z)
    return np.where(np.isfinite(out), out, 0.0)


def _reliable(estimates: Sequence[Elasticity], max_std_error: float) -> list[Elasticity]:
    return [
        e
        for e in estimates
        if e.enough_variation
        and math.isfinite(e.elasticity)
        and math.isfinite(e.std_error)
        and 0 < e.std_error <= max_std_error
    ]


def category_prior(
    estimates: Sequence[Elasticity],
    pooled: Elasticity | None = None,
    *,
    default_spread: float = 0.5,
    min_spread: float = 0.25,
    max_std_error: float = 0.5,
    min_products: int = 5,
) -> tuple[float, float]:
    """Category elasticity and between-product spread for shrinkage.

    Mean: ``pooled`` (from :func:`pooled_elasticity`, the robust choice) when given and finite, else
    the random-effects mean of the products' reliable estimates. Spread: DerSimonian-Laird from the
    products whose standard error is at most ``max_std_error`` when there are ``min_products`` of
    them, else ``default_spread`` (an assumption: with sparse data the noise hides how much products
    differ, and Wald errors of tiny Poisson counts are too unreliable to weigh by); never below
    ``min_spread``, so well-measured products stay close to their own estimate. ValueError when there
    is neither a pooled estimate nor a usable product estimate."""
    floor = _positive("min_spread", min_spread)
    default = _positive("default_spread", default_spread)
    good = _reliable(estimates, _positive("max_std_error", max_std_error))
    spread = default
    tau_mean = None
    if len(good) >= max(2, min_products):
        b = np.array([e.elasticity for e in good])
        w = 1.0 / np.array([e.std_error for e in good]) ** 2
        fixed = float((w * b).sum() / w.sum())
        q = float((w * (b - fixed) ** 2).sum())
        denom = float(w.sum() - (w**2).sum() / w.sum())
        tau2 = max(0.0, (q - (len(good) - 1)) / denom) if denom > 0 else 0.0
        wr = 1.0 / (1.0 / w + tau2)
        tau_mean = float((wr * b).sum() / wr.sum())
        spread = math.sqrt(tau2)
    if pooled is not None and math.isfinite(pooled.elasticity):
        mean = float(pooled.elasticity)
    elif tau_mean is not None:
        mean = tau_mean
    else:
        usable = _reliable(estimates, math.inf)
        if not usable:
            raise ValueError(
                "no usable estimate: give a pooled category estimate or products with price variation"
            )
        mean = float(np.median([e.elasticity for e in usable]))
    return mean, max(floor, spread)


def shrink_elasticities(
    estimates: Sequence[Elasticity], pooled: Elasticity | None = None, **prior_options: float
) -> list[Elasticity]:
    """Empirical Bayes for the products of one category: :func:`category_prior` (options passed on),
    then :func:`pool_elasticity` for each product."""
    mean, spread = category_prior(estimates, pooled, **prior_options)
    return [pool_elasticity(e, mean, spread) for e in estimates]


# A product never seen at two prices: only its category can speak for it.
NO_ESTIMATE = Elasticity(elasticity=math.nan, ci_low=math.nan, ci_high=math.nan, std_error=math.nan,
                         r_squared=math.nan, observations=0, units=0.0, price_levels=0, log_price_std=0.0,
                         enough_variation=False, method="none")


def choose_elasticity(own: Elasticity | None, prior: tuple[float, float] | None) -> Elasticity | None:
    """The elasticity a price recommendation uses: the product's own estimate (``NO_ESTIMATE`` when it
    has none) shrunk toward its category's ``prior`` (mean, spread) when the category has one, else the
    product's own estimate when it is usable, else None (nothing to go by)."""
    if prior is not None:
        return pool_elasticity(own or NO_ESTIMATE, *prior)
    if own is not None and own.enough_variation and math.isfinite(own.elasticity):
        return own
    return None


# ------------------------------------------------------------------------------------------ pricing


def _cents_up(x: float) -> float:
    return math.ceil(round(x * 100.0, 6)) / 100.0


def _cents_down(x: float) -> float:
    return math.floor(round(x * 100.0, 6)) / 100.0


def recommend_price(
    current_price: float,
    unit_cost: float,
    elasticity: float,
    base_demand: float,
    objective: str = "revenue",
    min_margin: float = 0.0,
    max_change: float = 0.2,
) -> PriceAdvice:
    """Best price within the allowed band for ``objective`` ("revenue" or "profit") on the curve
    ``demand(p) = base_demand * (p / current_price) ** elasticity`` (see the module docstring).

    ``unit_cost`` >= 0 (0 = unknown: no cost floor, profit = revenue), ``min_margin`` in [0, 1) keeps
    ``(p - cost) / p >= min_margin``, ``max_change`` in (0, 1] the largest relative move. When the margin
    floor lies above the upper bound the problem is infeasible: the upper bound is recommended (the
    closest allowed price to the floor), ``feasible`` is False and the note says so."""
    p0, c, e, d0, obj, m, mc = _advice_inputs(
        current_price, unit_cost, elasticity, base_demand, objective, min_margin, max_change
    )
    notes: list[str] = []
    floor = c / (1.0 - m) if c > 0 else 0.0
    upper = _cents_down(p0 * (1.0 + mc))
    lower = _cents_up(max(p0 * (1.0 - mc), floor, 0.01))
    feasible = lower <= upper
    if not feasible:
        notes.append(
            f"infeasible: the minimum margin needs a price of at least {_cents_up(floor):.2f}, above the "
            f"largest allowed price {upper:.2f}; recommending the upper bound"
        )
        lower = upper
        best = upper
    else:
        if lower > p0:
            notes.append(f"current price is below the margin floor {_cents_up(floor):.2f}")
        best = _optimum(obj, p0, c, e, lower, upper, notes)
    best = min(upper, max(lower, round(best, 2)))

    def demand(p: float) -> float:
        return d0 * (p / p0) ** e

    dc, dr = demand(p0), demand(best)
    cost_txt = c if c > 0 else 0.0
    if e > 0:
        notes.append("positive elasticity (demand rising with price) is implausible; check the estimate")
    return PriceAdvice(
        objective=obj,
        current_price=round(p0, 2),
        recommended_price=best,
        lower_bound=lower,
        upper_bound=upper,
        feasible=feasible,
        margin_floor=_cents_up(floor),
        elasticity=e,
        unit_cost=c,
        base_demand=d0,
        expected_demand_current=dc,
        expected_demand_recommended=dr,
        expected_revenue_current=p0 * dc,
        expected_revenue_recommended=best * dr,
        expected_profit_current=(p0 - cost_txt) * dc,
        expected_profit_recommended=(best - cost_txt) * dr,
        note="; ".join(notes),
    )


def _advice_inputs(
    current_price: float,
    unit_cost: float,
    elasticity: float,
    base_demand: float,
    objective: str,
    min_margin: float,
    max_change: float,
) -> tuple[float, float, float, float, str, float, float]:
    """:func:`recommend_price`'s arguments checked and converted; ValueError naming the bad one."""
    p0 = _positive("current_price", current_price)
    c = _positive("unit_cost", unit_cost, allow_zero=True)
    try:
        e = float(elasticity)
    except (TypeError, ValueError):
        raise ValueError(f"elasticity must be a number, got {elasticity!r}") from None
    if not math.isfinite(e):
        raise ValueError(f"elasticity must be finite, got {elasticity!r}")
    d0 = _positive("base_demand", base_demand, allow_zero=True)
    obj = str(objective).lower()
    if obj not in ("revenue", "profit"):
        raise ValueError(f"objective must be 'revenue' or 'profit', got {objective!r}")
    try:
        m = float(min_margin)
        mc = float(max_change)
    except (TypeError, ValueError):
        raise ValueError("min_margin and max_change must be numbers") from None
    if not (math.isfinite(m) and 0.0 <= m < 1.0):
        raise ValueError(f"min_margin must be in [0, 1), got {min_margin!r}")
    if not (math.isfinite(mc) and 0.0 < mc <= 1.0):
        raise ValueError(f"max_change must be in (0, 1], got {max_change!r}")
    return p0, c, e, d0, obj, m, mc


def _optimum(obj: str, p0: float, c: float, e: float, lower: float, upper: float, notes: list[str]) -> float:
    """Unrounded best price within [lower, upper] (appends the reasoning to ``notes``)."""
    if obj == "profit" and c > 0:
        if e < -1.0:
            star = c * e / (1.0 + e)
            if lower <= star <= upper:
                notes.append(f"profit-maximising price c*e/(1+e) = {star:.2f} is within the bounds")
            else:
                side = "upper" if star > upper else "lower"
                notes.append(f"profit-maximising price c*e/(1+e) = {star:.2f} is clipped to the {side} bound")
            return min(upper, max(lower, star))
        notes.append("demand is inelastic (e >= -1): profit grows with price up to the upper bound")
        return upper
    if obj == "profit":
        notes.append("unit cost unknown (0): profit equals revenue")
    if abs(1.0 + e) < 1e-9:
        notes.append("unit elasticity: revenue is flat in price; price kept")
        return min(upper, max(lower, p0))
    if e > -1.0:
        notes.append("inelastic demand (e > -1): revenue grows with price, so the upper bound")
        return upper
    notes.append("elastic demand (e < -1): revenue grows as price falls, so the lower bound")
    return lower
