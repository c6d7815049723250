"""The model registry and the quality gate through REST, on the forecasting service (it trains in seconds):
train, a worse model kept back with the reason and an alert, force_serve, pin an older version without a
restart, and the pin kept across one."""

from __future__ import annotations

import pytest

from gateway.app import close_app, create_app
from services.common import topics
from services.common.bus import EventPublisher
from services.forecasting.store import ForecastKeys as K
from tests.integration.test_forecasting_service import catalog, shop_history
from tests.integration.test_vertical_slice import read_topic
from tests.support import assert_problem, staff, wait_for

pytestmark = pytest.mark.integration
# One week chosen on one fold: worse, on the gate's six 28-day folds, than the models chosen on those folds.
WORSE = {"horizon": "7", "folds": "1"}


class Shop:
    """The forecasting service with the integration shop's history, and a gateway in front of it."""

    def __init__(self, settings, start_service_with) -> None:
        self.settings = settings
        self.start_service_with = start_service_with
        self.app = None
        self.start()

    def start(self) -> None:
        self.service = self.start_service_with(self.settings, "forecasting", SHOPAI_FORECAST_AUTO_TRAIN="false",
                                               SHOPAI_RETRAIN_CHECK_SECONDS="1")
        self.settings.forecasting.grpc_port = self.service.grpc_port
        self.app = create_app(self.settings)
        self.client = staff(self.app.test_client())

    def stop(self) -> None:
        close_app(self.app)
        assert self.service.stop() == 0, self.service.log()

    def train(self, params: dict[str, str] | None = None) -> dict:
        reply = self.client.post("/v1/admin/train/forecasting", json={"params": params or {}})
        assert reply.status_code == 202, reply.json

        def job() -> dict:
            answer = self.client.get(reply.headers["Location"])
            # A service busy training on two loaded cores may miss the gateway's deadline for a poll (504), or be
            # briefly unavailable (503): polled again, as a shop's client would. Anything else is an answer.
            if answer.status_code in (503, 504):
                return {"state": f"unknown ({answer.status_code})"}
            assert answer.status_code == 200, answer.json
            return answer.json

        wait_for(lambda: job()["state"] in ("succeeded", "failed"), 240, interval=1, what="training")
        done = job()
        assert done["state"] == "succeeded", done["message"]
        return done

    def answered_by(self) -> str:
        def answered():
            reply = self.client.get("/v1/forecasts/f1?horizon=7")
            if reply.status_code == 504:  # a service starting on loaded cores may miss one deadline: ask again
                return None
            # Just after a new version is served its forecast may still be being computed: a 503 with Retry-After,
            # or the gateway's last answer marked stale (the previous version's) meanwhile.
            assert reply.status_code in (200, 503) and (reply.status_code == 200 or "Retry-After" in reply.headers), \
                reply.json
            fresh = reply.status_code == 200 and "X-ShopAI-Degraded" not in reply.headers
            return reply.json["model_version"] if fresh else None

        return wait_for(answered, 60, interval=0.5, what="the forecast of f1")

    def models(self) -> list[dict]:
        reply = self.client.get("/v1/admin/models?service=forecasting")
        assert reply.status_code == 200, reply.json
        assert reply.json["unavailable"] == []
        return reply.json["models"]


@pytest.fixture
def shop(settings, start_service_with, redis_client):
    shop = Shop(settings, start_service_with)
    publisher = EventPublisher(settings)
    publisher.publish(catalog())
    events, _ = shop_history()
    publisher.publish(events)
    expected = {t: sum(1 for e in events if e.type == t) for t in {e.type for e in events}}
    wait_for(lambda: all(int(redis_client.hget(K.stats, t) or 0) == n for t, n in expected.items()), 60,
             what="every event projected")
    publisher.close()
    yield shop
    close_app(shop.app)


def test_a_worse_model_is_kept_back_and_versions_are_pinned_through_rest(shop):
    assert shop.answered_by() == "untrained"
    first = shop.train()
    assert first["metrics"]["served"] == 1.0 and "nothing was serving" in first["message"]
    assert shop.answered_by() == first["model_version"]

    # A model chosen on one week is worse on the same folds: stored, not served, and the job says why.
    worse = shop.train(WORSE)
    metrics = worse["metrics"]
    assert metrics["served"] == 0.0 and metrics["gate_mean_mase"] > metrics["gate_serving_mean_mase"], metrics
    assert "kept but not served" in worse["message"] and first["model_version"] in worse["message"]
    assert f"{metrics['gate_mean_mase']:.4f} against {metrics['gate_serving_mean_mase']:.4f}" in worse["message"]
    assert shop.answered_by() == first["model_version"]
    alerts = [a for a in read_topic(shop.settings.kafka_bootstrap_servers, topics.ALERTS, 1, timeout=30)
              if a["type"] == "alert.model_gate_failed"]
    assert len(alerts) == 1 and alerts[0]["payload"]["model_version"] == worse["model_version"]
    assert alerts[0]["payload"]["serving_version"] == first["model_version"]
    assert alerts[0]["payload"]["metric"] == "mean_mase"

    # force_serve serves the same recipe whatever the figures.
    forced = shop.train({**WORSE, "force_serve": "true"})
    assert forced["metrics"]["served"] == 1.0 and "force_serve=true" in forced["message"]
    assert forced["metrics"]["gate_mean_mase"] > forced["metrics"]["gate_serving_mean_mase"]
    assert shop.answered_by() == forced["model_version"]

    listed = shop.models()
    assert [(m["model_version"], m["serving"], m["gate"]) for m in listed] == [
        (forced["model_version"], True, "forced"), (worse["model_version"], False, "refused"),
        (first["model_version"], False, "served")]
    assert listed[1]["metrics"]["served"] == 0.0 and "kept but not served" in listed[1]["gate_reason"]
    assert all(m["trained_at"] and m["stored"] for m in listed)
    everyone = shop.client.get("/v1/admin/models").json  # the other services are not running here
    assert [m for m in everyone["models"] if m["service"] == "forecasting"] == listed
    assert "forecasting" not in {u["service"] for u in everyone["unavailable"]}

    # Roll back to the first version: the running service answers with it at once.
    pinned = shop.client.post(f"/v1/admin/models/forecasting/{first['model_version']}/serve")
    assert pinned.status_code == 200, pinned.json
    assert pinned.json["model_version"] == first["model_version"] and pinned.json["serving"]
    assert shop.answered_by() == first["model_version"]
    assert [m["model_version"] for m in shop.models() if m["serving"]] == [first["model_version"]]

    assert_problem(shop.client.post("/v1/admin/models/forecasting/forecast-19990101T000000Z-000000/serve"), 404)
    assert_problem(shop.client.post(f"/v1/admin/models/nope/{first['model_version']}/serve"), 404)
    assert_problem(shop.client.post("/v1/admin/models/forecasting/.CURRENT/serve"), 400)
    assert_problem(shop.client.get("/v1/admin/models?service=nope"), 404)

    # The pin is the registry's current version: a restarted service still answers with it.
    shop.stop()
    shop.start()
    assert shop.answered_by() == first["model_version"]
    assert [m["model_version"] for m in shop.models() if m["serving"]] == [first["model_version"]]
