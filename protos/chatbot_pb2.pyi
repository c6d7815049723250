from protos import common_pb2 as _common_pb2
from protos import events_pb2 as _events_pb2
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

class UserDataRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class UserDataResponse(_message.Message):
    __slots__ = ("user_id", "orders", "conversations")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    CONVERSATIONS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    orders: _containers.RepeatedCompositeFieldContainer[OrderRecord]
    conversations: _containers.RepeatedCompositeFieldContainer[Conversation]
    def __init__(self, user_id: _Optional[str] = ..., orders: _Optional[_Iterable[_Union[OrderRecord, _Mapping]]] = ..., conversations: _Optional[_Iterable[_Union[Conversation, _Mapping]]] = ...) -> None: ...

class OrderRecord(_message.Message):
    __slots__ = ("order_id", "status", "total", "currency", "carrier", "tracking_no", "expected_delivery", "reason", "lines", "history", "sealed_personal")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    CARRIER_FIELD_NUMBER: _ClassVar[int]
    TRACKING_NO_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_DELIVERY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    SEALED_PERSONAL_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    status: str
    total: float
    currency: str
    carrier: str
    tracking_no: str
    expected_delivery: str
    reason: str
    lines: _containers.RepeatedCompositeFieldContainer[_events_pb2.OrderLine]
    history: _containers.RepeatedCompositeFieldContainer[StatusChange]
    sealed_personal: _events_pb2.SealedPersonal
    def __init__(self, order_id: _Optional[str] = ..., status: _Optional[str] = ..., total: _Optional[float] = ..., currency: _Optional[str] = ..., carrier: _Optional[str] = ..., tracking_no: _Optional[str] = ..., expected_delivery: _Optional[str] = ..., reason: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[_events_pb2.OrderLine, _Mapping]]] = ..., history: _Optional[_Iterable[_Union[StatusChange, _Mapping]]] = ..., sealed_personal: _Optional[_Union[_events_pb2.SealedPersonal, _Mapping]] = ...) -> None: ...

class StatusChange(_message.Message):
    __slots__ = ("status", "at")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    status: str
    at: str
    def __init__(self, status: _Optional[str] = ..., at: _Optional[str] = ...) -> None: ...

class Conversation(_message.Message):
    __slots__ = ("session_id", "language", "turns")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    language: str
    turns: _containers.RepeatedCompositeFieldContainer[Turn]
    def __init__(self, session_id: _Optional[str] = ..., language: _Optional[str] = ..., turns: _Optional[_Iterable[_Union[Turn, _Mapping]]] = ...) -> None: ...

class Turn(_message.Message):
    __slots__ = ("role", "text")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    role: str
    text: str
    def __init__(self, role: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...
