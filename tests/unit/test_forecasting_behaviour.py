"""Behaviour analytics on hand-built data: RFM and segments, the strict funnel, cohorts, the keyed
pseudonyms, BG/NBD and Gamma-Gamma on data simulated from known parameters, and one profile."""

from __future__ import annotations

import pickle
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from services.forecasting.core import behaviour as bh
from services.forecasting.core.behaviour import Interaction, Purchase

AS_OF = date(2026, 3, 31)


def at(day: date | str, hour: int = 12, minute: int = 0) -> datetime:
    day = date.fromisoformat(day) if isinstance(day, str) else day
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def hand_purchases() -> list[Purchase]:
    """Five customers, one per quintile of each measure."""
    rows = [("a", d, 100.0) for d in ("2026-03-30", "2026-03-20", "2026-03-10", "2026-02-01")]
    rows += [("b", "2026-03-25", 50.0), ("b", "2026-03-01", 50.0), ("c", "2026-03-29", 20.0)]
    rows += [("d", d, 30.0) for d in ("2026-01-05", "2026-01-10", "2026-01-15")]
    rows += [("e", "2026-01-02", 10.0), ("e", "2026-04-02", 999.0)]  # the second is after as_of
    return [Purchase(u, at(d), amount, f"{u}-{i}") for i, (u, d, amount) in enumerate(rows)]


# ---------------------------------------------------------------- RFM and segments


def test_rfm_scores_and_segments_of_a_hand_example():
    rows = {r.user_id: r for r in bh.rfm(hand_purchases(), AS_OF)}
    got = {u: (r.recency_days, r.frequency, r.monetary, r.r_score, r.f_score, r.m_score, r.segment)
           for u, r in rows.items()}
    assert got == {
        "a": (1, 4, 400.0, 5, 5, 5, "champions"),
        "b": (6, 2, 100.0, 3, 3, 4, "potential_loyalists"),
        "c": (2, 1, 20.0, 4, 1, 2, "new"),
        "d": (75, 3, 90.0, 2, 4, 3, "at_risk"),
        "e": (88, 1, 10.0, 1, 1, 1, "lost"),
    }


def test_lines_of_one_order_are_one_order_and_arrays_match_records():
    lines = [Purchase("a", at("2026-03-01", 9), 10.0, "o1"), Purchase("a", at("2026-03-01", 10), 5.0, "o1"),
             Purchase("a", at("2026-03-02"), 7.0, "o2"), Purchase("b", at("2026-03-03"), 3.0)]
    rows = bh.rfm(lines, AS_OF)
    assert [(r.user_id, r.frequency, r.monetary) for r in rows] == [("a", 2, 22.0), ("b", 1, 3.0)]
    log = bh.PurchaseLog.from_arrays(["a", "a", "b"], np.array(["2026-03-01", "2026-03-02", "2026-03-03"],
                                                               dtype="datetime64[D]"), [15.0, 7.0, 3.0])
    assert bh.rfm(log, AS_OF) == rows


def test_quintile_scores_share_ties_and_score_new_values_like_members():
    freq = np.array([1, 1, 1, 1, 1, 1, 2, 2, 3, 4])
    edges = bh.QuintileEdges.fit(np.arange(10), freq, freq * 10.0)
    _, f, _ = edges.scores(np.zeros(10), freq, freq)
    assert f.tolist() == [1, 1, 1, 1, 1, 1, 4, 4, 5, 5]  # 1 + floor(5 x share strictly worse)
    assert edges.scores(0, 0, 0)[1] == 1 and edges.scores(0, 99, 0)[1] == 5
    r, _, _ = edges.scores(np.array([-1, 0, 4.5, 9, 50]), 1, 1)
    assert r.tolist() == [5, 5, 3, 1, 1]  # lower recency is better
    rng = np.random.default_rng(3)
    values = rng.integers(0, 12, 500).astype(float)
    edges = bh.QuintileEdges.fit(values, values, values)
    brute = 1 + np.floor(5 * (values[:, None] > values[None, :]).sum(1) / values.size)
    assert np.array_equal(edges.scores(values, values, values)[1], brute)
    assert np.array_equal(edges.scores(values, values, values)[0], 1 + np.floor(
        5 * (values[:, None] < values[None, :]).sum(1) / values.size))
    assert sorted(np.unique(edges.scores(values, values, values)[2]).tolist()) == [1, 2, 3, 4, 5]


