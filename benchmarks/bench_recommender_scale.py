"""The candidate stage (services/recommender/core/candidates.py) against scoring every product (issue #22, item 3).

One run, two parts:
- quality: the hybrid fitted on the demo shop's held-out split (per-user 75/25, seed 42, as the demo
  section), held-out metrics at 10 when every product is scored and when only the candidates are
  re-ranked, and how many of the exhaustive top 10 the candidates contain;
- cost: a catalogue of 50,000 products made of copies of the demo shop's (each demo shopper moved
  into one copy at random; ALS, BPR, user KNN, EASE and popularity fitted on that, item KNN's
  similarities and the content vectors the demo's, tiled), and the CPU time of one request (hybrid
  scores, then the best 10) on either path, one thread; plus the ALS index alone, exact against
  HNSW, at that size.

    python -m benchmarks.bench_recommender --section scale [--quick]
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from benchmarks.bench_recommender import demo_config, demo_matrix
from services.common.ann import InnerProductIndex
from services.common.recommendations import Filters
from services.recommender.core import defaults as d
from services.recommender.core.bundle import RecommenderModel
from services.recommender.core.candidates import CANDIDATES
from services.recommender.core.evaluation import ranking_metrics, stratified_split, top_items
from services.recommender.core.hybrid import Hybrid, fit_hybrid
from services.recommender.core.selection import pick
from shopai.demo import generate

K = 10
METRICS = ("map", "ndcg_at_10", "precision_at_10", "recall_at_10")
GOAL_RATIO = 0.98


def _model(hybrid: Hybrid, users: list[str], items: list[str], texts: list[str]) -> RecommenderModel:
    return RecommenderModel(version="bench", user_ids=users, item_ids=items, hybrid=hybrid, item_texts=texts,
                            trained_at=0.0)


def quality(users: list[str], items: list[str], matrix: sp.csr_matrix, texts: list[str], quick: bool) -> dict:
    """Held-out metrics of the hybrid, every product scored against the candidates re-ranked."""
    train, test = stratified_split(matrix, 0.75, 42)
    started = time.perf_counter()
    hybrid, _ = fit_hybrid(train, lambda: d.make_components(texts))
    print(f"  hybrid fitted on the training part in {time.perf_counter() - started:.1f} s", flush=True)
    model = _model(hybrid, users, items, texts)
    best: dict[int, np.ndarray] = {}  # each shopper's exhaustive top 10

    def every_product(chunk: np.ndarray) -> np.ndarray:
        full = hybrid.score(train[chunk], chunk)
        seen = full.copy()
        seen[train[chunk].nonzero()] = -np.inf
        best.update(zip(chunk.tolist(), top_items(seen, K), strict=True))
        return full

    exhaustive = ranking_metrics(every_product, train, test, K)
    contained: list[float] = []

    def candidate_scores(chunk: np.ndarray) -> np.ndarray:
        out = np.empty((len(chunk), train.shape[1]))
        for i, u in enumerate(chunk):
            out[i] = model.explained_scores(train[u], users[u], CANDIDATES)[0]
            contained.append(float(np.isfinite(out[i][best[int(u)]]).mean()))
        return out

    started = time.process_time()
    candidates = ranking_metrics(candidate_scores, train, test, K)
    rows = [{"path": "every product scored", **{m: round(exhaustive[m], 4) for m in METRICS}},
            {"path": f"{CANDIDATES} candidates re-ranked", **{m: round(candidates[m], 4) for m in METRICS}}]
    ratio = candidates["ndcg_at_10"] / exhaustive["ndcg_at_10"]
    print(f"  quality: nDCG@10 {exhaustive['ndcg_at_10']:.4f} exhaustive, {candidates['ndcg_at_10']:.4f} "
          f"candidates ({ratio:.4f}); exhaustive top 10 in the candidates {np.mean(contained):.3f}", flush=True)
    return {"rows": rows, "ndcg_ratio": round(ratio, 4), "users": exhaustive["users"],
            "exhaustive_top10_in_candidates": round(float(np.mean(contained)), 4),
            "candidate_pass_cpu_seconds": round(time.process_time() - started, 1), "weights": hybrid.weights}


def tiled(matrix: sp.csr_matrix, copies: int, seed: int = 3) -> sp.csr_matrix:
    """Each shopper's row moved into one of ``copies`` copies of the catalogue, at random."""
    coo = matrix.tocoo()
    shift = np.random.default_rng(seed).integers(0, copies, matrix.shape[0])
    cols = coo.col + shift[coo.row] * matrix.shape[1]
    return sp.csr_matrix((coo.data, (coo.row, cols)), shape=(matrix.shape[0], matrix.shape[1] * copies))


def large_model(users: list[str], items: list[str], matrix: sp.csr_matrix, texts: list[str],
                copies: int, weights: dict[str, float]) -> tuple[RecommenderModel, sp.csr_matrix, float]:
    """The hybrid (the demo's learnt weights) on the tiled catalogue, and the seconds it took: ALS, BPR, user
    KNN, EASE and popularity fitted on it; item KNN's similarities and the content vectors are the demo's,
    tiled (fitting item KNN at 50,000 products alone takes minutes of CPU)."""
    big = tiled(matrix, copies)
    started = time.perf_counter()
    components = d.make_components(texts)
    content, knn = components.pop("content"), components.pop("item_knn").fit(matrix)
    for component in components.values():
        component.fit(big)
    knn.similarity = sp.block_diag([knn.similarity] * copies, format="csr")
    content.items = sp.vstack([content.items] * copies, format="csr")
    components.update(item_knn=knn, content=content)
    hybrid = Hybrid(components, weights)
    ids = [f"{p}~{c}" for c in range(copies) for p in items]
    model = _model(hybrid, users, ids, texts * copies)
    return model, big, time.perf_counter() - started


