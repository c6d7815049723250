"""A/B experiments on recommendations and the recommendations' attribution report.

- ``POST /v1/admin/experiments`` (admin) starts an experiment of two arms (a strategy each, optionally a stored
  model version), ``GET /v1/admin/experiments[/{id}]`` lists them and reports one, ``POST …/{id}/stop`` ends it.
  At most one runs at a time. A shopper's arm is a stable hash of (experiment, user): ``arm_for``, used by the
  recommendation route.
- ``GET /v1/analytics/recommendations`` (analyst): impressions, click-through, add-to-cart rate and conversion
  per strategy and model version over a window.

The definitions and counters are in Redis (services/common/attribution.py); the counters are the recommender's
projection of ``recommendations.served.v1`` and the interactions that carry a ``recommendation_id``.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
from flask import current_app
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, ConfigDict, Field

from gateway.problems import ApiProblem, Problem, from_grpc_error
from gateway.routes import QueryModel
from protos import common_pb2
from services.common import attribution
from services.common.attribution import Arm, ExperimentError, ExperimentStore
from services.common.recommendations import STRATEGIES

experiments = APIBlueprint(
    "experiments", __name__, url_prefix="/v1",
    abp_tags=[Tag(name="experiments", description="A/B experiments on recommendations and their attribution "
                                                  "(impressions, click-through, conversion)")],
)

ARM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
# How long the gateway keeps its copy of the running experiment: a new or stopped one applies within this.
RUNNING_CACHE_SECONDS = 1.0


# ------------------------------------------------------------------ the shopper's arm


@dataclass(frozen=True)
class ShopperArm:
    experiment_id: str
    name: str
    strategy: str
    model_version: str | None

    def answer(self) -> dict[str, str]:
        return {"id": self.experiment_id, "arm": self.name}


_running: dict[int, tuple[float, dict[str, Any] | None]] = {}
_running_lock = threading.Lock()


def running_experiment() -> dict[str, Any] | None:
    """The running experiment, read from Redis at most once a second per gateway process."""
    client = current_app.extensions["shopai.redis"]
    now = time.monotonic()
    with _running_lock:
        cached = _running.get(id(client))
    if cached is not None and now - cached[0] < RUNNING_CACHE_SECONDS:
        return cached[1]
    found = ExperimentStore(client).running()
    with _running_lock:
        _running[id(client)] = (now, found)
    return found


def forget_running() -> None:
    """After a change made here, the next request reads the running experiment again."""
    with _running_lock:
        _running.pop(id(current_app.extensions["shopai.redis"]), None)


def arm_for(user_id: str) -> ShopperArm | None:
    """The running experiment's arm of this shopper; None outside an experiment (or when Redis cannot say:
    the answer is then the one the request asked for)."""
    try:
        definition = running_experiment()
    except Exception:  # noqa: BLE001 - Redis away: answer without the experiment rather than fail
        return None
    if definition is None or not user_id:
        return None
    arm = definition["arms"][attribution.assign_arm(definition["experiment_id"], user_id, definition["split"])]
    return ShopperArm(definition["experiment_id"], arm["name"], arm["strategy"], arm.get("model_version"))


# ------------------------------------------------------------------ models


class ArmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=32, description="e.g. A; letters, digits, _ and -")
    strategy: str = Field(max_length=32, description=f"one of {', '.join(STRATEGIES)}")
    model_version: str | None = Field(None, max_length=200, description="a stored recommender version (GET "
                                                                        "/v1/admin/models); null: the serving one")


class ExperimentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    arms: list[ArmIn] = Field(max_length=10, description="exactly two arms")
    split: list[int] | None = Field(None, description="each arm's percentage of shoppers, summing to 100; "
                                                      "default 50/50")


class ArmOut(BaseModel):
    name: str
    strategy: str
    model_version: str | None = None


class Experiment(BaseModel):
    experiment_id: str
    name: str
    arms: list[ArmOut]
    split: list[int]
    status: str = Field(description="running | stopped")
    started_at: str = Field(description="RFC 3339")
    stopped_at: str | None = Field(None, description="RFC 3339; null while running")


class ExperimentList(BaseModel):
    experiments: list[Experiment] = Field(description="newest first")


class ArmReport(BaseModel):
    name: str
    users: int = Field(description="shoppers served by the arm (a HyperLogLog count, within ~1 %)")
    impressions: int = Field(description="answers served")
    clicks: int = Field(description="answers with at least one click on their products")
    add_to_cart: int
    purchases: int
    click_through: float
    add_to_cart_rate: float
    conversion: float = Field(description="answers with a purchase per answer")


class Report(BaseModel):
    arms: list[ArmReport]
    metric: str = Field(description="click_through")
    unit: str = Field(description="impression: the interval treats answers as independent trials")
    difference: float | None = Field(None, description="second arm's click-through minus the first's; null "
                                                       "until both arms served")
    ci95: list[float] | None = Field(None, description="95 % interval of the difference (two-proportion normal "
                                                       "approximation)")
    better: str | None = Field(None, description="the arm whose click-through is higher when the interval "
                                                 "excludes 0; null otherwise")


class ExperimentWithReport(Experiment):
    report: Report


class ExperimentPath(BaseModel):
    experiment_id: str = Field(min_length=1, max_length=64)


class StrategyRow(BaseModel):
    strategy: str
    model_version: str
    impressions: int
    clicks: int
    add_to_cart: int
    purchases: int
    click_through: float
    add_to_cart_rate: float
    conversion: float


class RecommendationAnalytics(BaseModel):
    since: str
    until: str
    rows: list[StrategyRow] = Field(description="per strategy and model version, most impressions first")


class WindowQuery(QueryModel):
    since: datetime | None = Field(None, description="RFC 3339; default: 7 days before `until`")
    until: datetime | None = Field(None, description="RFC 3339; default: now")


# ------------------------------------------------------------------ routes


def _store() -> ExperimentStore:
    return ExperimentStore(current_app.extensions["shopai.redis"])


def _stored_versions() -> set[str]:
    stub = current_app.extensions["shopai.backends"].stub("recommender")
    reply = stub.ListModels(common_pb2.ListModelsRequest(), timeout=current_app.config["GRPC_DEADLINE"])
    return {v.model_version for v in reply.versions if v.stored}


@experiments.post("/admin/experiments", responses={201: Experiment, 400: Problem, 409: Problem, 422: Problem,
                                                   503: Problem})
def create_experiment(body: ExperimentIn) -> Any:
    """Start an A/B experiment on the personal recommendations (GET /v1/users/{user_id}/recommendations
    without a `strategy`): two arms, each a strategy and optionally a stored model version; each shopper is
    served one arm, chosen by a stable hash of the experiment and their id, in the proportions of `split`.

    422 for one arm (or more than two), an unknown strategy or version, a split that does not sum to 100;
    409 while another experiment runs. Needs an API key with the `admin` role."""
    arms = [Arm(a.name, a.strategy, a.model_version or None) for a in body.arms]
    try:
        split = attribution.validate_experiment(arms, body.split, STRATEGIES)
        for arm in arms:
            if not ARM_NAME.match(arm.name):
                raise ExperimentError(f"arm name {arm.name!r}: letters, digits, _ and - (at most 32)")
    except ExperimentError as exc:
        raise ApiProblem(422, str(exc), slug="invalid-experiment") from None
    wanted = {a.model_version for a in arms if a.model_version}
    if wanted:
        try:
            stored = _stored_versions()
        except grpc.RpcError as exc:
            return from_grpc_error(exc, "recommender")
        unknown = sorted(wanted - stored)
        if unknown:
            raise ApiProblem(422, f"unknown recommender model version {unknown[0]!r}; stored: "
                                  f"{', '.join(sorted(stored)) or 'none'} (GET /v1/admin/models)",
                             slug="invalid-experiment")
    try:
        definition = _store().create(body.name, arms, split)
    except ExperimentError as exc:
        raise ApiProblem(409, str(exc), slug="experiment-running") from None
    forget_running()
    return definition, 201, {"Location": f"/v1/admin/experiments/{definition['experiment_id']}"}


@experiments.get("/admin/experiments", responses={200: ExperimentList})
def list_experiments() -> tuple[dict, int]:
    """Every experiment, newest first. Needs an API key with the `admin` role."""
    return {"experiments": _store().all()}, 200


def _found(experiment_id: str) -> dict[str, Any]:
    definition = _store().get(experiment_id)
    if definition is None:
        raise ApiProblem(404, f"no experiment {experiment_id!r}", slug="unknown-experiment")
    return definition


@experiments.get("/admin/experiments/<experiment_id>", responses={200: ExperimentWithReport, 400: Problem, 404: Problem})
def get_experiment(path: ExperimentPath) -> tuple[dict, int]:
    """One experiment and its report: per arm the shoppers, answers served, clicks, add-to-carts and
    purchases (answers with at least one), and the difference of click-through (second arm minus first)
    with its 95 % interval (two-proportion normal approximation, per answer), and the better arm when the
    interval excludes 0. Needs an API key with the `admin` role."""
    definition = _found(path.experiment_id)
    return {**definition, "report": _store().report(definition)}, 200


@experiments.post("/admin/experiments/<experiment_id>/stop", responses={200: Experiment, 400: Problem,
                                                                         404: Problem})
def stop_experiment(path: ExperimentPath) -> tuple[dict, int]:
    """Stop an experiment: its shoppers get the strategy they ask for again; the report stays. Stopping a
    stopped one changes nothing. Needs an API key with the `admin` role."""
    definition = _store().stop(path.experiment_id)
    if definition is None:
        raise ApiProblem(404, f"no experiment {path.experiment_id!r}", slug="unknown-experiment")
    forget_running()
    return definition, 200


@experiments.get("/analytics/recommendations", responses={200: RecommendationAnalytics, 400: Problem})
def recommendation_analytics(query: WindowQuery) -> tuple[dict, int]:
    """Recommendation answers served in a window (whole hours) and what shoppers did with them, per
    strategy and model version: impressions, clicks, add-to-carts and purchases (answers with at least one
    event carrying their `recommendation_id`), click-through, add-to-cart rate and conversion. Needs an API
    key with the `analyst` role."""
    until = _utc(query.until) if query.until else datetime.now(UTC)
    since = _utc(query.since) if query.since else until - attribution.DEFAULT_WINDOW
    if since >= until:
        raise ApiProblem(400, "since must be before until")
    if until - since > attribution.MAX_WINDOW:
        raise ApiProblem(400, f"the window is at most {attribution.MAX_WINDOW.days} days")
    totals = attribution.read_counters(current_app.extensions["shopai.redis"], since, until)
    return {"since": _text(since), "until": _text(until), "rows": attribution.by_strategy(totals)}, 200


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ApiProblem(400, "since and until need a time zone (e.g. a trailing Z)")
    return when.astimezone(UTC)


def _text(when: datetime) -> str:
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")