def test_every_score_pair_has_a_segment():
    assert {bh.segment_of(r, f) for r in range(1, 6) for f in range(1, 6)} == set(bh.SEGMENT_NAMES)


def test_segments_report_of_the_hand_example():
    rows = bh.rfm(hand_purchases(), AS_OF)
    report = bh.segments(rows, sample_size=2, secret=b"k1")
    assert report.total_customers == 5 and report.total_revenue == pytest.approx(620.0)
    assert [s.name for s in report.segments][:5] == ["champions", "potential_loyalists", "at_risk", "new", "lost"]
    assert {s.name for s in report.segments} == set(bh.SEGMENT_NAMES)
    champions = report.segments[0]
    assert (champions.customers, champions.customer_share) == (1, pytest.approx(0.2))
    assert champions.revenue_share == pytest.approx(400 / 620)
    assert (champions.avg_recency_days, champions.avg_frequency, champions.avg_monetary) == (1.0, 4.0, 400.0)
    assert champions.sample_user_ids == [bh.pseudonymise("a", b"k1")]
    assert champions.description
    empty = [s for s in report.segments if s.customers == 0]
    assert {s.name for s in empty} == {"loyal", "hibernating"}
    assert all(s.revenue == 0 and s.sample_user_ids == [] for s in empty)
    assert sum(s.customer_share for s in report.segments) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        bh.segments(rows, sample_size=1)  # sample ids need the secret


def test_pseudonymise_is_stable_keyed_and_hides_the_raw_id():
    one = bh.pseudonymise("user-12345", b"secret-1")
    assert one == bh.pseudonymise("user-12345", b"secret-1")
    assert one != bh.pseudonymise("user-12345", b"secret-2")
    assert one != bh.pseudonymise("user-12346", b"secret-1")
    assert one.startswith("u_") and len(one) == 18 and "12345" not in one
    with pytest.raises(ValueError):
        bh.pseudonymise("user-12345", b"")


# ---------------------------------------------------------------- funnel


def hand_events() -> list[Interaction]:
    e = Interaction
    return [
        e("u1", "view", "c1", at("2026-03-05", 10)), e("u1", "add_to_cart", "c1", at("2026-03-05", 10, 5)),
        e("u1", "purchase", "c1", at("2026-03-05", 10, 10)),
        e("u2", "view", "c1", at("2026-03-06")), e("u2", "add_to_cart", "c1", at("2026-03-06", 13)),
        e("u3", "add_to_cart", "c2", at("2026-03-07")), e("u3", "purchase", "c2", at("2026-03-07", 13)),  # no view
        e("u4", "view", "c2", at("2026-03-08")), e("u4", "search", "c2", at("2026-03-08")),
        e("u5", "purchase", "c1", at("2026-03-09", 9)),  # bought before the view and the cart: not strict
        e("u5", "view", "c1", at("2026-03-09", 10)), e("u5", "add_to_cart", "c1", at("2026-03-09", 11)),
        e("u6", "view", "c1", at("2026-02-28", 23)), e("u6", "add_to_cart", "c1", at("2026-03-01", 1)),
        e("u7", "view", "c1", at("2026-03-10", 10)), e("u7", "add_to_cart", "c2", at("2026-03-10", 11)),
        e("u7", "purchase", "c2", at("2026-03-10", 12)),
        e("u8", "view", "c1", at("2026-04-01", 0)),  # after the range
    ]


def _steps(steps: list[bh.FunnelStep]) -> list[tuple]:
    return [(s.name, s.users, s.events, round(s.conversion, 6), round(s.conversion_from_start, 6)) for s in steps]


