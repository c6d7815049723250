from protos import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Intent(_message.Message):
    __slots__ = ("name", "confidence")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    confidence: float
    def __init__(self, name: _Optional[str] = ..., confidence: _Optional[float] = ...) -> None: ...

class Entity(_message.Message):
    __slots__ = ("type", "value", "start", "end", "normalized")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    NORMALIZED_FIELD_NUMBER: _ClassVar[int]
    type: str
    value: str
    start: int
    end: int
    normalized: str
    def __init__(self, type: _Optional[str] = ..., value: _Optional[str] = ..., start: _Optional[int] = ..., end: _Optional[int] = ..., normalized: _Optional[str] = ...) -> None: ...

class ChatRequest(_message.Message):
    __slots__ = ("session_id", "message", "user_id", "language", "user_verified")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    USER_VERIFIED_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    message: str
    user_id: str
    language: str
    user_verified: bool
    def __init__(self, session_id: _Optional[str] = ..., message: _Optional[str] = ..., user_id: _Optional[str] = ..., language: _Optional[str] = ..., user_verified: _Optional[bool] = ...) -> None: ...

class ChatResponse(_message.Message):
    __slots__ = ("reply", "intent", "entities", "handoff", "session_id", "language", "suggestions", "handoff_reason", "product_ids")
    REPLY_FIELD_NUMBER: _ClassVar[int]
    INTENT_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    HANDOFF_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    SUGGESTIONS_FIELD_NUMBER: _ClassVar[int]
    HANDOFF_REASON_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_IDS_FIELD_NUMBER: _ClassVar[int]
    reply: str
    intent: Intent
    entities: _containers.RepeatedCompositeFieldContainer[Entity]
    handoff: bool
    session_id: str
    language: str
    suggestions: _containers.RepeatedScalarFieldContainer[str]
    handoff_reason: str
    product_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, reply: _Optional[str] = ..., intent: _Optional[_Union[Intent, _Mapping]] = ..., entities: _Optional[_Iterable[_Union[Entity, _Mapping]]] = ..., handoff: _Optional[bool] = ..., session_id: _Optional[str] = ..., language: _Optional[str] = ..., suggestions: _Optional[_Iterable[str]] = ..., handoff_reason: _Optional[str] = ..., product_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ParseRequest(_message.Message):
    __slots__ = ("text", "language")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    text: str
    language: str
    def __init__(self, text: _Optional[str] = ..., language: _Optional[str] = ...) -> None: ...

class ParseResponse(_message.Message):
    __slots__ = ("intent", "entities", "language", "intent_ranking")
    INTENT_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    INTENT_RANKING_FIELD_NUMBER: _ClassVar[int]
    intent: Intent
    entities: _containers.RepeatedCompositeFieldContainer[Entity]
    language: str
    intent_ranking: _containers.RepeatedCompositeFieldContainer[Intent]
    def __init__(self, intent: _Optional[_Union[Intent, _Mapping]] = ..., entities: _Optional[_Iterable[_Union[Entity, _Mapping]]] = ..., language: _Optional[str] = ..., intent_ranking: _Optional[_Iterable[_Union[Intent, _Mapping]]] = ...) -> None: ...
