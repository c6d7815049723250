"""Each shop's own hyper-parameters (core/tuning.py): the candidate that ranks the shop's held-out interactions
best is chosen, only when it beats the defaults, within the time budget (a fake clock: no timings)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from services.recommender.core.tuning import tune

RNG = np.random.default_rng(3)
TRUTH = sp.csr_matrix((RNG.random((60, 40)) < 0.25).astype(float))


class Oracle:
    """Knows every interaction, held-out ones included: the best possible ranking."""

    name = "oracle"

    def fit(self, train):
        return self

    def score(self, rows, users=None):
        return TRUTH[users].toarray() + 0.01 * RNG.random((len(users), TRUTH.shape[1]))


class Noise(Oracle):
    name = "noise"

    def score(self, rows, users=None):
        return np.random.default_rng(len(users)).random((len(users), TRUTH.shape[1]))


def components(overrides):
    return {"als": Oracle() if overrides.get("als_factors") == "32" else Noise()}


CANDIDATES = ({"item_knn_neighbours": "50"}, {"als_factors": "32"})


class Clock:
    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_the_candidate_that_ranks_held_out_interactions_best_is_chosen_and_reported():
    result = tune(TRUTH, components, candidates=CANDIDATES, clock=Clock(0.0))
    assert [overrides for overrides, _, _ in result.tried] == [{}, *CANDIDATES], "defaults first"
    assert result.chosen == {"als_factors": "32"}
    assert result.chosen_ndcg > 0.9 > result.default_ndcg
    metrics = result.metrics()
    assert metrics["tuning_candidates_tried"] == 3 and metrics["tuning_candidates_skipped"] == 0
    assert metrics["tuning_validation_ndcg_chosen"] == pytest.approx(result.chosen_ndcg)
    assert "als_factors=32" in result.describe()


def test_params_the_request_fixed_are_not_tuned_and_the_defaults_stay_unless_beaten():
    result = tune(TRUTH, components, candidates=CANDIDATES, fixed={"als_factors": "16"}, clock=Clock(0.0))
    assert result.chosen == {} and len(result.tried) == 2 and result.skipped == 1
    assert "the defaults" in result.describe()


def test_the_budget_stops_before_a_candidate_that_would_not_fit_in_it():
    # Each clock reading moves 10 s: measuring the defaults takes 10 s, so a second one would end past 15 s.
    result = tune(TRUTH, components, candidates=CANDIDATES, budget_seconds=15, clock=Clock(10.0))
    assert [overrides for overrides, _, _ in result.tried] == [{}]
    assert result.chosen == {} and result.skipped == 2
    roomy = tune(TRUTH, components, candidates=CANDIDATES, budget_seconds=1000, clock=Clock(10.0))
    assert len(roomy.tried) == 3 and roomy.chosen == {"als_factors": "32"}


def test_ease_recommends_what_shoppers_like_this_one_chose_and_matches_its_closed_form():
    from services.recommender.core.ease import EASE

    # Two tastes: products 0-2 go together, 3-5 go together; product 6 was never touched.
    rows = sp.csr_matrix(np.array([[1, 1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0, 0],
                                   [0, 0, 0, 1, 1, 1, 0], [0, 0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1, 0]], float))
    model = EASE(regularization=0.5).fit(rows)
    x = rows.toarray()[:, :6]
    inverse = np.linalg.inv(x.T @ x + 0.5 * np.eye(6))
    expected = -inverse / np.diag(inverse)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(model.weights, expected, rtol=1e-5, atol=1e-6)
    fresh = sp.csr_matrix(np.array([[1, 0, 0, 0, 0, 0, 0]], float) * 8.0)  # weights ignored: who touched what
    scores = model.score(fresh)[0]
    assert scores.shape == (7,) and int(np.argmax(scores[1:])) + 1 == 1, "bought with product 0 by the most"
    assert scores[6] < scores[:6].min(), "a product nobody touched scores lowest"
    capped = EASE(regularization=0.5, max_items=3).fit(rows)
    assert len(capped.kept) == 3 and capped.score(fresh).shape == (1, 7)
    with pytest.raises(ValueError):
        EASE(regularization=0)



class Half(Oracle):
    """The oracle on a fixed half of the products, noise elsewhere: better than noise, worse than the oracle."""

    def score(self, rows, users=None):
        mask = np.random.default_rng(1).random(TRUTH.shape[1]) < 0.5
        return np.where(mask, super().score(rows, users), Noise().score(rows, users))


def test_improvements_build_on_each_other():
    def two_knobs(overrides):
        hits = (overrides.get("item_knn_neighbours") == "50") + (overrides.get("als_factors") == "32")
        return {"als": (Noise(), Half(), Oracle())[hits]}

    result = tune(TRUTH, two_knobs, candidates=CANDIDATES, clock=Clock(0.0))
    assert [o for o, _, _ in result.tried] == [{}, {"item_knn_neighbours": "50"},
                                               {"item_knn_neighbours": "50", "als_factors": "32"}]
    assert result.chosen == {"item_knn_neighbours": "50", "als_factors": "32"}
    assert result.tried[0][1] < result.tried[1][1] < result.tried[2][1] == result.chosen_ndcg
