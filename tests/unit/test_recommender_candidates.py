"""The candidate stage of a large catalogue (core/candidates.py, services/common/ann.py): the index, what the
candidates contain, the request's rules with widening, cold products, and the threshold of the exhaustive path."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.sparse as sp

from services.common.ann import InnerProductIndex, kind_for
from services.common.recommendations import Filters
from services.recommender.core import defaults as d
from services.recommender.core.bundle import RecommenderModel
from services.recommender.core.candidates import CandidatePolicy, choose_widening
from services.recommender.core.evaluation import top_items
from services.recommender.core.hybrid import Hybrid
from services.recommender.core.selection import pick

N_USERS, N_ITEMS, CLUSTERS, COLD = 400, 3000, 30, 60
K = 10


def shop(seed: int = 0) -> tuple[sp.csr_matrix, list[str]]:
    """Shoppers who like one or two of 30 product groups (latent factors), and one text per product naming
    its group; the last ``COLD`` products nobody touched."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, CLUSTERS, N_ITEMS)
    taste = np.zeros((N_USERS, CLUSTERS))
    for u in range(N_USERS):
        taste[u, rng.choice(CLUSTERS, 2, replace=False)] = [1.0, 0.4]
    appeal = rng.gamma(1.0, 1.0, N_ITEMS)
    likes = taste[:, group] * appeal
    likes[:, N_ITEMS - COLD:] = 0.0
    rows, cols = [], []
    for u in range(N_USERS):
        chosen = rng.choice(N_ITEMS, 25, replace=False, p=likes[u] / likes[u].sum())
        rows += [u] * len(chosen)
        cols += list(chosen)
    matrix = sp.csr_matrix((rng.integers(1, 5, len(rows)).astype(float), (rows, cols)), shape=(N_USERS, N_ITEMS))
    texts = [f"group{g} kind{g % 7} colour{g % 5} item{i}" for i, g in enumerate(group)]
    return matrix, texts


@pytest.fixture(scope="module")
def fitted() -> tuple[RecommenderModel, sp.csr_matrix, list[str]]:
    matrix, texts = shop()
    hybrid = Hybrid(d.make_components(texts)).fit(matrix)  # equal weights: every component counts
    model = RecommenderModel(version="t", user_ids=[f"u{i}" for i in range(N_USERS)],
                             item_ids=[f"p{i:04d}" for i in range(N_ITEMS)], hybrid=hybrid, item_texts=texts,
                             trained_at=0.0)
    return model, matrix, texts


def test_the_index_is_exact_below_its_threshold_and_hnsw_finds_most_above():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(4000, 16)).astype(np.float32) * rng.gamma(2.0, 1.0, (4000, 1)).astype(np.float32)
    queries = rng.normal(size=(30, 16)).astype(np.float32)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :50]
    assert kind_for(10) == "exact" and kind_for(10_000, exact_below=5000) == "hnsw"
    exact = InnerProductIndex(vectors)
    scores, rows = exact.search(queries, 50)
    assert exact.kind == "exact" and (rows == truth).all()
    assert np.allclose(scores[:, 0], (queries * vectors[truth[:, 0]]).sum(axis=1), rtol=1e-5)
    hnsw = InnerProductIndex(vectors, "hnsw")
    _, found = hnsw.search(queries, 50)
    recall = np.mean([len(np.intersect1d(a, b)) / 50 for a, b in zip(found, truth, strict=True)])
    assert recall >= 0.9, recall
    again = pickle.loads(pickle.dumps(hnsw))  # the graph is rebuilt on load
    assert again.kind == "hnsw" and again.search(queries[:3], 5)[1].shape == (3, 5)


