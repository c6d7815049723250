"""Image search and verification benchmarks (sections ``search`` and ``verify`` of bench_vision).

search: the demo catalog generator's products (2,000; 300 in quick mode), one query photo per
product made by ``distort.make_query`` (new background, rotation, crop, scale, colour, blur,
JPEG; seed 7). Rows: the pretrained embedder (what serves before any training) and the
fine-tuned one (trained in this run, its time reported), recall@1/@5 and identification
accuracy (known and right); then the index libraries on the fine-tuned vectors and on 100,000
synthetic vectors: build time, query latency, recall against exact search.

verify: the real servicer (services/vision/server.py) in process over the machine's Redis, on
genuine label photos, forged signatures, altered payloads, copied labels (one serial scanned in
several places), photos without a code and blurred photos: the confusion matrix.
"""

from __future__ import annotations

import base64
import io
import time

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

GOAL_RECALL_AT_1 = 0.95


def _catalog(n: int):
    from shopai.demo.catalog import build_catalog

    payloads = build_catalog(n, np.random.default_rng(42), np.zeros(n, bool)).payloads
    return [(p["product_id"], p["title"], p["category"],
             Image.open(io.BytesIO(base64.b64decode(p["image_base64"]))).convert("RGB")) for p in payloads]


def _images(catalog) -> dict:
    from services.vision.core.model import Product

    return {pid: (Product(pid, title, cat, pid), im) for pid, title, cat, im in catalog}


def _percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def _model_row(name: str, model, queries, truth, seconds: float | None) -> dict:
    from services.vision.core.model import evaluate, tune

    started = time.perf_counter()
    metrics = evaluate(model, queries, truth)
    tuned = tune(model, metrics)
    known = right = 0
    latencies = []
    for q, pid in zip(queries[:300], truth[:300], strict=True):
        t = time.perf_counter()
        answer = tuned.identify(q, 5)
        latencies.append(time.perf_counter() - t)
        known += int(answer.known)
        right += int(answer.known and answer.best is not None and answer.best.product_id == pid)
    row = {"embedder": name, "recall_at_1": round(metrics["recall_at_1"], 4),
           "recall_at_5": round(metrics["recall_at_5"], 4),
           "identify_known_share": round(known / min(300, len(queries)), 4),
           "identify_precision_when_known": round(right / known, 4) if known else None,
           "eval_seconds": round(time.perf_counter() - started, 1), **_percentiles(latencies)}
    if seconds is not None:
        row["train_seconds"] = round(seconds)
    return row


