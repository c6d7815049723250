"""GET /v1/users/{user_id}/export: a copy of everything ShopAI holds about one shopper (GDPR arts. 15 and 20,
PIPL art. 45), as one JSON document.

Each service is asked what it keeps: the recommender's profile, the forecasting service's behaviour profile,
the assistant's orders and conversations, the vision service's authenticity scans sent under the shopper's id. The personal fields of the orders are opened here, with the
shopper's key from the vault (services/common/vault.py); once the key was destroyed by an erasure they are
gone and the export says so (``personal: null``). A service that knows nothing of the shopper adds an empty
part; a service that cannot answer makes the whole export fail (503/504), because a partial copy would
read as a complete one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import grpc
from flask import current_app
from flask_openapi3 import APIBlueprint, Tag
from google.protobuf.message import Message
from pydantic import BaseModel, Field

from gateway.json import reply_json
from gateway.problems import ApiProblem, Problem
from protos import chatbot_pb2, forecasting_pb2, recommender_pb2, vision_pb2
from services.common.events import format_time
from services.common.logging import get_logger
from services.common.vault import VAULT_ERRORS, PersonalDataVault, VaultError

log = get_logger(__name__)

export = APIBlueprint("export", __name__, url_prefix="/v1",
                      abp_tags=[Tag(name="privacy", description="A shopper's data: export and erasure")])


class ExportPath(BaseModel):
    user_id: str = Field(min_length=1, max_length=128)


class ExportedOrder(BaseModel):
    order_id: str
    status: str
    total: float
    currency: str
    carrier: str
    tracking_no: str
    expected_delivery: str
    reason: str
    lines: list[dict[str, Any]]
    history: list[dict[str, str]] = Field(description="status changes: {status, at (RFC 3339)}")
    personal: dict[str, Any] | None = Field(
        description="customer_name, email, phone, shipping_address as the order system sent them; null when it "
                    "sent none or they were shredded by an erasure")


class UserExport(BaseModel):
    user_id: str
    exported_at: str = Field(description="RFC 3339")
    recommender_profile: dict[str, Any] = Field(description="GET /v1/users/{id}/profile; {} when never seen")
    behaviour_profile: dict[str, Any] = Field(description="GET /v1/analytics/users/{id}; {} when never seen")
    orders: list[ExportedOrder] = Field(description="newest first")
    conversations: list[dict[str, Any]] = Field(description="the assistant's conversations still kept: "
                                                            "{session_id, language, turns: [{role, text}]}")
    scans: list[dict[str, Any]] = Field(description="authenticity-code scans sent with scanned_by = the user id: "
                                                    "{serial, product_id, scanned_at, location, place, counted}")


def _ask(service: str, call: Callable[[], Message]) -> Message | None:
    """A backend's answer, None when it does not know the shopper; any other failure fails the export."""
    try:
        return call()
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
        if code is grpc.StatusCode.NOT_FOUND:
            return None
        if code is grpc.StatusCode.INVALID_ARGUMENT:
            raise ApiProblem(400, exc.details() or "the user id was refused") from exc
        status = 504 if code is grpc.StatusCode.DEADLINE_EXCEEDED else 503
        raise ApiProblem(status, f"the {service} service could not answer ({code.name}); an export must be "
                                 f"complete, so none is given: try again") from exc


def _personal(vault: PersonalDataVault, user_id: str, record: chatbot_pb2.OrderRecord) -> dict[str, Any] | None:
    if not record.HasField("sealed_personal"):
        return None
    sealed = reply_json(record.sealed_personal)
    try:
        return vault.open(user_id, sealed)
    except VaultError as exc:  # damaged or not this shopper's: nothing readable to give
        log.warning("export_unreadable_personal_fields", order_id=record.order_id, error=str(exc))
        return None
    except VAULT_ERRORS as exc:
        raise ApiProblem(503, f"the personal-data vault is unavailable: {exc}") from exc


def _order(vault: PersonalDataVault, user_id: str, record: chatbot_pb2.OrderRecord) -> dict[str, Any]:
    body = reply_json(record)
    body.pop("sealed_personal", None)
    return {**body, "personal": _personal(vault, user_id, record)}


@export.get("/users/<user_id>/export",
            responses={200: UserExport, 400: Problem, 401: Problem, 404: Problem, 503: Problem, 504: Problem})
def export_user(path: ExportPath) -> tuple[dict, int, dict[str, str]]:
    """Everything ShopAI holds about the shopper, as JSON: profiles, orders with their personal fields,
    conversations and authenticity scans. The shopper's own token or a key with the `privacy` role. 503 when a service cannot
    answer: an export is complete or not given."""
    stubs, deadline = current_app.extensions["shopai.backends"].stubs, current_app.config["GRPC_DEADLINE"]
    vault: PersonalDataVault = current_app.extensions["shopai.vault"]
    user_id = path.user_id
    profile = _ask("recommender", lambda: stubs["recommender"].UserProfile(
        recommender_pb2.UserProfileRequest(user_id=user_id), timeout=deadline))
    behaviour = _ask("forecasting", lambda: stubs["forecasting"].UserProfile(
        forecasting_pb2.UserProfileRequest(user_id=user_id), timeout=deadline))
    held = _ask("chatbot", lambda: stubs["chatbot"].UserData(
        chatbot_pb2.UserDataRequest(user_id=user_id), timeout=deadline))
    scanned = _ask("vision", lambda: stubs["vision"].ScansBy(
        vision_pb2.ScansByRequest(scanned_by=user_id), timeout=deadline))
    body = {
        "user_id": user_id,
        "exported_at": format_time(datetime.now(UTC)),
        "recommender_profile": reply_json(profile) if profile is not None else {},
        "behaviour_profile": reply_json(behaviour) if behaviour is not None else {},
        "orders": [_order(vault, user_id, o) for o in held.orders] if held is not None else [],
        "conversations": [reply_json(c) for c in held.conversations] if held is not None else [],
        "scans": [reply_json(scan) for scan in scanned.scans] if scanned is not None else [],
    }
    return body, 200, {"Cache-Control": "no-store"}  # personal data: never kept by a proxy or browser cache
