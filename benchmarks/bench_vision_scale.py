"""Image search over 100,000 pictures (issue #22, item 5): the vision service's index
(services/vision/core/index.py over services/common/ann.py), exact scan against HNSW, in one run.

The vectors are synthetic and clustered (rendering and embedding 100,000 pictures would take hours of this
machine's CPU): unit vectors of the fine-tuned embedder's width (256, ``TRAIN_DEFAULTS["embed_dim"]``)
around 2,000 random centres (50 pictures per group of look-alike products), each centre plus Gaussian noise
of ``SPREAD`` times the centre's length (1.5 by default, env ``VISION_SCALE_SPREAD``: cosine to its centre
~0.55, to its group's other pictures ~0.3, five standard deviations above two unrelated pictures', so a
picture's true 10 nearest are its group's; at 2.0 they are ~0.2 and the true top 10 mixes in unrelated
pictures that lie near nothing, which no graph index finds); a query is a catalogue picture plus noise of
0.3 its length (a photo of a product). Measured, each
through ``VectorIndex.search`` (what a request calls, one query on the calling thread):
- per-query latency (wall, and CPU of the calling thread) of the exact scan at 5,000 .. N pictures (the
  threshold's evidence) and of HNSW at N (chosen automatically by size at the service's defaults);
- HNSW's recall@10 against the exact scan, at the default efSearch and a deeper one;
- the build time of either, and one index-watcher batch (256 products added, 256 removed) on the HNSW index.

    python -m benchmarks.bench_vision --section scale [--quick]   # N = 100,000; quick: 20,000
"""

from __future__ import annotations

import os
import time

import numpy as np

DIM = 256
GROUP = 50  # pictures per cluster
K = 10
GOAL_P99_MS = 20.0
SPREAD = float(os.environ.get("VISION_SCALE_SPREAD", "1.5"))


def clustered(n: int, rng: np.random.Generator, spread: float = SPREAD) -> np.ndarray:
    centres = rng.normal(size=(max(1, n // GROUP), DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    v = centres[rng.integers(0, len(centres), n)]
    v += spread * rng.normal(size=(n, DIM)).astype(np.float32) / np.sqrt(DIM)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _latency(index, queries: np.ndarray) -> tuple[dict, list[list[str]]]:
    walls, cpus, answers = [], [], []
    for q in queries:
        w, c = time.perf_counter(), time.thread_time()
        hits = index.search(q, K)
        cpus.append(time.thread_time() - c)
        walls.append(time.perf_counter() - w)
        answers.append([p for p, _ in hits])
    ms = lambda xs, p: round(float(np.percentile(xs, p)) * 1e3, 2)
    return {"p50_ms": ms(walls, 50), "p99_ms": ms(walls, 99), "cpu_p50_ms": ms(cpus, 50),
            "cpu_p99_ms": ms(cpus, 99)}, answers


def _recall(found: list[list[str]], truth: list[list[str]]) -> float:
    return round(float(np.mean([len(set(a) & set(b)) / K for a, b in zip(found, truth, strict=True)])), 4)


def run_scale(quick: bool) -> dict:
    from services.common.ann import AnnParams
    from services.vision.core import index as vindex
    from services.vision.core.index import VectorIndex

    n = 20_000 if quick else 100_000
    n_queries = 300 if quick else 1000
    rng = np.random.default_rng(22)
    started = time.perf_counter()
    vectors = clustered(n, rng)
    ids = [f"p{i:06d}" for i in range(n)]
    cats = ["all"] * n
    picked = rng.choice(n, n_queries, replace=False)
    queries = vectors[picked] + 0.3 * rng.normal(size=(n_queries, DIM)).astype(np.float32) / np.sqrt(DIM)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    print(f"  {n} clustered vectors of {DIM} in {time.perf_counter() - started:.1f} s", flush=True)
    defaults = vindex.parameters()
    rows, sweep = [], []
    try:
        vindex.configure(AnnParams(exact_below=10**9))  # the exact scan at every size (the baseline)
        for size in sorted({s for s in (5_000, 10_000, 20_000, 50_000, n) if s <= n}):
            exact = VectorIndex(DIM, ids[:size], vectors[:size], cats[:size])
            timing, answers = _latency(exact, queries[:300] if size < n else queries)
            sweep.append({"pictures": size, "index": "exact", **timing})
            print(f"  exact at {size}: {timing}", flush=True)
        truth = answers  # the exact top 10 at n, every query
        rows.append({"index": "exact (faiss IndexFlatIP)", "pictures": n, "build_s": 0.0, **timing,
                     "recall_at_10": 1.0})

        vindex.configure(defaults)
        w = time.perf_counter()
        hnsw = VectorIndex(DIM, ids, vectors, cats)
        build = round(time.perf_counter() - w, 1)
        assert hnsw.kind == "hnsw", "the index did not switch to HNSW at its size"
        print(f"  HNSW ({defaults}) built in {build} s", flush=True)
        for depth in (defaults.search_depth, 128):
            hnsw.ann.params = AnnParams(defaults.exact_below, defaults.neighbours, defaults.build_depth,
                                        depth)
            timing, answers = _latency(hnsw, queries)
            rows.append({"index": f"HNSW (M {defaults.neighbours}, efConstruction {defaults.build_depth}, "
                                  f"efSearch {depth})", "pictures": n, "build_s": build, **timing,
                         "recall_at_10": _recall(answers, truth)})
            print(f"  {rows[-1]}", flush=True)
        hnsw.ann.params = defaults

        batch = 256  # one index-watcher round: new products arrive, others leave
        fresh = clustered(batch, rng)
        w = time.perf_counter()
        grown = hnsw.upsert([f"new{i}" for i in range(batch)], fresh, ["all"] * batch)
        added = time.perf_counter() - w
        w = time.perf_counter()
        shrunk = grown.remove(ids[:batch])
        removed = time.perf_counter() - w
        found = shrunk.search(fresh[0], 1)[0][0]
        updates = {"batch": batch, "add_s": round(added, 2), "remove_s": round(removed, 2),
                   "kind_after": shrunk.kind, "new_picture_found_first": found == "new0"}
        print(f"  watcher batch on the HNSW index: {updates}", flush=True)
    finally:
        vindex.configure(defaults)
    hnsw_p99 = rows[1]["p99_ms"]
    return {"rows": rows, "exact_by_size": sweep, "updates": [updates], "dim": DIM, "pictures": n,
            "queries": n_queries,
            "vectors": f"synthetic clustered ({GROUP} per centre, noise {SPREAD} times the centre's length); "
                       "queries: catalogue vectors plus 0.3 noise",
            "goal_p99_ms": GOAL_P99_MS, "goal_met": hnsw_p99 <= GOAL_P99_MS, "default_params": str(defaults)}