def request_cost(model: RecommenderModel, rows: sp.csr_matrix, sample: np.ndarray,
                 candidates: int | None) -> dict:
    """CPU ms of one request on one path: the hybrid's scores, the shopper's products left out, the best 10."""
    everything = frozenset(model.item_ids)
    cpu = []
    for u in sample:
        row = rows[u]
        t0 = time.thread_time()
        scores, _ = model.explained_scores(row, model.user_ids[u], candidates)
        scores[row.indices] = -np.inf
        pick(scores, model.item_ids, K, Filters(), everything, out_of_stock=None, details_of=lambda p: {})
        cpu.append(time.thread_time() - t0)
    ms = np.asarray(cpu) * 1000.0
    return {"path": "every product scored" if candidates is None else f"{candidates} candidates re-ranked",
            "p50_cpu_ms": round(float(np.percentile(ms, 50)), 2), "p99_cpu_ms": round(float(np.percentile(ms, 99)), 2),
            "mean_cpu_ms": round(float(ms.mean()), 2), "requests_per_cpu_second": round(1000.0 / float(ms.mean()), 1),
            "requests": len(sample)}


def index_cost(model: RecommenderModel, rows: sp.csr_matrix, sample: np.ndarray) -> list[dict]:
    """The ALS index alone at this size: build seconds, query microseconds, recall of HNSW against exact."""
    als = model.hybrid.components["als"]
    vectors = np.asarray(als.item_factors, dtype=np.float32)
    queries = np.asarray(als.user_factors(rows[sample]), dtype=np.float32)
    out, exact_rows = [], None
    for kind in ("exact", "hnsw"):
        started = time.perf_counter()
        index = InnerProductIndex(vectors, kind)
        build = time.perf_counter() - started
        found, cpu = [], []
        for q in queries:
            t0 = time.thread_time()
            _, rows_found = index.search(q, CANDIDATES // 2)
            cpu.append(time.thread_time() - t0)
            found.append(rows_found[0])
        if exact_rows is None:
            exact_rows = found
        recall = np.mean([len(np.intersect1d(a, b)) / max(len(b), 1) for a, b in zip(found, exact_rows, strict=True)])
        out.append({"index": kind, "products": len(vectors), "build_seconds": round(build, 2),
                    "query_cpu_us": round(float(np.mean(cpu)) * 1e6, 1),
                    f"recall_at_{CANDIDATES // 2}_vs_exact": round(float(recall), 4)})
        print(f"  index {kind}: build {build:.2f} s, query {np.mean(cpu) * 1e6:.0f} us, recall {recall:.4f}",
              flush=True)
    return out


def run_scale(quick: bool) -> dict:
    config = demo_config(quick)
    started = time.perf_counter()
    shop = generate(config, progress=False)
    users, items, matrix, texts = demo_matrix(shop)
    print(f"  demo shop generated in {time.perf_counter() - started:.1f} s", flush=True)
    measured = quality(users, items, matrix, texts, quick)
    target = 10_000 if quick else 50_000
    copies = max(1, round(target / len(items)))
    weights = measured.pop("weights")  # learnt on the held-out split's training part
    model, big, fit_seconds = large_model(users, items, matrix, texts, copies, weights)
    print(f"  {len(model.item_ids)} products: fitted in {fit_seconds:.1f} s", flush=True)
    active = np.flatnonzero(np.diff(big.indptr) > 0)
    sample = np.random.default_rng(5).choice(active, min(60 if quick else 300, len(active)), replace=False)
    cost = [request_cost(model, big, sample, None), request_cost(model, big, sample, CANDIDATES)]
    for row in cost:
        print(f"  {row['path']}: p50 {row['p50_cpu_ms']} ms, p99 {row['p99_cpu_ms']} ms CPU", flush=True)
    return {
        "dataset": f"demo shop seed {config.seed}: {len(users)} users, {len(items)} products, {matrix.nnz} pairs; "
                   f"large: {copies} copies of its catalogue = {len(model.item_ids)} products, each shopper in one",
        "quality": measured["rows"],
        "quality_summary": {k: v for k, v in measured.items() if k != "rows"},
        "cost": cost,
        "index": index_cost(model, big, sample),
        "large_fit_seconds": round(fit_seconds, 1),
        "goals": {f"candidates nDCG@10 within {round((1 - GOAL_RATIO) * 100)} % of every product scored":
                  measured["ndcg_ratio"] >= GOAL_RATIO},
    }


def print_scale(result: dict) -> None:
    print(f"\n{result['dataset']}\n")
    print("| path | MAP | nDCG@10 | P@10 | R@10 |\n|---|---:|---:|---:|---:|")
    for row in result["quality"]:
        print(f"| {row['path']} | {row['map']:.4f} | {row['ndcg_at_10']:.4f} | {row['precision_at_10']:.4f} "
              f"| {row['recall_at_10']:.4f} |")
    print(f"\n{result['quality_summary']}\n")
    print("| path | p50 CPU ms | p99 CPU ms | mean CPU ms | requests / CPU s |\n|---|---:|---:|---:|---:|")
    for row in result["cost"]:
        print(f"| {row['path']} | {row['p50_cpu_ms']} | {row['p99_cpu_ms']} | {row['mean_cpu_ms']} "
              f"| {row['requests_per_cpu_second']} |")
    print()
    for row in result["index"]:
        print(row)
    for goal, ok in result["goals"].items():
        print(f"{'PASS' if ok else 'FAIL'}  {goal}")
