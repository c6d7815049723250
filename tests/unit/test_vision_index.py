"""The image index over services/common/ann.py: exact → HNSW by size as products arrive and leave, answers
right after additions, replacements and removals (copy-on-write), and HNSW's recall against exact on
clustered vectors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from services.common.ann import AnnParams, InnerProductIndex
from services.vision.core import index as vindex
from services.vision.core.index import VectorIndex


def clustered(n: int, dim: int, clusters: int, rng: np.random.Generator, spread: float = 0.35) -> np.ndarray:
    """Unit vectors around ``clusters`` random centres (pictures of similar products lie close together)."""
    centres = rng.normal(size=(clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    v = centres[rng.integers(0, clusters, n)] + spread * rng.normal(size=(n, dim)) / np.sqrt(dim)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def small_threshold():
    before = vindex.parameters()
    vindex.configure(AnnParams(exact_below=200, neighbours=16, build_depth=80, search_depth=128))
    yield
    vindex.configure(before)


def exact_top(live: dict[str, np.ndarray], query: np.ndarray, k: int) -> list[str]:
    ids = sorted(live)
    sims = np.stack([live[p] for p in ids]) @ query
    return [ids[i] for i in np.argsort(-sims, kind="stable")[:k]]


def test_the_index_switches_to_hnsw_at_the_threshold_and_back_below_it(small_threshold):
    rng = np.random.default_rng(0)
    v = clustered(260, 16, 8, rng)
    index = VectorIndex(16, [f"p{i}" for i in range(150)], v[:150], ["c"] * 150)
    assert index.kind == "exact" and len(index) == 150
    index = index.upsert([f"p{i}" for i in range(150, 199)], v[150:199], ["c"] * 49)
    assert index.kind == "exact" and len(index) == 199
    grown = index.upsert(["p199"], v[199:200], ["c"])
    assert grown.kind == "hnsw" and len(grown) == 200 and index.kind == "exact"  # the old version untouched
    grown = grown.upsert([f"p{i}" for i in range(200, 260)], v[200:260], ["c"] * 60)
    assert grown.kind == "hnsw"
    shrunk = grown.remove([f"p{i}" for i in range(81)])  # 179 left: below 90 % of 200
    assert shrunk.kind == "exact" and len(shrunk) == 179
    assert grown.remove([f"p{i}" for i in range(70)]).kind == "hnsw"  # 190: inside the margin, stays
    # a forced kind (the recommender's) never switches
    forced = InnerProductIndex(v[:10], "exact", AnnParams(exact_below=5)).changed(v[10:20])
    assert forced.kind == "exact" and not forced.automatic


@pytest.mark.parametrize("kind_size", [50, 400], ids=["exact", "hnsw"])
def test_additions_replacements_and_removals_keep_answers_right(small_threshold, kind_size):
    rng = np.random.default_rng(kind_size)
    dim = 12
    live = {f"p{i}": v for i, v in enumerate(clustered(kind_size, dim, 6, rng))}
    cats = {p: ("a" if i % 2 else "b") for i, p in enumerate(live)}
    index = VectorIndex(dim, list(live), np.stack(list(live.values())), list(cats.values()))
    assert index.kind == ("exact" if kind_size < 200 else "hnsw")
    versions = []
    for step in range(12):
        versions.append((index, dict(live)))
        new = [f"n{step}-{j}" for j in range(5)]
        replaced = list(rng.choice(sorted(live), 3, replace=False))
        vectors = clustered(8, dim, 6, rng)
        index = index.upsert(new + replaced, vectors, ["a"] * 8)
        live.update(zip(new + replaced, vectors, strict=True))
        cats.update({p: "a" for p in new + replaced})
        gone = list(rng.choice(sorted(live), 6, replace=False)) + ["never-there"]
        index = index.remove(gone)
        for p in gone:
            live.pop(p, None)
            cats.pop(p, None)
        assert len(index) == len(live) and set(index.position) == set(live)
        removed_rows = len(index.ann) - len(index)
        assert removed_rows < vindex.COMPACT_REMOVED * len(index.ann)  # dropped once a quarter
        for pid in rng.choice(sorted(live), 5, replace=False):  # a stored picture finds itself first
            hits = index.search(live[pid], 10)
            assert hits[0][0] == pid and hits[0][1] == pytest.approx(1.0, abs=1e-5)
            assert all(p in live for p, _ in hits) and len(hits) == min(10, len(live))
            if index.kind == "exact":
                assert [p for p, _ in hits] == exact_top(live, live[pid], 10)
            only_a = index.search(live[pid], 5, "a")
            in_a = {p: live[p] for p in live if cats[p] == "a"}
            assert [p for p, _ in only_a] == exact_top(in_a, live[pid], 5)
    assert len(index.ann) < kind_size + 12 * 8 or kind_size > 200  # the small one was compacted on the way
    old, old_live = versions[3]  # copy-on-write: an earlier version still answers its own catalogue
    pid = min(old_live)
    assert old.search(old_live[pid], 1)[0][0] == pid and len(old) == len(old_live)
    again = pickle.loads(pickle.dumps(index))  # removed rows are not pickled; the index is rebuilt alike
    assert len(again.ann) == len(again) == len(live) and again.kind == index.kind
    pid = max(live)
    assert again.search(live[pid], 1)[0][0] == pid


def test_hnsw_finds_nearly_all_of_the_exact_top_10_on_clustered_vectors():
    """20,000 clustered 64-dimension unit vectors, queries near catalogue pictures (a photo of a product):
    recall@10 of HNSW at the service's defaults (M 32, efConstruction 80, efSearch 64) against exact.
    benchmarks/README.md measured 0.999 at 100,000 x 256 with the same parameters on such vectors (0.85 on
    loose groups whose true top 10 mixes in unrelated pictures); here it finds all of them. 0.9 leaves room
    for the build-order-dependent graph (faiss builds on several threads) while failing a broken one
    (wrong metric, removed rows, a search depth cut to ~10 gave 0.84 in a trial)."""
    rng = np.random.default_rng(3)
    vectors = clustered(20_000, 64, 200, rng, spread=1.0)
    noise = 0.3 * rng.normal(size=(200, 64)).astype(np.float32) / 8
    queries = vectors[rng.choice(len(vectors), 200, replace=False)] + noise
    params = AnnParams(exact_below=1000)
    exact = InnerProductIndex(vectors, "exact", params)
    hnsw = InnerProductIndex(vectors, None, params)
    assert hnsw.kind == "hnsw"
    _, truth = exact.search(queries, 10)
    _, found = hnsw.search(queries, 10)
    recall = np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(found, truth, strict=True)])
    assert recall >= 0.9, recall
