"""The pure parts of recommendation attribution and A/B experiments (services/common/attribution.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.common import attribution as ab
from services.common.attribution import Arm, Bucket, ExperimentError
from services.common.recommendations import STRATEGIES


def test_a_shoppers_arm_is_stable_and_depends_on_the_experiment():
    first = [ab.assign_arm("exp1", f"u{i}", [50, 50]) for i in range(2000)]
    assert first == [ab.assign_arm("exp1", f"u{i}", [50, 50]) for i in range(2000)]
    other = [ab.assign_arm("exp2", f"u{i}", [50, 50]) for i in range(2000)]
    assert first != other
    # independent across experiments: about half of each arm of exp1 is in each arm of exp2
    both = sum(1 for a, b in zip(first, other, strict=True) if a == 0 and b == 0)
    assert 400 < both < 600


@pytest.mark.parametrize("split", [[50, 50], [90, 10], [1, 99]])
def test_the_split_is_kept_over_many_shoppers(split):
    users = 20000
    first = sum(1 for i in range(users) if ab.assign_arm("e", f"user-{i}", split) == 0)
    expected = users * split[0] / 100
    assert abs(first - expected) < 4 * (users * 0.25) ** 0.5  # 4 standard deviations at most


def test_the_difference_interval_is_the_two_proportion_wald_interval():
    diff, low, high = ab.difference_ci(120, 1000, 160, 1000)
    assert diff == pytest.approx(0.04)
    se = (0.12 * 0.88 / 1000 + 0.16 * 0.84 / 1000) ** 0.5
    assert (low, high) == (pytest.approx(0.04 - 1.959964 * se, abs=1e-6), pytest.approx(0.04 + 1.959964 * se, abs=1e-6))
    statsmodels = pytest.importorskip("statsmodels.stats.proportion")
    expected = statsmodels.confint_proportions_2indep(160, 1000, 120, 1000, method="wald", compare="diff")
    assert (low, high) == (pytest.approx(expected[0]), pytest.approx(expected[1]))


def test_no_interval_until_both_arms_served_and_the_better_arm_needs_an_interval_clear_of_zero():
    assert ab.difference_ci(0, 0, 5, 10) is None
    assert ab.better_arm(["A", "B"], None) is None
    assert ab.better_arm(["A", "B"], (0.04, 0.01, 0.07)) == "B"
    assert ab.better_arm(["A", "B"], (-0.04, -0.07, -0.01)) == "A"
    assert ab.better_arm(["A", "B"], (0.01, -0.01, 0.03)) is None


def test_counter_fields_round_trip_even_with_a_separator_in_the_version():
    field = ab.bucket("hybrid", "v|odd", "e1", "A") + "|click"
    assert ab.parse_field(field) == (Bucket("hybrid", "v|odd", "e1", "A"), "click")
    assert ab.parse_field(ab.bucket("popular", "popularity-v1") + "|impressions") == (
        Bucket("popular", "popularity-v1", "", ""), "impressions")
    assert ab.parse_field("garbage") is None
    assert ab.parse_field("hybrid|v|e|A|unknown-kind") is None


def test_hours_of_a_window():
    since = datetime(2026, 12, 7, 10, 30, tzinfo=UTC)
    assert ab.hours_between(since, datetime(2026, 12, 7, 12, 0, tzinfo=UTC)) == ["2026120710", "2026120711"]
    assert ab.hours_between(since, datetime(2026, 12, 7, 12, 1, tzinfo=UTC))[-1] == "2026120712"
    assert ab.hour_of(since) == "2026120710"


def test_rows_per_strategy_sum_arms_and_compute_rates():
    totals = {
        Bucket("hybrid", "v1", "e", "A"): {"impressions": 10, "click": 3, "add_to_cart": 1, "purchase": 1},
        Bucket("hybrid", "v1", "", ""): {"impressions": 10, "click": 1, "add_to_cart": 0, "purchase": 0},
        Bucket("popular", "popularity-v1", "e", "B"): {"impressions": 5, "click": 0, "add_to_cart": 0, "purchase": 0},
    }
    rows = ab.by_strategy(totals)
    assert [(r["strategy"], r["impressions"], r["clicks"]) for r in rows] == [("hybrid", 20, 4), ("popular", 5, 0)]
    assert rows[0]["click_through"] == 0.2 and rows[0]["conversion"] == 0.05 and rows[1]["click_through"] == 0.0


def test_the_experiment_report_has_both_arms_and_the_interval():
    definition = {"experiment_id": "e", "arms": [{"name": "A", "strategy": "hybrid"},
                                                 {"name": "B", "strategy": "popular"}]}
    totals = {
        Bucket("hybrid", "v1", "e", "A"): {"impressions": 1000, "click": 250, "add_to_cart": 0, "purchase": 10},
        Bucket("popular", "p", "e", "B"): {"impressions": 1000, "click": 150, "add_to_cart": 0, "purchase": 5},
        Bucket("hybrid", "v1", "", ""): {"impressions": 50, "click": 50, "add_to_cart": 0, "purchase": 0},  # no arm
    }
    report = ab.experiment_report(definition, totals, {"A": 40, "B": 38})
    assert [(a["name"], a["users"], a["impressions"], a["clicks"]) for a in report["arms"]] == [
        ("A", 40, 1000, 250), ("B", 38, 1000, 150)]
    assert report["difference"] == pytest.approx(-0.1)
    assert report["ci95"][1] < 0 and report["better"] == "A"
    empty = ab.experiment_report(definition, {}, {})
    assert empty["difference"] is None and empty["ci95"] is None and empty["better"] is None


@pytest.mark.parametrize("arms, split, reason", [
    ([Arm("A", "hybrid")], None, "exactly two arms; 1 given"),
    ([Arm("A", "hybrid"), Arm("B", "popular"), Arm("C", "als")], None, "exactly two arms; 3 given"),
    ([Arm("A", "hybrid"), Arm("B", "magic")], None, "unknown strategy 'magic'"),
    ([Arm("A", "hybrid"), Arm("A", "popular")], None, "different names"),
    ([Arm("A", "hybrid"), Arm("B", "hybrid")], None, "nothing to compare"),
    ([Arm("A", "hybrid"), Arm("B", "popular")], [60, 30], "summing to 100"),
    ([Arm("A", "hybrid"), Arm("B", "popular")], [100, 0], "positive percentage"),
    ([Arm("A", "hybrid"), Arm("B", "popular")], [100], "summing to 100"),
])
def test_definitions_that_cannot_run_say_why(arms, split, reason):
    with pytest.raises(ExperimentError, match=reason.replace("(", r"\(")):
        ab.validate_experiment(arms, split, STRATEGIES)


def test_a_valid_definition_gets_its_split():
    assert ab.validate_experiment([Arm("A", "hybrid"), Arm("B", "popular")], None, STRATEGIES) == [50, 50]
    assert ab.validate_experiment([Arm("A", "hybrid"), Arm("B", "hybrid", "v2")], [90, 10], STRATEGIES) == [90, 10]


def test_recommendation_ids_are_new_hex():
    ids = {ab.new_recommendation_id() for _ in range(100)}
    assert len(ids) == 100 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
