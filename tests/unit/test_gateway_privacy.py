"""The erasure routes on their own (a recording publisher and vault, the real Redis): DELETE /v1/users/{id}
publishes user.erased, shreds the vault key, drops the cached answers, and the status route follows the
services' parts; POST /v1/events refuses user.* events."""

from __future__ import annotations

import pytest

from gateway.app import close_app, create_app
from services.common import privacy
from services.common.bus import PublishError
from services.common.settings import Settings
from services.recommender.store import RecommenderKeys
from tests.support import assert_problem, free_port

PRIVACY_KEY = "a-long-test-key-0123456789"
INGEST_KEY = "another-long-test-key-987654321"


class RecordingPublisher:
    def __init__(self) -> None:
        self.events: list = []
        self.fail = False

    def publish(self, events) -> int:
        if self.fail:
            raise PublishError("broker away")
        self.events.extend(events)
        return len(events)


class RecordingVault:
    def __init__(self) -> None:
        self.destroyed: list[str] = []

    def destroy(self, user_id: str) -> bool:
        self.destroyed.append(user_id)
        return user_id == "u-known"


@pytest.fixture
def app(redis_client, redis_url):
    settings = Settings(gateway_api_keys=f"{PRIVACY_KEY}:privacy,{INGEST_KEY}:ingest", env="prod", redis_url=redis_url,
                        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}", log_json=False)
    app = create_app(settings)
    originals = {name: app.extensions.get(name) for name in ("shopai.publisher", "shopai.vault")}
    publisher = RecordingPublisher()
    app.extensions["shopai.publisher"] = lambda: publisher
    app.extensions["shopai.vault"] = RecordingVault()
    yield app
    app.extensions.update(originals)
    close_app(app)


def erase(client, user: str, **query):
    return client.delete(f"/v1/users/{user}", query_string=query, headers={"X-API-Key": PRIVACY_KEY})


def status(client, url: str):
    return client.get(url, headers={"X-API-Key": PRIVACY_KEY})


@pytest.mark.integration
def test_an_erasure_publishes_user_erased_shreds_the_key_and_drops_cached_answers(app, redis_client):
    client = app.test_client()
    redis_client.hset(RecommenderKeys.answers("u-known"), "f", "a cached answer")
    reply = erase(client, "u-known", reason="shopper request")
    assert reply.status_code == 202, reply.json
    body = reply.json
    assert body["user_id"] == "u-known" and body["status"] == "pending" and body["vault_key_destroyed"] is True
    assert reply.headers["Location"] == body["status_url"] == f"/v1/privacy/erasures/{body['erasure_id']}"
    (event,) = app.extensions["shopai.publisher"]().events
    assert event.type == "user.erased" and event.topic == "privacy.v1" and event.event_id == body["erasure_id"]
    assert event.payload["user_id"] == "u-known" and event.payload["reason"] == "shopper request"
    assert event.payload["requested_by"]  # the key's id, never the key
    assert PRIVACY_KEY not in event.payload["requested_by"]
    assert app.extensions["shopai.vault"].destroyed == ["u-known"]
    assert not redis_client.exists(RecommenderKeys.answers("u-known"))

    state = status(client, body["status_url"])
    assert state.status_code == 200 and state.json["status"] == "pending" and state.json["requested_at"]
    assert not any(part["done"] for part in state.json["services"].values())
    # each service marks its part as its consumer applies the erasure
    for part in privacy.ERASURE_PARTS:
        redis_client.hset(privacy.status_key(body["erasure_id"]), part, "2026-12-07T02:00:00Z")
    state = status(client, body["status_url"]).json
    assert state["status"] == "done" and set(state["services"]) == {"recommender", "chatbot", "vision", "forecasting"}


@pytest.mark.integration
def test_an_unknown_or_repeated_erasure_is_accepted_and_the_same(app):
    client = app.test_client()
    first = erase(client, "u-never-seen")
    again = erase(client, "u-never-seen")
    assert first.status_code == again.status_code == 202
    assert first.json["vault_key_destroyed"] is False
    assert first.json["erasure_id"] == again.json["erasure_id"]  # one erasure, applied once by the services


@pytest.mark.integration
def test_bad_requests_are_clear_problems(app):
    client = app.test_client()
    assert_problem(erase(client, "%01bad"), 400)
    assert_problem(erase(client, "u" * 129), 400)
    assert_problem(erase(client, "u1", nonsense="1"), 400)
    assert_problem(status(client, "/v1/privacy/erasures/not-an-id"), 400)
    assert_problem(status(client, "/v1/privacy/erasures/5f1d3c2e-8a47-4b6e-9f0a-2c7e1d4b9a63"), 404)
    assert_problem(client.delete("/v1/users/u1"), 401)  # the privacy role is needed
    app.extensions["shopai.publisher"]().fail = True
    assert_problem(erase(client, "u1"), 503)


@pytest.mark.integration
def test_user_events_cannot_be_posted(app):
    forged = {"event_id": "7d0c2a4e-5b1f-4a7e-9a53-0f5c2f7b9e12", "type": "user.erased", "schema_version": 1,
              "occurred_at": "2026-11-28T10:00:00Z", "payload": {"user_id": "u1"}}
    body = assert_problem(app.test_client().post("/v1/events", json=forged, headers={"X-API-Key": INGEST_KEY}), 400)
    assert "DELETE /v1/users/{user_id} only" in body["errors"][0]["reason"]
    assert app.extensions["shopai.publisher"]().events == []
