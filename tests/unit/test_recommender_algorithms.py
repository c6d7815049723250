"""The recommender algorithms, their weighting, split, metrics and blend, on tiny matrices."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from implicit.nearest_neighbours import bm25_weight, tfidf_weight

from services.recommender.core.content import ContentModel
from services.recommender.core.defaults import make_components
from services.recommender.core.evaluation import list_metrics, ranking_metrics, stratified_split
from services.recommender.core.factors import ALS, BPR
from services.recommender.core.hybrid import Hybrid, fit_hybrid, standardise
from services.recommender.core.knn import ItemKNN, UserKNN, cosine_similarity, pearson_correlation
from services.recommender.core.popularity import Popularity
from services.recommender.core.weighting import ConfidenceWeighting


def planted(n_users: int = 90, n_items: int = 60, clusters: int = 3, noise: float = 0.02,
            seed: int = 0) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Shoppers in clusters, each mostly buying their cluster's products, some products more
    appealing than others (so there is more to learn than the clusters)."""
    rng = np.random.default_rng(seed)
    user_cluster, item_cluster = np.arange(n_users) % clusters, np.arange(n_items) % clusters
    appeal = rng.uniform(0.05, 0.8, n_items)
    likely = np.where(user_cluster[:, None] == item_cluster[None, :], appeal[None, :], noise)
    return sp.csr_matrix((rng.random((n_users, n_items)) < likely).astype(float)), user_cluster, item_cluster


def row(values: list[float]) -> sp.csr_matrix:
    return sp.csr_matrix(np.array([values], dtype=float))


# --- similarity helpers -------------------------------------------------------------------------

def test_cosine_of_the_seed_example_is_one_half():
    assert cosine_similarity([1, 2, 1, 0, 0], [1, 0, 2, 1, 0]) == pytest.approx(0.5, abs=1e-15)


def test_pearson_matches_the_hand_computation_and_numpy():
    a, b = [1, 2, 1, 0, 0], [1, 0, 2, 1, 0]
    # Both means are 0.8; centred dot product -0.2, each centred norm squared 2.8.
    assert pearson_correlation(a, b) == pytest.approx(-1 / 14, abs=1e-12)
    assert pearson_correlation(a, b) == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-12)


def test_zero_and_constant_vectors_give_zero_not_nan():
    assert cosine_similarity([0, 0, 0], [1, 2, 3]) == 0.0
    assert pearson_correlation([2, 2, 2], [1, 2, 3]) == 0.0


# --- confidence weighting -------------------------------------------------------------------------

@pytest.fixture
def weights() -> sp.csr_matrix:
    # The last product has no interactions, so idf must cover every column, not just the used ones.
    return sp.csr_matrix(np.array([[1, 0, 3, 0, 0],
                                   [2, 1, 0, 0, 0],
                                   [0, 4, 1, 1, 0],
                                   [1, 0, 0, 8, 0]], dtype=float))


@pytest.mark.parametrize(("scheme", "reference"), [("bm25", bm25_weight), ("tfidf", tfidf_weight)])
def test_weighting_reproduces_implicit_on_the_training_matrix(weights, scheme, reference):
    ours = ConfidenceWeighting(scheme).fit(weights).transform(weights)
    np.testing.assert_allclose(ours.toarray(), sp.csr_matrix(reference(weights)).toarray(), rtol=1e-12)


def test_weighting_applies_the_training_statistics_to_a_fresh_row(weights):
    weighting = ConfidenceWeighting("bm25", K1=100, B=0.8).fit(weights)
    # A training row weighted alone equals its row in the whole weighted matrix.
    np.testing.assert_allclose(weighting.transform(weights[2]).toarray(),
                               sp.csr_matrix(bm25_weight(weights)).toarray()[2:3], rtol=1e-12)
    fresh = weighting.transform(row([0, 0, 0, 2, 5]))
    average = weights.sum() / 4  # 22 / 4 shoppers
    norm = 0.2 + 0.8 * 7 / average
    idf_3, idf_4 = math.log(4) - math.log1p(2), math.log(4) - math.log1p(0)
    assert fresh[0, 3] == pytest.approx(2 * 101 / (100 * norm + 2) * idf_3)
    assert fresh[0, 4] == pytest.approx(5 * 101 / (100 * norm + 5) * idf_4)
    np.testing.assert_array_equal(ConfidenceWeighting("none").fit(weights).transform(weights).toarray(),
                                  weights.toarray())