def test_strict_funnel_overall_and_per_category():
    report = bh.funnel(hand_events(), date(2026, 3, 1), date(2026, 3, 31))
    assert _steps(report.steps) == [("view", 5, 5, 1.0, 1.0), ("add_to_cart", 4, 6, 0.8, 0.8),
                                    ("purchase", 2, 4, 0.5, 0.4)]
    assert [c.category for c in report.categories] == ["c1", "c2"]  # most viewed first
    c1, c2 = (c.steps for c in report.categories)
    assert _steps(c1) == [("view", 4, 4, 1.0, 1.0), ("add_to_cart", 3, 4, 0.75, 0.75),
                          ("purchase", 1, 2, round(1 / 3, 6), 0.25)]
    assert _steps(c2) == [("view", 1, 1, 1.0, 1.0), ("add_to_cart", 0, 2, 0.0, 0.0), ("purchase", 0, 2, 0.0, 0.0)]
    assert (report.from_date, report.to_date) == (date(2026, 3, 1), date(2026, 3, 31))


def test_funnel_for_one_category_and_equal_timestamps():
    only = bh.funnel(hand_events(), date(2026, 3, 1), date(2026, 3, 31), category="c2")
    assert _steps(only.steps) == [("view", 1, 1, 1.0, 1.0), ("add_to_cart", 0, 2, 0.0, 0.0),
                                  ("purchase", 0, 2, 0.0, 0.0)]
    assert [c.category for c in only.categories] == ["c2"]
    none = bh.funnel(hand_events(), date(2026, 3, 1), date(2026, 3, 31), category="nope")
    assert [s.users for s in none.steps] == [0, 0, 0] and none.categories == []
    same = at("2026-03-03")
    events = [Interaction("z", "purchase", "c", same), Interaction("z", "add_to_cart", "c", same),
              Interaction("z", "view", "c", same)]
    assert [s.users for s in bh.funnel(events, date(2026, 3, 3), date(2026, 3, 3)).steps] == [1, 1, 1]


# ---------------------------------------------------------------- cohorts


def cohort_rows(report: bh.CohortReport) -> list[tuple]:
    return [(c.cohort, c.size, c.active, [round(v, 6) for v in c.retention]) for c in report.cohorts]


def test_weekly_cohorts_start_on_monday():
    assert date(2026, 3, 2).weekday() == 0
    purchases = [("A", at("2026-03-08")), ("A", at("2026-03-09")),  # Sunday, then Monday: next week
                 ("B", at("2026-03-02")), ("B", at("2026-03-20")),
                 ("C", at("2026-03-09")), ("C", at("2026-03-15")), ("C", at("2026-03-16")),
                 ("D", at("2026-03-23"))]  # after to_date
    report = bh.cohorts(purchases, period="week", to_date=date(2026, 3, 22))
    assert report.period == "week"
    assert cohort_rows(report) == [(date(2026, 3, 2), 2, [2, 1, 1], [1.0, 0.5, 0.5]),
                                   (date(2026, 3, 9), 1, [1, 1], [1.0, 1.0])]
    assert cohort_rows(bh.cohorts(purchases, "week", max_periods=1, to_date=date(2026, 3, 22)))[0][2] == [2, 1]
    assert [c.cohort for c in bh.cohorts(purchases, "week", from_date=date(2026, 3, 10),
                                         to_date=date(2026, 3, 22)).cohorts] == [date(2026, 3, 9)]
    early = bh.cohorts(purchases, "week", to_date=date(2026, 3, 15))
    assert cohort_rows(early) == [(date(2026, 3, 2), 2, [2, 1], [1.0, 0.5]), (date(2026, 3, 9), 1, [1], [1.0])]


