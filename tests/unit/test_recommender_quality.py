"""On the demo shop, whose shoppers have hidden tastes, the trained strategies must recover them far
better than popularity does: both against the hidden match and on held-out interactions."""

from __future__ import annotations

import numpy as np
import pytest

from services.recommender.core.bundle import build_matrix, product_text, user_items_from_events
from services.recommender.core.defaults import make_components
from services.recommender.core.evaluation import ranking_metrics, stratified_split, top_items
from services.recommender.core.hybrid import fit_hybrid
from shopai.demo import DemoShopConfig, generate
from shopai.demo.truth import hidden_match, taste_ndcg


@pytest.fixture(scope="module")
def shop_matrix():
    shop = generate(DemoShopConfig(seed=11, n_products=200, n_users=300, days=120, sessions_per_day=60),
                    progress=False)
    catalog = {e["payload"]["product_id"]: e["payload"] for e in shop.catalog if e["type"] == "product.upserted"}
    users, items, matrix = build_matrix(sorted(user_items_from_events(shop.interactions).items()), catalog)
    texts = [product_text(catalog.get(p, {}), lambda tags: list(tags or [])) for p in items]
    return shop, users, items, matrix, texts


def test_hidden_match_is_what_the_shoppers_acted_on(shop_matrix):
    shop, users, items, matrix, _ = shop_matrix
    match = hidden_match(shop.truth, users, items)
    bought = matrix.toarray() >= 8  # at least one purchase
    assert match[bought].mean() > 1.5 * match.mean(), "purchases concentrate on high-match products"


def test_trained_strategies_recover_hidden_tastes_better_than_popularity(shop_matrix):
    shop, users, items, matrix, texts = shop_matrix
    match = hidden_match(shop.truth, users, items)
    candidates = matrix.toarray() == 0
    hybrid, report = fit_hybrid(matrix, lambda: make_components(texts))
    assert sum(report["weights"].values()) == pytest.approx(1.0)

    def taste(model) -> float:
        scores = np.asarray(model.score(matrix, np.arange(matrix.shape[0])), dtype=float)
        return taste_ndcg(top_items(np.where(candidates, scores, -np.inf), 10), match, candidates)

    popular = taste(hybrid.components["popular"])
    assert taste(hybrid) > popular + 0.25, (taste(hybrid), popular)
    for name in ("als", "item_knn", "user_knn", "content"):
        assert taste(hybrid.components[name]) > popular + 0.1, name


def test_hybrid_predicts_held_out_interactions_better_than_popularity(shop_matrix):
    *_, matrix, texts = shop_matrix
    train, test = stratified_split(matrix, 0.75, 42)
    hybrid, _ = fit_hybrid(train, lambda: make_components(texts))
    ours = ranking_metrics(lambda u: hybrid.score(train[u], u), train, test)
    popular = hybrid.components["popular"]
    baseline = ranking_metrics(lambda u: popular.score(train[u], u), train, test)
    # The demo shop has hits (each product's hidden appeal, docs/demo-shop.md), which every shopper views more:
    # popularity is a strong baseline on held-out interactions, as in a real shop (here 0.26 nDCG@10; 0.41 for
    # the hybrid). Before the shop had hits the hybrid was twice as good; the taste test above is unchanged.
    assert ours["ndcg_at_10"] > 1.4 * baseline["ndcg_at_10"], (ours, baseline)
    assert ours["precision_at_10"] > 1.3 * baseline["precision_at_10"], (ours, baseline)
