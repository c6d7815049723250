import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Envelope(_message.Message):
    __slots__ = ("event_id", "type", "schema_version", "occurred_at", "source", "payload")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    type: str
    schema_version: int
    occurred_at: _timestamp_pb2.Timestamp
    source: str
    payload: _struct_pb2.Struct
    def __init__(self, event_id: _Optional[str] = ..., type: _Optional[str] = ..., schema_version: _Optional[int] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[str] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Product(_message.Message):
    __slots__ = ("product_id", "title", "title_zh", "description", "description_zh", "category", "brand", "price", "currency", "tags", "image_url", "image_base64", "attributes", "cost")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    TITLE_ZH_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_ZH_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    BRAND_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_BASE64_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    title: str
    title_zh: str
    description: str
    description_zh: str
    category: str
    brand: str
    price: float
    currency: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    image_url: str
    image_base64: str
    attributes: _containers.ScalarMap[str, str]
    cost: float
    def __init__(self, product_id: _Optional[str] = ..., title: _Optional[str] = ..., title_zh: _Optional[str] = ..., description: _Optional[str] = ..., description_zh: _Optional[str] = ..., category: _Optional[str] = ..., brand: _Optional[str] = ..., price: _Optional[float] = ..., currency: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., image_url: _Optional[str] = ..., image_base64: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ..., cost: _Optional[float] = ...) -> None: ...

class Interaction(_message.Message):
    __slots__ = ("user_id", "product_id", "session_id", "quantity", "price", "rating", "query", "recommendation_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    product_id: str
    session_id: str
    quantity: int
    price: float
    rating: int
    query: str
    recommendation_id: str
    def __init__(self, user_id: _Optional[str] = ..., product_id: _Optional[str] = ..., session_id: _Optional[str] = ..., quantity: _Optional[int] = ..., price: _Optional[float] = ..., rating: _Optional[int] = ..., query: _Optional[str] = ..., recommendation_id: _Optional[str] = ...) -> None: ...

class OrderLine(_message.Message):
    __slots__ = ("product_id", "quantity", "unit_price")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    quantity: int
    unit_price: float
    def __init__(self, product_id: _Optional[str] = ..., quantity: _Optional[int] = ..., unit_price: _Optional[float] = ...) -> None: ...

class Order(_message.Message):
    __slots__ = ("order_id", "user_id", "lines", "total", "currency", "carrier", "tracking_no", "expected_delivery", "reason", "customer_name", "email", "phone", "shipping_address", "sealed_personal")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    CARRIER_FIELD_NUMBER: _ClassVar[int]
    TRACKING_NO_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_DELIVERY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_NAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    SHIPPING_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SEALED_PERSONAL_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    user_id: str
    lines: _containers.RepeatedCompositeFieldContainer[OrderLine]
    total: float
    currency: str
    carrier: str
    tracking_no: str
    expected_delivery: str
    reason: str
    customer_name: str
    email: str
    phone: str
    shipping_address: Address
    sealed_personal: SealedPersonal
    def __init__(self, order_id: _Optional[str] = ..., user_id: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[OrderLine, _Mapping]]] = ..., total: _Optional[float] = ..., currency: _Optional[str] = ..., carrier: _Optional[str] = ..., tracking_no: _Optional[str] = ..., expected_delivery: _Optional[str] = ..., reason: _Optional[str] = ..., customer_name: _Optional[str] = ..., email: _Optional[str] = ..., phone: _Optional[str] = ..., shipping_address: _Optional[_Union[Address, _Mapping]] = ..., sealed_personal: _Optional[_Union[SealedPersonal, _Mapping]] = ...) -> None: ...