def test_monthly_and_daily_cohorts():
    purchases = [Purchase("x", at("2026-01-31"), 1.0), Purchase("x", at("2026-02-01"), 1.0),
                 Purchase("y", at("2026-01-01"), 1.0), Purchase("y", at("2026-03-31"), 1.0),
                 Purchase("z", at("2026-02-14"), 1.0)]
    months = bh.cohorts(purchases, "month", max_periods=12)
    assert cohort_rows(months) == [(date(2026, 1, 1), 2, [2, 1, 1], [1.0, 0.5, 0.5]),
                                   (date(2026, 2, 1), 1, [1, 0], [1.0, 0.0])]
    days = bh.cohorts(purchases, "day", max_periods=2, to_date=date(2026, 2, 1))
    assert cohort_rows(days)[:2] == [(date(2026, 1, 1), 1, [1, 0, 0], [1.0, 0.0, 0.0]),
                                     (date(2026, 1, 31), 1, [1, 1], [1.0, 1.0])]
    with pytest.raises(ValueError):
        bh.cohorts(purchases, "year")


# ---------------------------------------------------------------- BG/NBD and Gamma-Gamma


def simulate_bgnbd(n: int, r: float, alpha: float, a: float, b: float, rng: np.random.Generator,
                   horizon: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x, t_x, T) in weeks with T uniform in 20..40, and the purchases in (T, T + horizon]."""
    lam, p, big_t = rng.gamma(r, 1 / alpha, n), rng.beta(a, b, n), rng.uniform(20, 40, n)
    x, tx, future = np.zeros(n), np.zeros(n), np.zeros(n)
    for i in range(n):
        t, alive = 0.0, True
        while alive:
            t += rng.exponential(1 / lam[i])
            if t > big_t[i] + horizon:
                break
            if t <= big_t[i]:
                x[i], tx[i] = x[i] + 1, t
            else:
                future[i] += 1
            alive = rng.random() >= p[i]
    return x, tx, big_t, future


def summary_of(x: np.ndarray, tx: np.ndarray, big_t: np.ndarray, monetary: np.ndarray | None = None):
    return bh.RepeatSummary(np.arange(x.size).astype(str), x, tx, big_t,
                            np.zeros(x.size) if monetary is None else monetary, unit_days=7.0)


def test_bgnbd_recovers_simulated_parameters():
    x, tx, big_t, _ = simulate_bgnbd(2000, 0.25, 4.0, 0.8, 2.5, np.random.default_rng(7))
    fitted = bh.CustomerValueModel().fit(summary_of(x, tx, big_t)).bgnbd
    assert fitted is not None
    assert fitted.r == pytest.approx(0.25, rel=0.3)
    assert fitted.alpha == pytest.approx(4.0, rel=0.4)
    assert fitted.a == pytest.approx(0.8, rel=0.5)
    assert fitted.b == pytest.approx(2.5, rel=0.6)
    assert fitted.r / fitted.alpha == pytest.approx(0.25 / 4.0, rel=0.2)  # mean purchase rate


def test_bgnbd_predictions_match_simulated_futures():
    rng = np.random.default_rng(11)
    x, tx, big_t, future = simulate_bgnbd(3000, 0.25, 4.0, 0.8, 2.5, rng, horizon=26.0)
    model = bh.CustomerValueModel(unit_days=7.0, bgnbd=bh.BgNbdParams(0.25, 4.0, 0.8, 2.5))
    expected = model.expected_purchases(26 * 7, x, tx, big_t)
    assert expected.sum() == pytest.approx(future.sum(), rel=0.12)
    p_buy = model.p_purchase(26 * 7, x, tx, big_t)
    assert p_buy.mean() == pytest.approx((future > 0).mean(), abs=0.03)
    assert np.all(p_buy <= model.p_alive(x, tx, big_t) + 1e-12)
    recent, old = model.p_alive([6, 6], [38.0, 5.0], [39.0, 39.0])
    assert recent > 0.8 and old < 0.5
    assert model.p_alive(0, 0, 39) == 1.0
    assert model.p_purchase(90, 3, 30, 39) < model.p_purchase(180, 3, 30, 39)


def test_gamma_gamma_expected_aov_follows_heavy_buyers():
    rng = np.random.default_rng(5)
    n = 1500
    x = rng.integers(1, 15, n).astype(float)
    nu = rng.gamma(4.0, 1 / 15.0, n)  # q = 4, gamma = 15 -> p * gamma / (q - 1) = 30 with p = 6
    m = np.array([rng.gamma(6.0, 1 / nu[i], int(k)).mean() for i, k in enumerate(x)])
    model = bh.CustomerValueModel(unit_days=7.0).fit(summary_of(x, x, x + 1, m))
    gg = model.gamma_gamma
    assert gg is not None and gg.mean == pytest.approx(30.0, rel=0.15)
    heavy = model.expected_aov([60.0, 60.0], [12.0, 80.0])
    assert heavy == pytest.approx([12.0, 80.0], rel=0.08)
    assert model.expected_aov(0, 0) == pytest.approx(gg.mean)
    light = float(model.expected_aov(1, 300.0))
    assert gg.mean < light < 300.0  # one repeat: shrunk towards the population mean


def test_value_model_is_fast_on_25k_customers():
    import time

    rng = np.random.default_rng(2)
    x, tx, big_t, _ = simulate_bgnbd(2500, 0.25, 4.0, 0.8, 2.5, rng)
    x, tx, big_t = (np.tile(v, 10) for v in (x, tx, big_t))
    m = np.where(x > 0, rng.gamma(6.0, 5.0, x.size), 0.0)
    started = time.perf_counter()
    model = bh.CustomerValueModel(unit_days=7.0).fit(summary_of(x, tx, big_t, m))
    assert time.perf_counter() - started < 5.0
    pred = model.predict(summary_of(x, tx, big_t, m))
    assert np.all(np.isfinite(pred.customer_value)) and np.all(pred.customer_value >= 0)
    assert np.all((pred.p_purchase >= 0) & (pred.p_purchase <= 1))
    discounted = bh.CustomerValueModel(7.0, 0.2, bgnbd=model.bgnbd, gamma_gamma=model.gamma_gamma)
    d = discounted.customer_value(365, x[:50], tx[:50], big_t[:50], m[:50])
    assert np.all(d <= pred.customer_value[:50] + 1e-9) and np.all(d >= 0.8 * pred.customer_value[:50])


# ---------------------------------------------------------------- population model and one profile


def population(rng: np.random.Generator, n: int = 400) -> list[Purchase]:
    start = date(2025, 4, 1)
    out = []
    for u in range(n):
        rate, first = rng.gamma(0.8, 1 / 40.0), int(rng.integers(0, 300))
        day, k = float(first), 0
        while day <= 365:
            out.append(Purchase(f"user-{u}", at(start + timedelta(days=int(day))), float(rng.gamma(3.0, 20.0)),
                                f"o{u}-{k}"))
            day, k = day + rng.exponential(1 / rate), k + 1
            if rng.random() < 0.15:
                break
    return out


def test_profile_uses_population_state_and_hides_the_id():
    purchases = population(np.random.default_rng(1))
    as_of = date(2026, 3, 31)
    model = pickle.loads(pickle.dumps(bh.BehaviourModel.fit(purchases, as_of)))
    assert model.customers == 400 and sum(model.segment_counts.values()) == 400
    rows = {r.user_id: r for r in bh.rfm(purchases, as_of)}
    mine = [p for p in purchases if p.user_id == "user-7"]
    events = {"view": 30, "add_to_cart": 4, "purchase": 6, "search": 0}
    profile = bh.user_profile("user-7", mine, model, b"s3cret", as_of=as_of, event_counts=events,
                              purchased_categories={"bags": 2, "shoes": 2, "hats": 1},
                              viewed_categories={"shoes": 9, "bags": 3, "coats": 12, "socks": 1, "belts": 2})
    assert profile is not None
    member = rows["user-7"]
    assert profile.pseudonymous_id == bh.pseudonymise("user-7", b"s3cret")
    assert profile.rfm is not None and profile.rfm.user_id == profile.pseudonymous_id
    assert (profile.rfm.r_score, profile.rfm.f_score, profile.rfm.m_score, profile.segment) == (
        member.r_score, member.f_score, member.m_score, member.segment)
    assert (profile.orders, profile.total_spend) == (member.frequency, pytest.approx(member.monetary))
    assert profile.average_order_value == pytest.approx(member.monetary / member.frequency)
    times = sorted(p.occurred_at for p in mine)
    assert (profile.first_purchase_at, profile.last_purchase_at) == (times[0], times[-1])
    expected_gap = (times[-1] - times[0]).days / (len(times) - 1) if len(times) > 1 else 0.0
    assert profile.avg_days_between_purchases == pytest.approx(expected_gap)
    assert profile.event_counts == {"view": 30, "add_to_cart": 4, "purchase": 6}
    assert profile.cart_to_purchase_rate == 1.0  # 6 / 4, clipped
    assert profile.favourite_categories == ["shoes", "bags", "hats", "coats", "belts"]
    assert 0.0 <= profile.repeat_purchase_probability <= 1.0 and profile.predicted_customer_value >= 0
    assert "user-7" not in repr(profile)


def test_profile_of_recent_frequent_buyer_beats_a_lapsed_one():
    purchases = population(np.random.default_rng(4))
    as_of = date(2026, 3, 31)
    model = bh.BehaviourModel.fit(purchases, as_of)
    recent = [Purchase("r", at(as_of - timedelta(days=d)), 50.0, str(d)) for d in (2, 20, 40, 60, 80, 100)]
    lapsed = [Purchase("l", at(as_of - timedelta(days=d)), 50.0, str(d)) for d in (250, 270, 290, 310, 330, 350)]
    hot = bh.user_profile("r", recent, model, b"k", as_of=as_of)
    cold = bh.user_profile("l", lapsed, model, b"k", as_of=as_of)
    assert hot is not None and cold is not None
    assert hot.repeat_purchase_probability > cold.repeat_purchase_probability
    assert hot.predicted_customer_value > cold.predicted_customer_value
    assert hot.rfm is not None and cold.rfm is not None and hot.rfm.r_score > cold.rfm.r_score


def test_profile_without_orders_and_never_seen():
    model = bh.BehaviourModel.fit(population(np.random.default_rng(2), 100), date(2026, 3, 31))
    assert bh.user_profile("ghost", [], model, b"k", as_of=date(2026, 3, 31)) is None
    browser = bh.user_profile("b", [], model, b"k", as_of=date(2026, 3, 31), event_counts={"view": 3},
                              viewed_categories={"coats": 3})
    assert browser is not None and browser.rfm is None and browser.segment == ""
    assert (browser.orders, browser.cart_to_purchase_rate, browser.favourite_categories) == (0, 0.0, ["coats"])
    future = [Purchase("f", at("2026-05-01"), 10.0, "o")]
    assert bh.user_profile("f", future, model, b"k", as_of=date(2026, 3, 31)) is None


def test_a_visitor_profile_before_any_model():
    counts = {"view": 5, "add_to_cart": 2, "purchase": 0, "search": 0}
    viewed = {"coats": 1, "bags": 3, "shoes": 3, "hats": 2, "belts": 1, "socks": 1}
    profile = bh.visitor_profile("v1", b"k", counts, viewed)
    assert profile is not None and profile.pseudonymous_id == bh.pseudonymise("v1", b"k")
    assert (profile.rfm, profile.segment, profile.orders, profile.first_purchase_at) == (None, "", 0, None)
    assert profile.event_counts == {"view": 5, "add_to_cart": 2}
    assert profile.cart_to_purchase_rate == 0.0
    assert profile.favourite_categories == ["bags", "shoes", "hats", "coats", "belts"], "most viewed; ties in order"
    assert bh.visitor_profile("v1", b"k", {"add_to_cart": 2, "purchase": 3}, {}).cart_to_purchase_rate == 1.0
    assert bh.visitor_profile("ghost", b"k", {}, {}) is None