# --- split and metrics ------------------------------------------------------------------------------

def test_split_keeps_round_ratio_per_shopper_and_is_disjoint():
    counts = [8, 4, 3, 1, 0, 2]
    rng = np.random.default_rng(1)
    dense = np.zeros((len(counts), 10))
    for user, n in enumerate(counts):
        dense[user, rng.choice(10, n, replace=False)] = rng.integers(1, 9, n)
    matrix = sp.csr_matrix(dense)
    train, test = stratified_split(matrix, 0.75, seed=42)
    assert np.diff(train.indptr).tolist() == [6, 3, 2, 1, 0, 2]  # round(n * 0.75), half to even
    assert np.diff(test.indptr).tolist() == [2, 1, 1, 0, 0, 0]
    assert train.multiply(test).nnz == 0
    np.testing.assert_array_equal((train + test).toarray(), dense)  # values kept
    again, _ = stratified_split(matrix, 0.75, seed=42)
    assert (again != train).nnz == 0


def test_ranking_metrics_on_a_hand_computed_example():
    train = sp.csr_matrix(np.array([[1, 0, 0, 0, 0], [0, 0, 0, 0, 1], [1, 0, 0, 0, 0]], dtype=float))
    test = sp.csr_matrix(np.array([[0, 1, 0, 1, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=float))
    scores = np.array([[9, 5, 4, 3, 1], [1, 2, 3, 4, 5], [5, 4, 3, 2, 1]], dtype=float)
    # Shopper 0: top 3 = products 1, 2, 3 (0 is seen): hits at ranks 1 and 3 of 2 relevant.
    # Shopper 1: top 3 = 3, 2, 1: no hit. Shopper 2 has no test items and is skipped.
    dcg, idcg = 1 + 1 / math.log2(4), 1 + 1 / math.log2(3)
    expected = {"map": (1 + 2 / 3) / 2 / 2, "ndcg_at_3": dcg / idcg / 2, "precision_at_3": 2 / 3 / 2,
                "recall_at_3": 1 / 2, "users": 2}
    assert ranking_metrics(scores, train, test, k=3) == pytest.approx(expected)
    by_batches = ranking_metrics(lambda users: scores[users], train, test, k=3, batch=1)
    assert by_batches == pytest.approx(expected)
    assert scores[0, 0] == 9  # the caller's scores are not modified
    # The same answers as served lists (a REST answer): the same figures; a missing or short answer only
    # loses its hits.
    assert list_metrics({0: [1, 2, 3], 1: [3, 2, 1], 2: [0]}, test, k=3) == pytest.approx(expected)
    short = list_metrics({0: [1]}, test, k=3)
    assert short["ndcg_at_3"] == pytest.approx(1 / idcg / 2) and short["precision_at_3"] == pytest.approx(1 / 6)


# --- neighbourhood models ---------------------------------------------------------------------------

@pytest.fixture
def baskets() -> sp.csr_matrix:
    # Products 0 and 1 go together, 2 and 3 go together; product 4 is bought by shopper 5 alone.
    return sp.csr_matrix(np.array([[1, 1, 0, 0, 0],
                                   [1, 1, 0, 0, 0],
                                   [1, 1, 0, 1, 0],
                                   [0, 0, 1, 1, 0],
                                   [0, 0, 1, 1, 0],
                                   [0, 1, 1, 1, 1]], dtype=float))


@pytest.mark.parametrize(("kind", "measure"),
                         [("cosine", cosine_similarity), ("pearson", pearson_correlation)])
def test_item_similarity_matches_the_pairwise_definition(baskets, kind, measure):
    model = ItemKNN(kind, neighbours=10).fit(baskets)
    dense = baskets.toarray()
    for i in range(5):
        for j in range(5):
            expected = measure(dense[:, i], dense[:, j]) if i != j else 0.0
            assert model.similarity[i, j] == pytest.approx(max(expected, 0.0), abs=1e-12)


def test_item_knn_recommends_what_is_bought_together_and_says_why(baskets):
    model = ItemKNN("cosine", neighbours=10).fit(baskets)
    shopper = row([1, 0, 0, 0, 0])
    scores = model.score(shopper)[0]
    scores[0] = -np.inf
    assert int(np.argmax(scores)) == 1
    assert model.similar_items(0, 1)[0][0] == 1
    assert model.because_of(row([1, 0, 0, 1, 0]), 1) == 0
    assert model.because_of(row([1, 0, 0, 0, 0]), 4) is None  # nothing shopper 0 has leads to product 4
    assert ItemKNN(neighbours=1).fit(baskets).similarity.getnnz(axis=1).max() == 1


def test_user_knn_scores_an_unseen_shopper_from_correlated_shoppers(baskets):
    model = UserKNN(neighbours=2).fit(baskets)
    newcomer = row([0, 0, 1, 0, 0])
    dense = baskets.toarray()
    sims = np.array([pearson_correlation(newcomer.toarray()[0], u) for u in dense])
    top = np.argsort(-sims)[:2]
    np.testing.assert_allclose(model.score(newcomer)[0], sims[top] @ dense[top], rtol=1e-12)
    scores = model.score(newcomer)[0]
    assert int(np.argmax(np.where(newcomer.toarray()[0] > 0, -np.inf, scores))) == 3


def test_user_knn_never_counts_a_shopper_as_their_own_neighbour(baskets):
    model = UserKNN(neighbours=80).fit(baskets)
    alone = model.score(baskets[5], np.array([5]))[0]
    # Only shopper 5 bought product 4: without themself no neighbour votes for it.
    assert alone[4] == 0.0
    assert model.score(baskets[5])[0][4] > 0  # scored as a stranger, their own row counts


def test_popularity_counts_shoppers_per_product(baskets):
    scores = Popularity().fit(baskets).score(baskets[:2])
    np.testing.assert_array_equal(scores, [[3, 4, 3, 4, 1]] * 2)


# --- matrix factorisation -----------------------------------------------------------------------------

def test_als_fold_in_of_a_training_shopper_is_close_to_the_trained_factors():
    matrix, _, _ = planted()
    model = ALS(factors=8, iterations=30, regularization=0.1, weighting="bm25").fit(matrix)
    trained, folded = model.model.user_factors, model.user_factors(matrix)
    relative = np.linalg.norm(trained - folded, axis=1) / np.linalg.norm(trained, axis=1)
    assert relative.max() < 0.05


def test_als_fresh_row_follows_new_interactions():
    matrix, _, item_cluster = planted()
    model = ALS(factors=8, iterations=20, regularization=0.1).fit(matrix)
    cluster_a, cluster_b = np.flatnonzero(item_cluster == 0), np.flatnonzero(item_cluster == 1)
    fresh = np.zeros((1, matrix.shape[1]))
    fresh[0, cluster_a[:2]] = 1.0

    def best(values: np.ndarray) -> int:
        scores = model.score(sp.csr_matrix(values))[0]
        return int(np.argmax(np.where(values[0] > 0, -np.inf, scores)))

    assert best(fresh) in cluster_a
    fresh[0, cluster_b[:4]] = 1.0
    assert best(fresh) in cluster_b


def test_bpr_fold_in_ranks_the_shoppers_cluster_first():
    matrix, user_cluster, item_cluster = planted()
    model = BPR(factors=8, iterations=100, learning_rate=0.05).fit(matrix)
    scores = np.where(matrix.toarray() > 0, -np.inf, model.score(matrix))
    top = np.argsort(-scores, axis=1)[:, :5]
    assert (item_cluster[top] == user_cluster[:, None]).mean() > 0.9


# --- content ------------------------------------------------------------------------------------------

CATALOG = ["红色纯棉T恤 男款 夏季短袖", "黑色真皮靴子 冬季 保暖", "Red cotton T-shirt 纯棉T恤 short sleeves",
           "Black leather boots 真皮靴子 winter"]


def test_content_matches_products_across_languages():
    model = ContentModel().fit_items(CATALOG)
    assert model.similar_items(0, 1)[0][0] == 2
    assert model.similar_items(1, 1)[0][0] == 3
    assert model.similar_items(3, 3)[0][0] == 1


def test_a_product_added_after_fitting_is_recommendable_at_once():
    model = ContentModel().fit_items(CATALOG).fit(sp.csr_matrix((1, 4)))
    assert model.add_items(["白色纯棉T恤 女款"]) == 4
    scores = model.score(row([1, 0, 0, 0]))[0]  # a row built before the product existed
    assert scores.shape == (5,)
    assert scores[4] > max(scores[1], scores[3])
    assert model.similar_items(4, 1)[0][0] in (0, 2)


# --- hybrid ---------------------------------------------------------------------------------------------

class Noise:
    """A component with no information at all."""

    name = "noise"

    def fit(self, train):
        self.n_items = train.shape[1]
        return self

    def score(self, rows, user_indices=None):
        return np.random.default_rng(3).random((rows.shape[0], self.n_items))


def components() -> dict:
    return {"als": ALS(factors=8, iterations=15, regularization=0.1), "item_knn": ItemKNN(neighbours=20),
            "user_knn": UserKNN(neighbours=20), "popular": Popularity(), "noise": Noise()}


def test_standardise_uses_only_candidates_for_its_statistics_and_keeps_the_order():
    scores = np.array([[10.0, 1.0, 2.0, 3.0]])
    z = standardise(scores, row([1, 0, 0, 0]))
    np.testing.assert_allclose(z[0, 1:], [-math.sqrt(1.5), 0.0, math.sqrt(1.5)])
    assert z[0, 0] > z[0, 3]


def test_learnt_weights_sum_to_one_and_beat_every_component_alone():
    matrix, _, _ = planted(n_users=150, seed=0)
    fit_part, validation = stratified_split(matrix, 0.8, seed=7)
    hybrid = Hybrid(components()).fit(fit_part)
    weights = hybrid.learn_weights(fit_part, validation)
    assert sum(weights.values()) == pytest.approx(1.0)
    assert all(w >= 0 for w in weights.values())
    assert hybrid.validation_ndcg >= max(hybrid.component_validation_ndcg.values())
    assert weights["noise"] < 0.1 < weights["item_knn"]
    blend = Hybrid(hybrid.components, weights)
    measured = ranking_metrics(lambda u: blend.score(fit_part[u], u), fit_part, validation)["ndcg_at_10"]
    assert measured == pytest.approx(hybrid.validation_ndcg, abs=2e-3)  # float32 cache vs float64


def test_fitted_hybrid_ranks_planted_products_first_and_explains_its_scores():
    matrix, user_cluster, item_cluster = planted(seed=5)
    hybrid, report = fit_hybrid(matrix, components)
    assert set(report["weights"]) == set(components())
    assert report["validation_ndcg_at_10"]["hybrid"] >= max(
        v for k, v in report["validation_ndcg_at_10"].items() if k != "hybrid")
    scores = np.where(matrix.toarray() > 0, -np.inf, hybrid.score(matrix, np.arange(matrix.shape[0])))
    top = np.argsort(-scores, axis=1)[:, :5]
    assert (item_cluster[top] == user_cluster[:, None]).mean() > 0.9
    parts = hybrid.contributions(matrix[0], 7, user_index=0)
    assert sum(parts.values()) == pytest.approx(hybrid.score(matrix[0], np.array([0]))[0, 7])


def test_hybrid_scores_the_rows_products_when_content_knows_newer_ones():
    matrix, _, _ = planted(n_items=6, n_users=12)
    texts = [f"产品 {i} product {i}" for i in range(6)]
    hybrid = Hybrid({"content": ContentModel().fit_items(texts), "popular": Popularity()}).fit(matrix)
    hybrid.components["content"].add_items(["新产品 new product"])
    assert hybrid.score(matrix[:2]).shape == (2, 6)


def test_components_take_training_params_as_the_api_sends_them():
    components = make_components(None, als_factors="8", item_knn_similarity="pearson", user_knn_neighbours=5,
                                 ease_regularization="100", tuning_seconds="30")
    assert set(components) == {"als", "item_knn", "user_knn", "popular", "bpr", "ease"}
    assert components["als"].model.factors == 8 and components["item_knn"].kind == "pearson"
    assert components["user_knn"].neighbours == 5 and components["ease"].regularization == 100
    assert "content" in make_components(CATALOG)
    with pytest.raises(ValueError):
        make_components(None, als_weighting="log")
    with pytest.raises(ValueError):
        make_components(None, factors="8")
    with pytest.raises(ValueError):
        make_components(None, tuning_seconds="-1")