def _index_rows(vectors: np.ndarray, queries: np.ndarray, label: str) -> list[dict]:
    import faiss
    from usearch.index import Index

    rows = []
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]

    def timed(build, search) -> dict:
        started = time.perf_counter()
        index = build()
        built = time.perf_counter() - started
        found, lat = [], []
        for q in queries:
            t = time.perf_counter()
            found.append(search(index, q))
            lat.append(time.perf_counter() - t)
        recall = float(np.mean([len(set(f[:10]) & set(e)) / 10 for f, e in zip(found, exact, strict=True)]))
        return {"build_seconds": round(built, 3), "recall_at_10_vs_exact": round(recall, 4), **_percentiles(lat)}

    rows.append({"vectors": label, "index": "numpy exact (baseline)",
                 **timed(lambda: vectors, lambda v, q: list(np.argsort(-(v @ q))[:10]))})

    def flat():
        i = faiss.IndexFlatIP(vectors.shape[1])
        i.add(vectors)
        return i

    rows.append({"vectors": label, "index": "faiss IndexFlatIP (served)",
                 **timed(flat, lambda i, q: list(i.search(q[None], 10)[1][0]))})

    def hnsw():
        i = faiss.IndexHNSWFlat(vectors.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        i.hnsw.efSearch = 64
        i.add(vectors)
        return i

    rows.append({"vectors": label, "index": "faiss HNSW (M=32, ef=64)",
                 **timed(hnsw, lambda i, q: list(i.search(q[None], 10)[1][0]))})

    def us():
        i = Index(ndim=vectors.shape[1], metric="ip", dtype="f32")
        i.add(np.arange(len(vectors)), vectors)
        return i

    rows.append({"vectors": label, "index": "usearch HNSW (defaults)",
                 **timed(us, lambda i, q: list(i.search(q, 10).keys))})
    return rows


def run_search(quick: bool) -> dict:
    import faiss
    import torch

    from services.vision.core.distort import make_query
    from services.vision.core.finetune import TRAIN_DEFAULTS, finetune
    from services.vision.core.index import VectorIndex
    from services.vision.core.model import VisionModel, pretrained_model

    torch.set_num_threads(2)
    faiss.omp_set_num_threads(1)
    n = 300 if quick else 2000
    catalog = _catalog(n)
    images = _images(catalog)
    rng = np.random.default_rng(7)
    truth = [pid for pid, *_ in catalog]
    queries = [make_query(im, rng) for *_, im in catalog]
    rows = []

    started = time.perf_counter()
    pretrained = pretrained_model().with_products(images)
    print(f"  pretrained index of {n} built in {time.perf_counter() - started:.1f} s", flush=True)
    rows.append(_model_row("EfficientNet-Lite0 pretrained (baseline)", pretrained, queries, truth, None))
    print(f"  {rows[-1]}", flush=True)

    params = dict(TRAIN_DEFAULTS) | ({"epochs": 1, "views": 2} if quick else {"epochs": 10, "views": 8})
    started = time.perf_counter()
    last = [0.0]

    def report(fraction: float, message: str) -> None:
        if fraction - last[0] >= 0.05 or fraction >= 1:
            last[0] = fraction
            print(f"    fine-tuning {fraction:.0%} {message} ({time.perf_counter() - started:.0f} s)", flush=True)

    net = finetune([im for *_, im in catalog], params, report=report)
    seconds = time.perf_counter() - started
    build = time.perf_counter()
    tuned = VisionModel(net=net, image_size=int(params["image_size"]), kind="finetuned",
                        index=VectorIndex(int(params["embed_dim"]))).with_products(images)
    index_seconds = time.perf_counter() - build
    rows.append(_model_row(f"EfficientNet-Lite0 fine-tuned ({int(params['epochs'])} epochs x "
                           f"{int(params['views'])} views)", tuned, queries, truth, seconds))
    print(f"  {rows[-1]}", flush=True)

    vectors = tuned.index.vectors
    qv = tuned.embed(queries[:500])
    index_rows = _index_rows(vectors, qv, f"catalog {len(vectors)} x {vectors.shape[1]}")
    synth_rng = np.random.default_rng(3)
    big = vectors[synth_rng.integers(0, len(vectors), 100_000)] + synth_rng.normal(0, 0.05, (100_000, vectors.shape[1]))
    big = (big / np.linalg.norm(big, axis=1, keepdims=True)).astype(np.float32)
    index_rows += _index_rows(big, qv[:200], f"synthetic 100000 x {vectors.shape[1]}")
    best = max(r["recall_at_1"] for r in rows)
    return {"rows": rows, "indexes": index_rows, "products": n, "queries": len(queries),
            "catalog_embedding_seconds": round(index_seconds, 2), "goal_recall_at_1": GOAL_RECALL_AT_1,
            "goal_met": best >= GOAL_RECALL_AT_1, "train_params": params}


class _Context:
    """Enough of grpc.ServicerContext for calling the servicer in process: abort raises."""

    def abort(self, code, details):
        raise RuntimeError(f"{code}: {details}")


def _camera(photo: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A hand-held phone photo of a label: slight tilt, light, JPEG."""
    photo = photo.rotate(float(rng.uniform(-6, 6)), resample=Image.BICUBIC, expand=True, fillcolor=(236, 232, 224))
    photo = ImageEnhance.Brightness(photo).enhance(float(rng.uniform(0.85, 1.15)))
    buf = io.BytesIO()
    photo.save(buf, format="JPEG", quality=int(rng.integers(60, 92)))
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


VERDICT_NAMES = ("authentic", "counterfeit", "suspicious", "unreadable")


def _verify_servicer(client, url: str, catalog, key):
    """The real servicer over the benchmark's Redis, its catalog indexed by the pretrained model."""
    from services.common.models import ModelHolder, ModelRegistry
    from services.common.projection import RedisApplier
    from services.common.settings import Settings
    from services.vision.core.model import pretrained_model
    from services.vision.server import VisionServicer
    from services.vision.store import VisionKeys, VisionStore

    settings = Settings(redis_url=url, vision_signing_key=key.to_text())
    for pid, title, cat, _ in catalog:
        client.hset(VisionKeys.product(pid), mapping={"title": title, "category": cat})
    holder: ModelHolder = ModelHolder(ModelRegistry(settings.model_dir("vision")))
    holder.swap(pretrained_model().with_products(_images(catalog)), "pretrained", {})
    return VisionServicer(settings, VisionStore(client), holder, None, key, lambda *a: None,  # type: ignore[arg-type]
                          RedisApplier(client, "vision-bench", 3600))


class _VerifyRun:
    """Calls Verify and keeps, per case, the servicer's verdicts, a signature-only checker's (the usual
    QR verifier) and the latencies."""

    def __init__(self, servicer) -> None:
        self.servicer = servicer
        self.ctx = _Context()
        self.cases: dict[str, list[str]] = {}
        self.baseline: dict[str, list[str]] = {}
        self.latencies: list[float] = []
        self.current = ""

    def signature_only(self, photo: Image.Image | None, payload: str) -> str:
        from services.vision.core import codes

        texts = [payload] if payload else [f.text for f in codes.find_codes(photo)] if photo is not None else []
        checks = [codes.verify_payload(t, self.servicer.keys) for t in texts]
        if any(c.valid for c in checks):
            return "authentic"
        return "counterfeit" if any(c.ours for c in checks) else "unreadable"

    def verify(self, photo: Image.Image | None = None, payload: str = "", location: str = "",
               client_id: str = "") -> str:
        from protos import vision_pb2 as pb
        from services.vision.core.images import encode_image

        request = pb.VerifyRequest(image=encode_image(photo, "JPEG", 90) if photo is not None else b"",
                                   payload=payload, location=location, client_id=client_id)
        started = time.perf_counter()
        answer = self.servicer.Verify(request, self.ctx)
        self.latencies.append(time.perf_counter() - started)
        self.current = self.signature_only(photo, payload)
        return pb.Verdict.Name(answer.verdict).removeprefix("VERDICT_").lower()

    def record(self, case: str, verdict: str) -> None:
        self.cases.setdefault(case, []).append(verdict)
        self.baseline.setdefault(case, []).append(self.current)

    def issue(self, pid: str, count: int) -> list:
        from protos import vision_pb2 as pb

        return self.servicer.IssueCodes(pb.IssueCodesRequest(product_id=pid, batch="BENCH", count=count), self.ctx).codes


def _forged_payload(key, attacker, pid: str) -> str:
    """Our body (our key id, a fresh serial), signed by someone else's key."""
    from services.vision.core import codes

    body = codes.sign(key, codes.Claims(pid, "BENCH", codes.new_serial(), key.key_id, int(time.time()))).payload
    body = body.split(".")[1]
    signature = attacker.private.sign(f"{codes.PREFIX}.{body}".encode())
    return f"{codes.PREFIX}.{body}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def _verify_cases(run: _VerifyRun, pid: str, picture: Image.Image, key, attacker, rng: np.random.Generator) -> None:
    """One round of every case for one product."""
    from services.vision.core import codes
    from services.vision.core.distort import label_photo

    code, second = run.issue(pid, 2)
    run.record("genuine photo", run.verify(_camera(label_photo(picture, code.png), rng), location="A"))
    forged = _forged_payload(key, attacker, pid)
    run.record("forged signature", run.verify(_camera(label_photo(picture, codes.render_png(forged)), rng)))
    p = code.payload
    j = int(rng.integers(5, len(p) - 1))
    altered = p[:j] + ("A" if p[j] != "A" else "B") + p[j + 1:]
    run.record("altered payload", run.verify(_camera(label_photo(picture, codes.render_png(altered)), rng)))
    # Three shoppers in three far-apart cities, each an anonymous client of its own (one client alone
    # counts in one place only: services/vision/core/scans.py).
    for place in ("Shanghai", "Lagos", "Lima"):
        verdict = run.verify(payload=second.payload, location=place, client_id=f"addr-{place.lower()}")
    run.record("copied label (3rd place)", verdict)
    run.record("no code in photo", run.verify(_camera(label_photo(picture, None), rng)))
    blurred = label_photo(picture, code.png).filter(ImageFilter.GaussianBlur(float(rng.uniform(5, 8))))
    run.record("blurred photo", run.verify(blurred))


def _verify_results(run: _VerifyRun, per_case: int) -> dict:
    matrix = [{"case": name, **{v: got.count(v) for v in VERDICT_NAMES}} for name, got in run.cases.items()]
    signature_matrix = [{"case": name, **{v: got.count(v) for v in VERDICT_NAMES}}
                        for name, got in run.baseline.items()]
    bad_authentic = sum(r["authentic"] for r in matrix if r["case"] in ("forged signature", "altered payload"))
    genuine_counterfeit = next(r for r in matrix if r["case"] == "genuine photo")["counterfeit"]
    return {"confusion": matrix, "confusion_signature_only_baseline": signature_matrix,
            "latency": [{"call": "Verify (photo or payload)", **_percentiles(run.latencies)}],
            "forged_or_altered_called_authentic": bad_authentic, "genuine_called_counterfeit": genuine_counterfeit,
            "goal_met": bad_authentic == 0 and genuine_counterfeit == 0, "per_case": per_case}


def run_verify(quick: bool) -> dict:
    from services.common import cache
    from services.vision.core import codes
    from tests.support import machine_redis_url

    url = machine_redis_url(db=12)
    if url is None:
        raise SystemExit("the verify benchmark needs a Redis on 127.0.0.1:6379")
    client = cache.connect(url)
    client.flushdb()
    key = codes.SigningKey.generate()
    attacker = codes.SigningKey.generate()
    catalog = _catalog(40)
    run = _VerifyRun(_verify_servicer(client, url, catalog, key))
    rng = np.random.default_rng(11)
    per_case = 10 if quick else 60
    for i in range(per_case):
        pid, _, _, picture = catalog[i % len(catalog)]
        _verify_cases(run, pid, picture, key, attacker, rng)
    client.flushdb()
    return _verify_results(run, per_case)
