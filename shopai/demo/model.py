"""The demo shop's hidden model: traffic seasonality, promotions, price steps and the shopping funnel's
probabilities. Pure constants and calendar arithmetic; the simulation (``simulation.py``) draws from them
and the hidden truth (``truth.py``) reports them.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_WEEKLY = np.array([0.92, 0.88, 0.90, 0.94, 1.02, 1.24, 1.14])
WEEKLY_FACTORS = _WEEKLY / _WEEKLY.mean()  # weekend peak, mean 1
# Share of sessions starting in each hour of the day (UTC: the demo shop lives in UTC).
_HOURLY = np.array(
    [0.5, 0.3, 0.2, 0.15, 0.15, 0.2, 0.4, 0.8, 1.1, 1.2, 1.2, 1.3,
     1.5, 1.3, 1.1, 1.1, 1.2, 1.3, 1.5, 1.9, 2.2, 2.2, 1.7, 1.0]
)
HOURLY_SHARE = _HOURLY / _HOURLY.sum()
Q4_AMPLITUDE, Q4_PEAK_DOY, Q4_WIDTH_DAYS = 0.25, 345, 28.0
TREND_PER_YEAR = 0.15  # traffic grows 15 % a year (centred on the middle of the history)
CATEGORY_POPULARITY = np.array([0.13, 0.11, 0.10, 0.10, 0.09, 0.08, 0.10, 0.12, 0.09, 0.08])
ELASTICITY_RANGE = (-2.5, -0.5)
PRICE_STEP_MULTIPLIERS = (0.8, 0.85, 0.9, 0.95, 1.05, 1.1, 1.15, 1.2, 1.25)
# Appeal: what makes a few products hits whoever looks (a shop's demand is concentrated, Zipf-like).
# Each product gets a distinct random rank r = 1..P and adds -APPEAL_EXPONENT * log(r) to every
# shopper's view logit: the rank-1 product is viewed ~r^APPEAL_EXPONENT times as often as the rank-r
# one, other things equal. Without appeal the default shop's best seller sold 65 units on 54 of its 730 days;
# with 1.0, 623 units on 366 days (a fifth of the products then never sell: the long tail).
APPEAL_EXPONENT = 1.0
# The HIT_PRODUCTS most appealing products change their list price at least HIT_MIN_PRICE_STEPS times,
# so their own price elasticity can be estimated (the storefront's price advice for its best sellers).
HIT_PRODUCTS = 20
HIT_MIN_PRICE_STEPS = 2
BRAND_LOGIT_WEIGHT = 1.0
# Funnel: probabilities as functions of the hidden match m in (0, 1].
CLICK_P = (0.12, 0.35)  # P(click | view) = a + b m
CART_P = (0.15, 0.40)  # P(add_to_cart | click) = min(0.95, (a + b m) * price_response ** 0.5)
BUY_P = (0.30, 0.40)  # P(purchase | cart) = min(0.95, (a + b m) * price_response ** 0.5)
# price_response = (price / base_price) ** (elasticity * price_sensitivity):
# demand per view ~ price ** elasticity
QTY_P = (0.85, 0.12, 0.03)


def black_friday(year: int) -> date:
    nov1 = date(year, 11, 1)
    first_thursday = nov1 + timedelta(days=(3 - nov1.weekday()) % 7)
    return first_thursday + timedelta(days=22)


def promo_windows(start: date, end: date) -> list[dict]:
    """Promotion windows overlapping [start, end]: name, first and last day, discount, traffic boost,
    share of products taking part."""
    out = []
    for y in range(start.year - 1, end.year + 1):
        bf = black_friday(y)
        for name, a, b, disc, boost, share in (
            ("618", date(y, 6, 14), date(y, 6, 18), 0.15, 1.5, 0.6),
            ("Double 11", date(y, 11, 1), date(y, 11, 11), 0.20, 1.7, 0.7),
            ("Black Friday", bf, bf + timedelta(days=3), 0.25, 1.6, 0.6),
            ("New Year", date(y, 12, 26), date(y + 1, 1, 1), 0.10, 1.25, 0.4),
        ):
            if b < start or a > end:
                continue
            out.append(
                {
                    "name": f"{name} {y}",
                    "start": max(a, start),
                    "end": min(b, end),
                    "discount": disc,
                    "traffic_boost": boost,
                    "share": share,
                }
            )
    return sorted(out, key=lambda w: w["start"])


def q4_factor(doy: np.ndarray) -> np.ndarray:
    """Traffic factor of the end-of-year peak for each day of the year."""
    dist = np.abs(doy - Q4_PEAK_DOY)
    dist = np.minimum(dist, 365.25 - dist)
    return 1.0 + Q4_AMPLITUDE * np.exp(-0.5 * (dist / Q4_WIDTH_DAYS) ** 2)
