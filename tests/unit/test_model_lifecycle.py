"""Versioned artifacts, hot swap and the retraining schedule (services/common/models.py)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import grpc
import pytest
from prometheus_client import REGISTRY

from protos import common_pb2
from services.common.jobs import list_models_rpc, serve_model_rpc
from services.common.models import (
    ModelHolder,
    ModelRegistry,
    announce_version,
    gate_alert,
    gate_params,
    model_event,
    new_version,
    quality_gate,
    retrain_due,
)


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


# -- the quality gate and the registry's pins ---------------------------------------------------------------

def test_the_gate_serves_a_model_that_is_not_worse():
    first = quality_gate("accuracy", 0.8, None)
    assert first.serve and not first.forced and "nothing was serving" in first.reason
    assert first.metrics() == {"served": 1.0, "gate_accuracy": 0.8}
    better = quality_gate("accuracy", 0.91, 0.9, serving_version="intent-a")
    assert better.serve and "0.9100 against 0.9000 for the serving intent-a" in better.reason
    assert quality_gate("accuracy", 0.9, 0.9, serving_version="intent-a").serve, "a tie serves (newer data)"
    assert quality_gate("mean_mase", 0.5 + 1e-13, 0.5, serving_version="f-a", higher_is_better=False).serve
    assert not quality_gate("mean_mase", 0.5 + 1e-6, 0.5, serving_version="f-a", higher_is_better=False).serve
    lower = quality_gate("mean_mase", 0.7, 0.8, serving_version="f-a", higher_is_better=False)
    assert lower.serve and "lower is better" in lower.reason
    unmeasured = quality_gate("recall_at_1", 0.5, math.nan, serving_version="pretrained")
    assert unmeasured.serve and "pretrained has no recall_at_1 figure" in unmeasured.reason


def test_the_gate_refuses_a_worse_model_unless_forced():
    worse = quality_gate("accuracy", 0.41, 0.9, serving_version="intent-a")
    assert not worse.serve and not worse.forced
    assert "kept but not served" in worse.reason and "0.4100 against 0.9000" in worse.reason
    assert "force_serve=true" in worse.reason
    assert worse.metrics() == {"served": 0.0, "gate_accuracy": 0.41, "gate_serving_accuracy": 0.9}
    assert not quality_gate("mean_mase", 0.9, 0.8, serving_version="f-a", higher_is_better=False).serve
    assert not quality_gate("accuracy", math.nan, 0.9, serving_version="intent-a").serve, "unmeasured new model"
    forced = quality_gate("accuracy", 0.41, 0.9, serving_version="intent-a", force=True)
    assert forced.serve and forced.forced and "force_serve=true" in forced.reason
    assert forced.record()["forced"] is True and forced.record()["serving"] == 0.9


def test_force_serve_is_every_services_param():
    assert gate_params({"C": "2"}) == ({"C": "2"}, False)
    assert gate_params({"C": "2", "force_serve": "true"}) == ({"C": "2"}, True)
    assert gate_params({"force_serve": "False"}) == ({}, False)
    with pytest.raises(ValueError, match="force_serve must be true or false"):
        gate_params({"force_serve": "yes please"})


def test_a_refused_version_is_kept_but_not_current(tmp_path):
    registry = ModelRegistry(tmp_path)
    holder: ModelHolder[str] = ModelHolder(registry, service="lifecycle-gate-test")
    holder.offer("good", "v1", {"metrics": {"accuracy": 0.9}}, quality_gate("accuracy", 0.9, None))
    assert (holder.model, holder.version, registry.current_version()) == ("good", "v1", "v1")
    assert holder.refused_at == 0.0
    holder.offer("bad", "v2", {"metrics": {"accuracy": 0.4}},
                 quality_gate("accuracy", 0.4, 0.9, serving_version="v1"))
    assert (holder.model, holder.version, registry.current_version()) == ("good", "v1", "v1")
    assert registry.versions() == ["v1", "v2"] and registry.meta("v2")["gate"]["serve"] is False
    assert holder.refused_at > 0
    restarted: ModelHolder[str] = ModelHolder(registry, service="lifecycle-gate-test")
    assert restarted.refresh() and restarted.version == "v1", "a restart serves the current one, not the refused one"


def test_serving_a_stored_version_pins_it_across_restarts(tmp_path):
    registry = ModelRegistry(tmp_path)
    holder: ModelHolder[str] = ModelHolder(registry, service="lifecycle-pin-test")
    swapped = []
    holder.on_swap.append(swapped.append)
    for v in ("v1", "v2"):
        holder.offer(f"model-{v}", v, {}, quality_gate("accuracy", 1.0, None))
    assert holder.serve("v1")["version"] == "v1"
    assert (holder.model, holder.version, registry.current_version()) == ("model-v1", "v1", "v1")
    assert swapped == ["v1", "v2", "v1"], "a pin is a swap like any other (caches learn of it)"
    with pytest.raises(KeyError):
        holder.serve("v9")
    with pytest.raises(KeyError):
        registry.set_current("v9")
    assert registry.current_version() == "v1"
    restarted: ModelHolder[str] = ModelHolder(registry, service="lifecycle-pin-test")
    assert restarted.refresh() and restarted.model == "model-v1", "the pin survives a restart"
    replica: ModelHolder[str] = ModelHolder(registry, service="lifecycle-pin-test")
    replica.swap("model-v2", "v2", {})
    assert replica.refresh() and replica.version == "v1", "another replica picks the pin up when it polls"


class Aborted(Exception):
    pass


class Context:
    """The part of grpc.ServicerContext the registry's RPC bodies use."""

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)