def test_candidates_hold_the_exhaustive_top_k_and_rank_them_alike(fitted):
    model, matrix, _ = fitted
    full = model.hybrid.score(matrix, np.arange(N_USERS))
    full[matrix.nonzero()] = -np.inf
    best = top_items(full, K)
    contained, agreed = [], []
    for u in range(0, N_USERS, 4):
        items = model.candidate_index().candidates(model.hybrid.components, matrix[u], 300, N_ITEMS)
        assert len(items) <= 300 + 2 * matrix[u].nnz + 10
        contained.append(np.isin(best[u], items).mean())
        scores, reasons = model.explained_scores(matrix[u], f"u{u}", 300)
        assert np.isfinite(scores).sum() == len(items) and set(reasons[np.isfinite(scores)]) <= set(model.strategies)
        scores[matrix[u].indices] = -np.inf
        agreed.append(np.isin(top_items(scores[None, :], K)[0], best[u]).mean())
    assert np.mean(contained) >= 0.9, np.mean(contained)
    assert np.mean(agreed) >= 0.85, np.mean(agreed)


def test_cold_products_are_reachable_by_their_text(fitted):
    model, matrix, texts = fitted
    index = model.candidate_index()
    cold = set(range(N_ITEMS - COLD, N_ITEMS))
    assert cold <= set(index.cold.tolist())
    reached = set()
    for u in range(0, N_USERS, 8):
        reached |= set(index.candidates(model.hybrid.components, matrix[u], 300, N_ITEMS).tolist()) & cold
    assert len(reached) >= COLD // 2, "cold products never become candidates"
    # A product added after training, with the text of a group the shopper likes, is a candidate at once.
    u = 0
    liked = texts[matrix[u].indices[np.argmax(matrix[u].data)]].rsplit(" ", 1)[0]
    grown = model.with_new_products({"p-new": f"{liked} item-new"})
    items = grown.candidate_index().candidates(grown.hybrid.components, matrix[u], 300, len(grown.item_ids))
    assert N_ITEMS in items
    scores, reasons = grown.explained_scores(matrix[u], "u0", 300)
    assert np.isfinite(scores[N_ITEMS]) and reasons[N_ITEMS] == "content"


def test_rules_are_kept_and_too_few_candidates_widen_to_every_product(fitted):
    model, matrix, _ = fitted
    row = matrix[3]
    # A rare category (every 97th product) and a third of the catalogue out of stock: 300 candidates hold
    # fewer than k that pass.
    category = {p: ("rare" if i % 97 == 0 else "common") for i, p in enumerate(model.item_ids)}
    gone = {p for i, p in enumerate(model.item_ids) if i % 3 == 0}
    filters = Filters(category="rare")
    everything = frozenset(model.item_ids)
    tried: list[int | None] = []

    def scored(size):
        tried.append(size)
        scores, reasons = model.explained_scores(row, "u3", size)
        scores[row.indices] = -np.inf
        return scores, reasons

    def choose(scores):
        return pick(scores, model.item_ids, K, filters, everything, out_of_stock=lambda ps: {p for p in ps if p in gone},
                    details_of=lambda ps: {p: {"category": category[p]} for p in ps})

    chosen, _ = choose_widening(scored, choose, K, CandidatePolicy(1000, 300).sizes(N_ITEMS))
    assert len(tried) > 1, "300 candidates should not have been enough"
    assert len(chosen) == K
    for pid, _, details in chosen:
        assert details["category"] == "rare" and pid not in gone
        assert model.item_index[pid] not in set(row.indices), "a product the shopper has came back"
    exhaustive = choose(scored(None)[0])
    assert [p for p, _, _ in chosen] == [p for p, _, _ in exhaustive] or tried[-1] is not None


def test_the_exhaustive_path_stays_below_the_threshold(fitted):
    model, matrix, _ = fitted
    assert CandidatePolicy().sizes(2000) == [None], "the demo shop's size is scored exhaustively by default"
    assert CandidatePolicy(exhaustive_below=1000, count=300).sizes(N_ITEMS) == [300, 1200, None]
    assert CandidatePolicy(exhaustive_below=1000, count=300).sizes(50_000) == [300, 1200, 4800, 19200, None]
    assert CandidatePolicy(exhaustive_below=1000, count=0).sizes(50_000) == [None]
    before = model.hybrid.score(matrix[5], np.array([5]))[0]
    scores, _ = model.explained_scores(matrix[5], "u5")
    assert np.allclose(scores, before), "without candidates every product is scored as before"


