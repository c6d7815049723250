"""Customer value: BG/NBD repeat purchases x Gamma-Gamma spend per purchase (Fader, Hardie & Lee 2005)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
from scipy.optimize import minimize
from scipy.special import digamma, expit, gammaln, hyp2f1

from services.forecasting.core.behaviour.records import Purchase, PurchaseLog, _as_log, _per_user, utc_day


@dataclass(frozen=True, slots=True)
class RepeatSummary:
    """Per-customer inputs of the BG/NBD and Gamma-Gamma models, in units of ``unit_days`` days.

    frequency: repeat purchase days (distinct purchase days - 1); recency: first to last purchase day;
    age: first purchase day to as_of; monetary: mean spend per repeat purchase day (0 without repeats)."""

    user_ids: np.ndarray
    frequency: np.ndarray
    recency: np.ndarray
    age: np.ndarray
    monetary: np.ndarray
    unit_days: float = 1.0

    def __len__(self) -> int:
        return int(self.frequency.size)


def repeat_summary(purchases: PurchaseLog | Iterable[Purchase | Sequence], as_of: date,
                   unit_days: float = 1.0, since: date | None = None) -> RepeatSummary:
    """The BG/NBD summary of customers with a purchase on or before ``as_of``; ``since`` keeps only
    customers whose first purchase is on or after it (e.g. the CDNOW cohort of Q1 1997)."""
    log = _as_log(purchases)
    end = utc_day(as_of)
    agg = _per_user(log.until(end))
    keep = np.ones(agg.codes.size, bool) if since is None else agg.first_day >= utc_day(since)
    x = (agg.purchase_days - 1)[keep]
    monetary = np.divide(agg.repeat_spend[keep], x, out=np.zeros(x.size), where=x > 0)
    return RepeatSummary(log.user_ids[agg.codes[keep]], x.astype(np.float64),
                         (agg.last_day - agg.first_day)[keep] / unit_days,
                         (end - agg.first_day[keep]) / unit_days, monetary, unit_days)


@dataclass(frozen=True, slots=True)
class BgNbdParams:
    """Purchase rate lambda ~ Gamma(r, alpha) (alpha in model time units); dropout after each repeat
    purchase with probability p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float = 0.0  # mean per customer at the optimum


@dataclass(frozen=True, slots=True)
class GammaGammaParams:
    """Spend per transaction ~ Gamma(p, nu), nu ~ Gamma(q, gamma); population mean p * gamma / (q - 1)."""

    p: float
    q: float
    gamma: float
    log_likelihood: float = 0.0

    @property
    def mean(self) -> float:
        return self.p * self.gamma / (self.q - 1.0)


def _bgnbd_negll(theta: np.ndarray, x: np.ndarray, tx: np.ndarray, big_t: np.ndarray,
                 penalizer: float) -> tuple[float, np.ndarray]:
    """Mean negative log-likelihood of BG/NBD (Fader, Hardie & Lee 2005, eq. 6) and its gradient in
    log-parameters."""
    r, alpha, a, b = np.exp(theta)
    repeat = x > 0
    xm1 = np.where(repeat, x - 1.0, 0.0)
    log_at, log_atx = np.log(alpha + big_t), np.log(alpha + tx)
    a3 = -(r + x) * log_at
    a4 = np.where(repeat, np.log(a) - np.log(b + xm1) - (r + x) * log_atx, -np.inf)
    tail = np.logaddexp(a3, a4)
    ll = (gammaln(r + x) - gammaln(r) + r * np.log(alpha) + gammaln(a + b) + gammaln(b + x) - gammaln(b)
          - gammaln(a + b + x) + tail)
    w4 = np.exp(a4 - tail)
    w3 = 1.0 - w4
    d_r = digamma(r + x) - digamma(r) + np.log(alpha) - w3 * log_at - w4 * log_atx
    d_alpha = r / alpha - (r + x) * (w3 / (alpha + big_t) + w4 / (alpha + tx))
    psi_ab, psi_abx = digamma(a + b), digamma(a + b + x)
    d_a = psi_ab - psi_abx + w4 / a
    d_b = psi_ab + digamma(b + x) - digamma(b) - psi_abx - np.where(repeat, w4 / (b + xm1), 0.0)
    params = np.array([r, alpha, a, b])
    grad = np.array([d_r.mean(), d_alpha.mean(), d_a.mean(), d_b.mean()]) * params
    value = -float(ll.mean()) + penalizer * float(np.sum(params**2))
    return value, -grad + penalizer * 2.0 * params**2


