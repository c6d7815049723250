"""gRPC replies as REST bodies, one convention for every route (docs/protos.md, "JSON on the wire")."""

from __future__ import annotations

import re
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message


def reply_json(message: Message) -> dict[str, Any]:
    """A gRPC reply as a REST body, as docs/protos.md ("JSON on the wire") says: field names as in the
    .proto, every scalar and list field present, int64 as JSON numbers, and enum values without their
    prefix, in lower case (``JOB_STATE_RUNNING`` -> ``"running"``)."""
    body = MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True,
        unquote_int64_if_possible=True,
    )
    _rewrite_enums(message.DESCRIPTOR, body)
    return body


def _enum_prefix(enum: EnumDescriptor) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"  # JobState -> JOB_STATE_


def _enum_value(enum: EnumDescriptor, value: Any) -> Any:
    prefix = _enum_prefix(enum)
    if isinstance(value, str) and value.startswith(prefix):
        return value[len(prefix):].lower()
    return value  # a number unknown to this build of the stubs stays a number


def _rewrite_enums(descriptor: Descriptor, body: dict[str, Any]) -> None:
    for field in descriptor.fields:
        if field.name not in body:
            continue
        value = body[field.name]
        if field.enum_type is not None:
            enum = field.enum_type
            body[field.name] = [_enum_value(enum, v) for v in value] if field.is_repeated else _enum_value(enum, value)
            continue
        message = field.message_type
        if message is None or message.full_name.startswith("google.protobuf."):
            continue  # scalars; well-known types (Timestamp, Struct, ...) have their own JSON form
        if message.GetOptions().map_entry:
            item = message.fields_by_name["value"]
            if item.enum_type is not None:
                body[field.name] = {k: _enum_value(item.enum_type, v) for k, v in value.items()}
            elif item.message_type is not None and not item.message_type.full_name.startswith("google.protobuf."):
                for v in value.values():
                    _rewrite_enums(item.message_type, v)
        elif field.is_repeated:
            for v in value:
                _rewrite_enums(message, v)
        else:
            _rewrite_enums(message, value)