def test_components_with_exact_moments_standardise_candidates_as_over_every_product(fitted):
    model, matrix, _ = fitted
    hybrid, row = model.hybrid, matrix[7]
    some = np.sort(np.random.default_rng(2).choice(N_ITEMS, 300, replace=False))
    over_all = hybrid.component_scores(row, np.array([7]))
    over_candidates = hybrid.candidate_scores(row, np.array([7]), some, model.candidate_index().sample)
    for name in ("als", "bpr", "user_knn", "ease", "popular"):
        assert np.allclose(over_candidates[name][0], over_all[name][0, some], atol=1e-6), name
    for name in ("item_knn", "content"):  # estimated on the sample: the scale (what weighs in the blend) is close
        scale = np.polyfit(over_all[name][0, some], over_candidates[name][0], 1)[0]
        assert 0.8 < scale < 1.25, (name, scale)


def test_neighbour_scores_of_candidates_are_the_full_scores_on_every_path(fitted):
    from services.recommender.core import knn

    model, matrix, _ = fitted
    item_knn, user_knn = model.hybrid.components["item_knn"], model.hybrid.components["user_knn"]
    some = np.sort(np.random.default_rng(3).choice(N_ITEMS, 300, replace=False))
    for rows in (matrix[7], matrix[: knn.DENSE_ROWS + 8]):  # a request (dense rows), and a batch (sparse)
        np.testing.assert_allclose(item_knn.score_items(rows, None, some), item_knn.score(rows)[:, some],
                                   rtol=1e-12, atol=1e-12)
    assert "_similarity_t" in item_knn.__dict__ and "_similarity_t" not in pickle.loads(pickle.dumps(item_knn)).__dict__
    changed = pickle.loads(pickle.dumps(item_knn))  # a new similarity matrix is followed, not the kept transpose
    changed.score_items(matrix[7], None, some)
    changed.similarity = changed.similarity * 2.0
    np.testing.assert_allclose(changed.score_items(matrix[7], None, some), 2 * item_knn.score(matrix[7])[:, some])
    users = np.arange(5)
    expected = user_knn.score_items(matrix[:5], users, some)
    np.testing.assert_allclose(expected, user_knn.score(matrix[:5], users)[:, some], rtol=1e-12, atol=1e-12)
    # a version saved when the training shoppers were kept as CSC answers the same
    old = pickle.loads(pickle.dumps(user_knn))
    old._train_t = old._train_t.tocsc()
    np.testing.assert_array_equal(old.score_items(matrix[:5], users, some), expected)
    assert old._train_t.format == "csr"


def test_the_request_paths_shortcuts_give_scipys_and_sklearns_answers(fitted):
    from sklearn.preprocessing import normalize

    from services.recommender.core import moments
    from services.recommender.core.bundle import CandidateReasons

    model, matrix, _ = fitted
    rng = np.random.default_rng(4)
    votes = sp.random(3, N_ITEMS, density=0.02, format="csr", random_state=5)
    votes[1] = 0  # an empty row
    wanted = np.concatenate([rng.choice(N_ITEMS, 50, replace=False), votes[0].indices[:5], [0, N_ITEMS - 1]])
    np.testing.assert_array_equal(moments.columns(votes, wanted), votes[:, wanted].toarray())
    content = model.hybrid.components["content"]
    rows = matrix[:4].astype(np.float64)
    np.testing.assert_allclose(content.profiles(rows), normalize(rows @ content.items).toarray(), rtol=1e-12)
    assert not content.profiles(sp.csr_matrix((1, N_ITEMS))).any()  # no products: a zero profile, no nan
    reasons = CandidateReasons()
    reasons.set(np.array([3, 7]), ["als", "content"])
    assert (reasons[np.int64(7)], reasons[3], reasons[5]) == ("content", "als", "")
    assert list(reasons[np.array([7, 5])]) == ["content", ""]
    assert list(reasons[np.arange(10) % 2 == 1]) == ["", "als", "", "content", ""]  # indices 1, 3, 5, 7, 9