class Address(_message.Message):
    __slots__ = ("recipient", "line1", "line2", "city", "region", "postal_code", "country")
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    LINE1_FIELD_NUMBER: _ClassVar[int]
    LINE2_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    POSTAL_CODE_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    recipient: str
    line1: str
    line2: str
    city: str
    region: str
    postal_code: str
    country: str
    def __init__(self, recipient: _Optional[str] = ..., line1: _Optional[str] = ..., line2: _Optional[str] = ..., city: _Optional[str] = ..., region: _Optional[str] = ..., postal_code: _Optional[str] = ..., country: _Optional[str] = ...) -> None: ...

class SealedPersonal(_message.Message):
    __slots__ = ("user_id", "key_id", "nonce", "ciphertext")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    key_id: str
    nonce: bytes
    ciphertext: bytes
    def __init__(self, user_id: _Optional[str] = ..., key_id: _Optional[str] = ..., nonce: _Optional[bytes] = ..., ciphertext: _Optional[bytes] = ...) -> None: ...

class InventoryChange(_message.Message):
    __slots__ = ("product_id", "on_hand", "delta", "location")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    ON_HAND_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    on_hand: int
    delta: int
    location: str
    def __init__(self, product_id: _Optional[str] = ..., on_hand: _Optional[int] = ..., delta: _Optional[int] = ..., location: _Optional[str] = ...) -> None: ...

class CodeEvent(_message.Message):
    __slots__ = ("product_id", "batch", "key_id", "issued_at", "serials", "serial", "location", "scanned_by", "place", "client_id", "trusted", "counted", "reason", "revoked_by")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    SERIALS_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    SCANNED_BY_FIELD_NUMBER: _ClassVar[int]
    PLACE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    TRUSTED_FIELD_NUMBER: _ClassVar[int]
    COUNTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REVOKED_BY_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    batch: str
    key_id: str
    issued_at: int
    serials: _containers.RepeatedScalarFieldContainer[str]
    serial: str
    location: str
    scanned_by: str
    place: str
    client_id: str
    trusted: bool
    counted: bool
    reason: str
    revoked_by: str
    def __init__(self, product_id: _Optional[str] = ..., batch: _Optional[str] = ..., key_id: _Optional[str] = ..., issued_at: _Optional[int] = ..., serials: _Optional[_Iterable[str]] = ..., serial: _Optional[str] = ..., location: _Optional[str] = ..., scanned_by: _Optional[str] = ..., place: _Optional[str] = ..., client_id: _Optional[str] = ..., trusted: _Optional[bool] = ..., counted: _Optional[bool] = ..., reason: _Optional[str] = ..., revoked_by: _Optional[str] = ...) -> None: ...

class UserErased(_message.Message):
    __slots__ = ("user_id", "reason", "requested_by")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    reason: str
    requested_by: str
    def __init__(self, user_id: _Optional[str] = ..., reason: _Optional[str] = ..., requested_by: _Optional[str] = ...) -> None: ...

