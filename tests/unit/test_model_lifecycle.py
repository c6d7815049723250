"""Versioned artifacts, hot swap and the retraining schedule (services/common/models.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from prometheus_client import REGISTRY

from services.common.models import ModelHolder, ModelRegistry, model_event, new_version, retrain_due


def test_a_saved_version_becomes_current_and_loads_back(tmp_path):
    registry = ModelRegistry(tmp_path / "models")
    assert registry.current_version() is None
    v1 = new_version("hybrid")
    registry.save(v1, {"weights": [1, 2]}, {"metrics": {"ndcg_at_10": 0.3}})
    assert registry.current_version() == v1
    model, meta = registry.load(v1)
    assert model == {"weights": [1, 2]} and meta["metrics"]["ndcg_at_10"] == 0.3 and meta["version"] == v1
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".")], "no temporary left behind"


def test_old_versions_are_pruned_but_the_current_one_stays(tmp_path):
    registry = ModelRegistry(tmp_path)
    versions = [f"hybrid-2026010{i}T000000Z-aaaaaa" for i in range(8)]
    for v in versions:
        registry.save(v, v, {})
    assert registry.versions() == versions[-5:]
    assert registry.current_version() == versions[-1]


def test_holder_swaps_and_refuses_updates_from_a_stale_version(tmp_path):
    registry = ModelRegistry(tmp_path)
    holder: ModelHolder[str] = ModelHolder(registry)
    assert holder.refresh() is False and holder.model is None
    registry.save("v1", "model-one", {})
    assert holder.refresh() is True and (holder.model, holder.version) == ("model-one", "v1")
    assert holder.refresh() is False, "the same version is not loaded twice"
    assert holder.update("model-one+new-products", "v1") and holder.model == "model-one+new-products"
    registry.save("v2", "model-two", {})
    holder.refresh()
    assert not holder.update("model-one+more", "v1"), "an update computed from v1 must not replace v2"
    assert holder.model == "model-two"


def _model_series(service: str) -> tuple[dict[str, float], float | None]:
    """{version: value} of shopai_model_info and the trained timestamp, for one service label."""
    info = {}
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            if sample.name == "shopai_model_info" and sample.labels["service"] == service:
                info[sample.labels["version"]] = sample.value
    return info, REGISTRY.get_sample_value("shopai_model_trained_timestamp_seconds", {"service": service})


def test_swapping_exports_the_serving_version_and_when_it_was_trained(tmp_path):
    service = "lifecycle-metrics-test"
    holder: ModelHolder[str] = ModelHolder(ModelRegistry(tmp_path / "models" / service))
    assert holder.service == service, "the service label defaults to the registry directory's name"
    assert _model_series(service) == ({}, None)

    holder.swap("model-one", "hybrid-20260101T000000Z-aaaaaa", {})
    info, trained = _model_series(service)
    assert info == {"hybrid-20260101T000000Z-aaaaaa": 1.0}
    assert trained == datetime(2026, 1, 1, tzinfo=UTC).timestamp(), "the time in the version name"

    holder.swap("model-two", "v2", {"trained_at": 1_800_000_000.0})
    info, trained = _model_series(service)
    assert info == {"v2": 1.0}, "the previous version's series is gone"
    assert trained == 1_800_000_000.0

    holder.swap("pretrained", "pretrained-net", {})
    assert _model_series(service) == ({"pretrained-net": 1.0}, None), "no training time for a pretrained model"
    assert ModelHolder(ModelRegistry(tmp_path), service="explicit").service == "explicit"


def test_retraining_schedule():
    base = {"users": 100, "min_users": 5, "events_now": 1000, "events_at_training": 1000, "model_age_seconds": 3600,
                "interval_seconds": 7200}
    assert retrain_due(has_model=False, **{**base, "users": 5})
    assert not retrain_due(has_model=False, **{**base, "users": 4})
    assert not retrain_due(has_model=True, **base), "nothing new"
    assert not retrain_due(has_model=True, **{**base, "events_now": 1500}), "some news, interval not over"
    assert retrain_due(has_model=True, **{**base, "events_now": 2000}), "the data doubled"
    assert not retrain_due(has_model=True, **{**base, "events_now": 5000, "model_age_seconds": 10}), "too soon"
    assert retrain_due(has_model=True, **{**base, "events_now": 1001, "model_age_seconds": 7200})
    assert not retrain_due(has_model=True, **{**base, "events_now": 1001, "model_age_seconds": 1e9,
                                              "interval_seconds": 0}), "0 = on demand only"


def test_model_event_is_an_envelope():
    event = json.loads(model_event("recommender", "hybrid-x", {"metrics": {"ndcg_at_10": 0.5}}))
    assert event["type"] == "model.published" and event["source"] == "recommender"
    assert event["payload"] == {"service": "recommender", "model_version": "hybrid-x",
                                "metrics": {"ndcg_at_10": 0.5}}
    assert event["occurred_at"].endswith("Z")
