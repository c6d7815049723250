"""The gateway's REST routes, one blueprint per backend, and what their query models share."""

from __future__ import annotations

from typing import Any

import flask_openapi3.request as openapi_request
from flask import request
from pydantic import BaseModel, ConfigDict

_QUERY_SCHEMAS: dict[type, dict[str, Any]] = {}


class QueryModel(BaseModel):
    """Base of the query-parameter models. Frozen: one validated query may serve many requests (see
    ``install_query_memo``).

    flask-openapi3 reads a query model's JSON schema on every request (``model_json_schema()``, to find the
    list parameters), and pydantic builds it anew each time: about 1 ms of CPU per request, 40% of a
    recommendation's cost in the gateway. The argument-less form is built once per class here; callers only
    read it. Calls with arguments (the spec's) are not cached."""

    model_config = ConfigDict(frozen=True)

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        if args or kwargs:
            return super().model_json_schema(*args, **kwargs)
        schema = _QUERY_SCHEMAS.get(cls)
        if schema is None:
            schema = _QUERY_SCHEMAS[cls] = super().model_json_schema()
        return schema


# ------------------------------------------------------------------ validated queries, remembered

QUERY_MEMO_ENTRIES = 4096  # distinct (model, query string) pairs remembered; when full the memo starts over
QUERY_MEMO_MAX_BYTES = 512  # longer query strings (long exclusion lists) are validated every time
_query_memo: dict[tuple[type, bytes], BaseModel] = {}
_validate_query = openapi_request._validate_query  # flask-openapi3's own (pinned in pyproject.toml)


def _remembered_query(query: type[BaseModel], func_kwargs: dict) -> None:
    """flask-openapi3's query validation, remembered per query string for ``QueryModel``s.

    Most requests of a route repeat a few query strings (a shop's pages ask the same way every time), and
    flask-openapi3 walks every field of the model and pydantic validates the result on each: a fifth of a
    cached recommendation's cost in the gateway. A string seen before gets the model validated then (frozen,
    so sharing it is safe); a new or invalid one goes through flask-openapi3 as always, so errors are the
    same 400s."""
    raw = request.query_string
    if not (isinstance(query, type) and issubclass(query, QueryModel)) or len(raw) > QUERY_MEMO_MAX_BYTES:
        _validate_query(query, func_kwargs)
        return
    key = (query, raw)
    model = _query_memo.get(key)
    if model is None:
        _validate_query(query, func_kwargs)  # raises pydantic's ValidationError on bad input: not remembered
        if len(_query_memo) >= QUERY_MEMO_ENTRIES:
            _query_memo.clear()
        _query_memo[key] = func_kwargs["query"]
        return
    func_kwargs["query"] = model


def install_query_memo() -> None:
    """Route flask-openapi3's query validation through ``_remembered_query`` (idempotent)."""
    openapi_request._validate_query = _remembered_query