def test_the_registry_rpcs_list_newest_first_and_serve(tmp_path):
    registry = ModelRegistry(tmp_path)
    holder: ModelHolder[str] = ModelHolder(registry, service="lifecycle-rpc-test")
    assert list(list_models_rpc(holder, "chatbot", common_pb2.ListModelsRequest(), Context()).versions) == []
    holder.swap("pretrained", "pretrained-net", {"metrics": {}})
    old, new = "intent-20261201T000000Z-aaaaaa", "intent-20261202T000000Z-bbbbbb"
    holder.offer("m1", old, {"metrics": {"accuracy": 0.9}}, quality_gate("recall_at_1", 0.9, None))
    holder.offer("m2", new, {"metrics": {"accuracy": 0.5}}, quality_gate("accuracy", 0.5, 0.9, serving_version=old))
    listed = list_models_rpc(holder, "chatbot", common_pb2.ListModelsRequest(), Context()).versions
    assert [(v.model_version, v.serving, v.gate, v.stored) for v in listed] == [
        (new, False, "refused", True), (old, True, "served", True)]
    assert listed[0].metrics["accuracy"] == 0.5 and "0.5000 against 0.9000" in listed[0].gate_reason
    assert listed[1].trained_at.ToDatetime(tzinfo=UTC) == datetime(2026, 12, 1, tzinfo=UTC)

    reply = serve_model_rpc(holder, "chatbot", common_pb2.ServeModelRequest(model_version=new), Context())
    assert reply.serving and reply.model_version == new and holder.model == "m2"
    assert registry.current_version() == new
    for bad in ("intent-nope", "", "../etc", ".CURRENT.tmp"):
        with pytest.raises(Aborted) as err:
            serve_model_rpc(holder, "chatbot", common_pb2.ServeModelRequest(model_version=bad), Context())
        assert err.value.args[0] is grpc.StatusCode.NOT_FOUND and "no stored chatbot model version" in err.value.args[1]

    pretrained: ModelHolder[str] = ModelHolder(ModelRegistry(tmp_path / "vision"), service="lifecycle-rpc-test")
    pretrained.swap("net", "pretrained-net", {"metrics": {}})
    listed = list_models_rpc(pretrained, "vision", common_pb2.ListModelsRequest(), Context()).versions
    assert [(v.model_version, v.serving, v.stored, v.HasField("trained_at")) for v in listed] == [
        ("pretrained-net", True, False, False)]


def test_a_refused_version_is_announced_with_an_alert():
    meta = {"metrics": {"accuracy": 0.4},
            "gate": quality_gate("accuracy", 0.4, 0.9, serving_version="intent-a").record()}
    published = []
    announce_version(lambda topic, key, record: published.append((topic, key, record)), "chatbot", "intent-b", meta)
    assert [(t, k) for t, k, _ in published] == [("models.v1", "chatbot"), ("alerts.v1", "chatbot")]
    assert published[0][2]["payload"]["served"] is False
    alert = published[1][2]
    assert alert["type"] == "alert.model_gate_failed" and alert["source"] == "chatbot"
    assert alert["payload"] == {"service": "chatbot", "model_version": "intent-b", "metric": "accuracy",
                                "new": 0.4, "serving": 0.9, "serving_version": "intent-a",
                                "reason": meta["gate"]["reason"]}
    served = {"metrics": {}, "gate": quality_gate("accuracy", 0.95, 0.9, serving_version="intent-a").record()}
    assert gate_alert("chatbot", "intent-c", served) is None
    assert json.loads(model_event("chatbot", "intent-c", served))["payload"]["served"] is True