class HandoffEvent(_message.Message):
    __slots__ = ("session_id", "kind", "transcript", "reason", "intent", "language", "user_id", "order_id", "handoff_id", "agent", "role", "text")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    INTENT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    HANDOFF_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    kind: str
    transcript: _containers.RepeatedCompositeFieldContainer[TranscriptTurn]
    reason: str
    intent: str
    language: str
    user_id: str
    order_id: str
    handoff_id: str
    agent: str
    role: str
    text: str
    def __init__(self, session_id: _Optional[str] = ..., kind: _Optional[str] = ..., transcript: _Optional[_Iterable[_Union[TranscriptTurn, _Mapping]]] = ..., reason: _Optional[str] = ..., intent: _Optional[str] = ..., language: _Optional[str] = ..., user_id: _Optional[str] = ..., order_id: _Optional[str] = ..., handoff_id: _Optional[str] = ..., agent: _Optional[str] = ..., role: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class TranscriptTurn(_message.Message):
    __slots__ = ("role", "text")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    role: str
    text: str
    def __init__(self, role: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("product_id", "title", "on_hand", "reorder_point", "order_quantity", "stockout_risk", "days_of_cover", "verdict", "reasons", "location", "scanned_by", "batch", "serial", "payload", "service", "model_version", "metric", "new", "serving", "serving_version", "reason", "alert_id", "acknowledged_by", "role")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    ON_HAND_FIELD_NUMBER: _ClassVar[int]
    REORDER_POINT_FIELD_NUMBER: _ClassVar[int]
    ORDER_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    STOCKOUT_RISK_FIELD_NUMBER: _ClassVar[int]
    DAYS_OF_COVER_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    SCANNED_BY_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    NEW_FIELD_NUMBER: _ClassVar[int]
    SERVING_FIELD_NUMBER: _ClassVar[int]
    SERVING_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGED_BY_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    title: str
    on_hand: int
    reorder_point: float
    order_quantity: int
    stockout_risk: float
    days_of_cover: float
    verdict: str
    reasons: _containers.RepeatedScalarFieldContainer[str]
    location: str
    scanned_by: str
    batch: str
    serial: str
    payload: str
    service: str
    model_version: str
    metric: str
    new: float
    serving: float
    serving_version: str
    reason: str
    alert_id: str
    acknowledged_by: str
    role: str
    def __init__(self, product_id: _Optional[str] = ..., title: _Optional[str] = ..., on_hand: _Optional[int] = ..., reorder_point: _Optional[float] = ..., order_quantity: _Optional[int] = ..., stockout_risk: _Optional[float] = ..., days_of_cover: _Optional[float] = ..., verdict: _Optional[str] = ..., reasons: _Optional[_Iterable[str]] = ..., location: _Optional[str] = ..., scanned_by: _Optional[str] = ..., batch: _Optional[str] = ..., serial: _Optional[str] = ..., payload: _Optional[str] = ..., service: _Optional[str] = ..., model_version: _Optional[str] = ..., metric: _Optional[str] = ..., new: _Optional[float] = ..., serving: _Optional[float] = ..., serving_version: _Optional[str] = ..., reason: _Optional[str] = ..., alert_id: _Optional[str] = ..., acknowledged_by: _Optional[str] = ..., role: _Optional[str] = ...) -> None: ...

class RecommendationServed(_message.Message):
    __slots__ = ("recommendation_id", "user_id", "strategy", "model_version", "product_ids", "experiment_id", "arm", "surface")
    RECOMMENDATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_IDS_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ARM_FIELD_NUMBER: _ClassVar[int]
    SURFACE_FIELD_NUMBER: _ClassVar[int]
    recommendation_id: str
    user_id: str
    strategy: str
    model_version: str
    product_ids: _containers.RepeatedScalarFieldContainer[str]
    experiment_id: str
    arm: str
    surface: str
    def __init__(self, recommendation_id: _Optional[str] = ..., user_id: _Optional[str] = ..., strategy: _Optional[str] = ..., model_version: _Optional[str] = ..., product_ids: _Optional[_Iterable[str]] = ..., experiment_id: _Optional[str] = ..., arm: _Optional[str] = ..., surface: _Optional[str] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ("reason", "error_type", "topic", "partition", "offset", "key", "value", "value_is_base64", "consumer_group", "failed_at")
    REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    VALUE_IS_BASE64_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    FAILED_AT_FIELD_NUMBER: _ClassVar[int]
    reason: str
    error_type: str
    topic: str
    partition: int
    offset: int
    key: str
    value: str
    value_is_base64: bool
    consumer_group: str
    failed_at: _timestamp_pb2.Timestamp
    def __init__(self, reason: _Optional[str] = ..., error_type: _Optional[str] = ..., topic: _Optional[str] = ..., partition: _Optional[int] = ..., offset: _Optional[int] = ..., key: _Optional[str] = ..., value: _Optional[str] = ..., value_is_base64: _Optional[bool] = ..., consumer_group: _Optional[str] = ..., failed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