def _gg_negll(theta: np.ndarray, x: np.ndarray, m: np.ndarray, penalizer: float) -> tuple[float, np.ndarray]:
    """Mean negative log-likelihood of the Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and
    CLV", eq. 3) with parameters (log p, log(q - 1), log gamma), and its gradient."""
    p, q, g = math.exp(theta[0]), 1.0 + math.exp(theta[1]), math.exp(theta[2])
    px = p * x
    log_gmx = np.log(g + m * x)
    ll = (gammaln(px + q) - gammaln(px) - gammaln(q) + q * math.log(g) + (px - 1) * np.log(m) + px * np.log(x)
          - (px + q) * log_gmx)
    psi = digamma(px + q)
    d_p = x * (psi - digamma(px) + np.log(m) + np.log(x) - log_gmx)
    d_q = psi - digamma(q) + math.log(g) - log_gmx
    d_g = q / g - (px + q) / (g + m * x)
    grad = np.array([d_p.mean() * p, d_q.mean() * (q - 1.0), d_g.mean() * g])
    params = np.array([p, q, g])
    value = -float(ll.mean()) + penalizer * float(np.sum(params**2))
    return value, -grad + penalizer * 2.0 * params**2 * np.array([1.0, (q - 1.0) / q, 1.0])


def _minimise(fun, starts: list[np.ndarray], args: tuple, bounds: list[tuple[float, float]]) -> np.ndarray:
    best = None
    for start in starts:
        res = minimize(fun, start, args=args, jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"maxiter": 500, "ftol": 1e-12, "gtol": 1e-8})
        if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
            best = res
    if best is None:
        raise ValueError("the likelihood could not be evaluated at any starting point")
    return best.x


