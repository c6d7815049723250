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
    __slots__ = ("session_id", "message", "user_id", "language", "user_verified", "message_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    USER_VERIFIED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    message: str
    user_id: str
    language: str
    user_verified: bool
    message_id: str
    def __init__(self, session_id: _Optional[str] = ..., message: _Optional[str] = ..., user_id: _Optional[str] = ..., language: _Optional[str] = ..., user_verified: _Optional[bool] = ..., message_id: _Optional[str] = ...) -> None: ...

class ChatResponse(_message.Message):
    __slots__ = ("reply", "intent", "entities", "handoff", "session_id", "language", "suggestions", "handoff_reason", "product_ids", "relayed_to_agent", "handoff_id", "message_id")
    REPLY_FIELD_NUMBER: _ClassVar[int]
    INTENT_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    HANDOFF_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    SUGGESTIONS_FIELD_NUMBER: _ClassVar[int]
    HANDOFF_REASON_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_IDS_FIELD_NUMBER: _ClassVar[int]
    RELAYED_TO_AGENT_FIELD_NUMBER: _ClassVar[int]
    HANDOFF_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    reply: str
    intent: Intent
    entities: _containers.RepeatedCompositeFieldContainer[Entity]
    handoff: bool
    session_id: str
    language: str
    suggestions: _containers.RepeatedScalarFieldContainer[str]
    handoff_reason: str
    product_ids: _containers.RepeatedScalarFieldContainer[str]
    relayed_to_agent: bool
    handoff_id: str
    message_id: str
    def __init__(self, reply: _Optional[str] = ..., intent: _Optional[_Union[Intent, _Mapping]] = ..., entities: _Optional[_Iterable[_Union[Entity, _Mapping]]] = ..., handoff: _Optional[bool] = ..., session_id: _Optional[str] = ..., language: _Optional[str] = ..., suggestions: _Optional[_Iterable[str]] = ..., handoff_reason: _Optional[str] = ..., product_ids: _Optional[_Iterable[str]] = ..., relayed_to_agent: _Optional[bool] = ..., handoff_id: _Optional[str] = ..., message_id: _Optional[str] = ...) -> None: ...

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

class ListHandoffsRequest(_message.Message):
    __slots__ = ("state", "limit")
    STATE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    state: str
    limit: int
    def __init__(self, state: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListHandoffsResponse(_message.Message):
    __slots__ = ("handoffs",)
    HANDOFFS_FIELD_NUMBER: _ClassVar[int]
    handoffs: _containers.RepeatedCompositeFieldContainer[Handoff]
    def __init__(self, handoffs: _Optional[_Iterable[_Union[Handoff, _Mapping]]] = ...) -> None: ...

class HandoffRequest(_message.Message):
    __slots__ = ("handoff_id", "agent", "text")
    HANDOFF_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    handoff_id: str
    agent: str
    text: str
    def __init__(self, handoff_id: _Optional[str] = ..., agent: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class Handoff(_message.Message):
    __slots__ = ("handoff_id", "session_id", "user_id", "state", "created_at", "reason", "last_intent", "language", "transcript", "claimed_by", "claimed_at", "closed_by", "closed_at", "messages", "message_count")
    HANDOFF_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LAST_INTENT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_BY_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_AT_FIELD_NUMBER: _ClassVar[int]
    CLOSED_BY_FIELD_NUMBER: _ClassVar[int]
    CLOSED_AT_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    handoff_id: str
    session_id: str
    user_id: str
    state: str
    created_at: str
    reason: str
    last_intent: str
    language: str
    transcript: _containers.RepeatedCompositeFieldContainer[Turn]
    claimed_by: str
    claimed_at: str
    closed_by: str
    closed_at: str
    messages: _containers.RepeatedCompositeFieldContainer[HandoffMessage]
    message_count: int
    def __init__(self, handoff_id: _Optional[str] = ..., session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., state: _Optional[str] = ..., created_at: _Optional[str] = ..., reason: _Optional[str] = ..., last_intent: _Optional[str] = ..., language: _Optional[str] = ..., transcript: _Optional[_Iterable[_Union[Turn, _Mapping]]] = ..., claimed_by: _Optional[str] = ..., claimed_at: _Optional[str] = ..., closed_by: _Optional[str] = ..., closed_at: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[HandoffMessage, _Mapping]]] = ..., message_count: _Optional[int] = ...) -> None: ...

class HandoffMessage(_message.Message):
    __slots__ = ("id", "role", "text", "agent", "at")
    ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    role: str
    text: str
    agent: str
    at: str
    def __init__(self, id: _Optional[str] = ..., role: _Optional[str] = ..., text: _Optional[str] = ..., agent: _Optional[str] = ..., at: _Optional[str] = ...) -> None: ...

class ConversationMessagesRequest(_message.Message):
    __slots__ = ("session_id", "user_id", "user_verified", "staff", "after")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    USER_VERIFIED_FIELD_NUMBER: _ClassVar[int]
    STAFF_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    user_verified: bool
    staff: bool
    after: int
    def __init__(self, session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., user_verified: _Optional[bool] = ..., staff: _Optional[bool] = ..., after: _Optional[int] = ...) -> None: ...

class ConversationEntry(_message.Message):
    __slots__ = ("seq", "kind", "role", "text", "at", "handoff_id")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    HANDOFF_ID_FIELD_NUMBER: _ClassVar[int]
    seq: int
    kind: str
    role: str
    text: str
    at: str
    handoff_id: str
    def __init__(self, seq: _Optional[int] = ..., kind: _Optional[str] = ..., role: _Optional[str] = ..., text: _Optional[str] = ..., at: _Optional[str] = ..., handoff_id: _Optional[str] = ...) -> None: ...

class ConversationMessagesResponse(_message.Message):
    __slots__ = ("session_id", "entries", "next", "handoff_id", "handoff_state")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    HANDOFF_ID_FIELD_NUMBER: _ClassVar[int]
    HANDOFF_STATE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    entries: _containers.RepeatedCompositeFieldContainer[ConversationEntry]
    next: int
    handoff_id: str
    handoff_state: str
    def __init__(self, session_id: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[ConversationEntry, _Mapping]]] = ..., next: _Optional[int] = ..., handoff_id: _Optional[str] = ..., handoff_state: _Optional[str] = ...) -> None: ...
