"""The gateway's REST routes, one blueprint per backend."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

_QUERY_SCHEMAS: dict[type, dict[str, Any]] = {}


class QueryModel(BaseModel):
    """Base of the query-parameter models. flask-openapi3 reads a query model's JSON schema on every request
    (``model_json_schema()``, to find the list parameters), and pydantic builds it anew each time: about
    1 ms of CPU per request, 40% of a recommendation's cost in the gateway. The argument-less form is built
    once per class here; callers only read it. Calls with arguments (the spec's) are not cached."""

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        if args or kwargs:
            return super().model_json_schema(*args, **kwargs)
        schema = _QUERY_SCHEMAS.get(cls)
        if schema is None:
            schema = _QUERY_SCHEMAS[cls] = super().model_json_schema()
        return schema