@dataclass
class CustomerValueModel:
    """BG/NBD repeat purchases x Gamma-Gamma average order value = expected customer value.

    Times are in units of ``unit_days`` days (the :class:`RepeatSummary`'s); the prediction methods
    take horizons in days. ``annual_discount_rate`` > 0 discounts the value month by month
    (``value = sum_k dE[purchases in month k] x AOV / (1 + rate) ** (t_k / 365)``); 0 = undiscounted."""

    unit_days: float = 1.0
    annual_discount_rate: float = 0.0
    penalizer: float = 0.0
    bgnbd: BgNbdParams | None = None
    gamma_gamma: GammaGammaParams | None = None
    fallback_aov: float = 0.0  # mean spend per purchase day, used without a Gamma-Gamma fit
    customers: int = 0

    def fit(self, summary: RepeatSummary) -> CustomerValueModel:
        """Maximum-likelihood fit of both models (L-BFGS-B on log-parameters with analytic gradients,
        bounded, several starts; times scaled so the largest age is 10). Gamma-Gamma is fitted on
        customers with repeat purchases and positive spend and skipped below 10 of them."""
        x = np.asarray(summary.frequency, np.float64)
        if x.size == 0:
            raise ValueError("no customers to fit")
        self.unit_days = summary.unit_days
        tx, big_t = np.asarray(summary.recency, np.float64), np.asarray(summary.age, np.float64)
        scale = max(float(big_t.max()), 1e-9) / 10.0
        bounds = [(-12.0, 12.0)] * 4
        starts = [np.zeros(4), np.array([math.log(0.5), math.log(2.0), math.log(0.5), math.log(2.0)])]
        theta = _minimise(_bgnbd_negll, starts, (x, tx / scale, big_t / scale, self.penalizer), bounds)
        r, alpha, a, b = np.exp(theta)
        ll = -_bgnbd_negll(theta, x, tx / scale, big_t / scale, 0.0)[0] - float(np.mean(x)) * math.log(scale)
        self.bgnbd = BgNbdParams(float(r), float(alpha * scale), float(a), float(b), ll)
        m = np.asarray(summary.monetary, np.float64)
        repeat = (x > 0) & (m > 0)
        spent = m[repeat] * x[repeat]
        self.fallback_aov = float(spent.sum() / x[repeat].sum()) if repeat.any() else 0.0
        self.customers = int(x.size)
        self.gamma_gamma = None
        if repeat.sum() >= 10:
            mscale = float(m[repeat].mean())
            gg_starts = [np.zeros(3), np.array([math.log(5.0), math.log(3.0), math.log(10.0)])]
            gtheta = _minimise(_gg_negll, gg_starts, (x[repeat], m[repeat] / mscale, self.penalizer),
                               [(-12.0, 12.0)] * 3)
            gll = -_gg_negll(gtheta, x[repeat], m[repeat] / mscale, 0.0)[0] - math.log(mscale)
            self.gamma_gamma = GammaGammaParams(math.exp(gtheta[0]), 1.0 + math.exp(gtheta[1]),
                                                math.exp(gtheta[2]) * mscale, gll)
        return self

    def _params(self) -> BgNbdParams:
        if self.bgnbd is None:
            raise ValueError("CustomerValueModel is not fitted")
        return self.bgnbd

    def p_alive(self, frequency, recency, age) -> np.ndarray:
        """P(still active at ``age``) = 1 / (1 + [x > 0] a / (b + x - 1) ((alpha + T) / (alpha + t_x))^(r + x))."""
        pr = self._params()
        x, tx, big_t = (np.asarray(v, np.float64) for v in (frequency, recency, age))
        log_odds = (np.log(pr.a) - np.log(pr.b + np.maximum(x, 1.0) - 1.0)
                    + (pr.r + x) * (np.log(pr.alpha + big_t) - np.log(pr.alpha + tx)))
        return np.where(x > 0, expit(-log_odds), 1.0)

    def expected_purchases(self, days: float, frequency, recency, age) -> np.ndarray:
        """E[purchases in (T, T + t]] (FHL 2005 eq. 10), with the Euler transform of the 2F1 term:
        (a+b+x-1)/(a-1) [1 - (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z)] P(alive), z = t/(alpha+T+t);
        well conditioned for heavy buyers (the textbook form multiplies a huge 2F1 by a tiny power)."""
        pr = self._params()
        t = days / self.unit_days
        x, tx, big_t = np.broadcast_arrays(*(np.asarray(v, np.float64) for v in (frequency, recency, age)))
        a, b, r, alpha = (pr.a if abs(pr.a - 1.0) > 1e-6 else 1.0 + 1e-6), pr.b, pr.r, pr.alpha
        z = t / (alpha + big_t + t)
        c = a + b + x - 1.0
        alive = self.p_alive(x, tx, big_t)
        with np.errstate(all="ignore"):
            bracket = 1.0 - np.exp((a - 1.0) * np.log1p(-z)) * hyp2f1(a + b - 1.0 - r, a - 1.0, c, z)
            value = np.asarray(c / (a - 1.0) * bracket * alive, dtype=np.float64)
            bad = ~np.isfinite(value)
            if bad.any():  # very large a, b (almost no heterogeneity in dropout): the textbook form
                xb, zb = x[bad], z[bad]
                power = np.exp((r + xb) * np.log1p(-zb))
                value[bad] = c[bad] / (a - 1.0) * (1.0 - power * hyp2f1(r + xb, b + xb, c[bad], zb)) * alive[bad]
                bad = ~np.isfinite(value)
            if bad.any():  # the limit of a degenerate Beta at p = a / (a + b)
                p = a / (a + b)
                decay = np.exp((r + x[bad]) * (np.log(alpha + big_t[bad]) - np.log(alpha + big_t[bad] + p * t)))
                value[bad] = alive[bad] * (1.0 - decay) / p
        return np.maximum(np.nan_to_num(value, nan=0.0, posinf=0.0), 0.0)

    def p_purchase(self, days: float, frequency, recency, age) -> np.ndarray:
        """P(at least one purchase in (T, T + t]) = P(alive) [1 - ((alpha + T) / (alpha + T + t))^(r + x)].

        Derivation: dropout happens only right after a purchase, so a customer alive at T makes no
        purchase in the window with probability exp(-lambda t); integrating over the posterior of
        (lambda, p, alive) gives P(alive) ((alpha + T) / (alpha + T + t))^(r + x) for "alive and no
        purchase", and dead customers never purchase."""
        pr = self._params()
        t = days / self.unit_days
        x, big_t = np.asarray(frequency, np.float64), np.asarray(age, np.float64)
        none = np.exp((pr.r + x) * (np.log(pr.alpha + big_t) - np.log(pr.alpha + big_t + t)))
        return self.p_alive(frequency, recency, age) * (1.0 - none)

    def expected_aov(self, frequency, monetary) -> np.ndarray:
        """Gamma-Gamma posterior mean spend per purchase day: (gamma + m x) p / (p x + q - 1) with
        repeats, the population mean p gamma / (q - 1) without (``fallback_aov`` when unfitted)."""
        x, m = np.asarray(frequency, np.float64), np.asarray(monetary, np.float64)
        gg = self.gamma_gamma
        if gg is None:
            return np.where((x > 0) & (m > 0), m, self.fallback_aov) * np.ones_like(x)
        repeat = (x > 0) & (m > 0)
        cond = (gg.gamma + m * x) * gg.p / (gg.p * x + gg.q - 1.0)
        return np.where(repeat, cond, gg.mean)

    def customer_value(self, days: float, frequency, recency, age, monetary) -> np.ndarray:
        """Expected spend in the next ``days`` days: E[purchases] x E[AOV], discounted when configured."""
        aov = self.expected_aov(frequency, monetary)
        if self.annual_discount_rate <= 0:
            return self.expected_purchases(days, frequency, recency, age) * aov
        steps = max(1, math.ceil(days / (365.25 / 12)))
        edges = np.linspace(0.0, days, steps + 1)
        total = np.zeros(np.broadcast(np.asarray(frequency), np.asarray(age)).shape)
        prev = np.zeros_like(total)
        for end in edges[1:]:
            cum = self.expected_purchases(float(end), frequency, recency, age)
            total += (cum - prev) / (1.0 + self.annual_discount_rate) ** (end / 365.0)
            prev = cum
        return total * aov

    def predict(self, summary: RepeatSummary, horizon_days: float = 365.0,
                window_days: float = 90.0) -> ValuePrediction:
        """Per-customer predictions for a summary in this model's time unit."""
        if abs(summary.unit_days - self.unit_days) > 1e-12:
            raise ValueError(f"summary is in {summary.unit_days}-day units, the model in {self.unit_days}")
        args = (summary.frequency, summary.recency, summary.age)
        return ValuePrediction(
            user_ids=summary.user_ids, p_alive=self.p_alive(*args),
            p_purchase=self.p_purchase(window_days, *args),
            expected_purchases=self.expected_purchases(horizon_days, *args),
            expected_aov=self.expected_aov(summary.frequency, summary.monetary),
            customer_value=self.customer_value(horizon_days, *args, summary.monetary))


@dataclass(frozen=True, slots=True)
class ValuePrediction:
    user_ids: np.ndarray
    p_alive: np.ndarray
    p_purchase: np.ndarray  # P(at least one purchase in the window)
    expected_purchases: np.ndarray  # over the horizon
    expected_aov: np.ndarray
    customer_value: np.ndarray  # over the horizon

