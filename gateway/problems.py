"""RFC 9457 problem details (``application/problem+json``) for every error the gateway returns."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

import grpc
from flask import Response
from pydantic import BaseModel, ConfigDict, ValidationError

PROBLEM_TYPE = "https://shopai.dev/problems/"

GRPC_TO_HTTP: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class Problem(BaseModel):
    """The body of every error response."""

    # Error responses are sent as application/problem+json: the spec must say so (flask-openapi3 declares
    # every response model as application/json, which stays listed too).
    model_config = ConfigDict(openapi_extra={  # type: ignore[typeddict-unknown-key]
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    })

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


class ApiProblem(Exception):
    """Raise in a view to answer with a problem document."""

    def __init__(self, status: int, detail: str, slug: str | None = None, errors: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug
        self.errors = errors
        self.headers = headers or {}


def problem_response(status: int, detail: str, slug: str | None = None,
                     errors: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None) -> Response:
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Client Closed Request"
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + (slug or title.lower().replace(" ", "-")),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body, ensure_ascii=False), status=status, mimetype="application/problem+json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def from_grpc_error(error: grpc.RpcError, service: str) -> Response:
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    status = GRPC_TO_HTTP.get(code, 502)
    details = error.details() if hasattr(error, "details") else str(error)
    if code is grpc.StatusCode.UNAVAILABLE:
        details = f"the {service} service is unavailable: {details}"
    elif code is grpc.StatusCode.DEADLINE_EXCEEDED:
        details = f"the {service} service did not answer in time"
    elif status == 502:
        details = f"the {service} service failed: {details}"
    # A service that asks to be asked again later (e.g. a report still being computed) says when.
    trailing = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    retry_after = dict(trailing or ()).get("retry-after")
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return problem_response(status, details or code.name, slug=code.name.lower().replace("_", "-"),
                            headers=headers)


def from_validation_error(error: ValidationError) -> Response:
    errors = [
        {"location": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", ""), "type": e.get("type", "")}
        for e in error.errors(include_url=False, include_input=False)
    ]
    detail = "; ".join(f"{e['location'] or 'body'}: {e['message']}" for e in errors) or "invalid request"
    return problem_response(400, detail, slug="validation-error", errors=errors)


def require_json_object(example: str, expected: str = "JSON with Content-Type: application/json") -> None:
    """Check the current request's body is a JSON object, with a 400 that says what is wrong (garbage, a
    missing content type, an empty body, too deep, an array or a string) before pydantic validation runs:
    flask-openapi3 reads bodies with ``get_json(silent=True)``, which turns all of these into ``None``."""
    import json

    from flask import request

    if not request.is_json:
        raise ApiProblem(400, f"the body must be {expected}, e.g. {example}", slug="invalid-body")
    if not request.get_data(cache=True):
        raise ApiProblem(400, f"the body is empty; expected a JSON object, e.g. {example}", slug="invalid-body")
    try:
        body = json.loads(request.get_data(cache=True))
    except RecursionError:
        raise ApiProblem(400, "the body is not valid JSON: it is nested too deeply", slug="invalid-body") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ApiProblem(400, f"the body is not valid JSON (UTF-8): {exc}", slug="invalid-body") from None
    if not isinstance(body, dict):
        kind = {str: "a string", list: "an array", bool: "a boolean", int: "a number", float: "a number"}.get(
            type(body), "null")
        raise ApiProblem(400, f"the body must be a JSON object, e.g. {example}; got {kind}", slug="invalid-body")
