import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from protos import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Filters(_message.Message):
    __slots__ = ("exclude_purchased", "exclude_out_of_stock", "exclude_categories", "category", "min_price", "max_price", "exclude_product_ids")
    EXCLUDE_PURCHASED_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_OUT_OF_STOCK_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    MIN_PRICE_FIELD_NUMBER: _ClassVar[int]
    MAX_PRICE_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_PRODUCT_IDS_FIELD_NUMBER: _ClassVar[int]
    exclude_purchased: bool
    exclude_out_of_stock: bool
    exclude_categories: _containers.RepeatedScalarFieldContainer[str]
    category: str
    min_price: float
    max_price: float
    exclude_product_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, exclude_purchased: _Optional[bool] = ..., exclude_out_of_stock: _Optional[bool] = ..., exclude_categories: _Optional[_Iterable[str]] = ..., category: _Optional[str] = ..., min_price: _Optional[float] = ..., max_price: _Optional[float] = ..., exclude_product_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RecommendRequest(_message.Message):
    __slots__ = ("user_id", "k", "strategy", "filters", "session_product_ids", "model_version")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    SESSION_PRODUCT_IDS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    k: int
    strategy: str
    filters: Filters
    session_product_ids: _containers.RepeatedScalarFieldContainer[str]
    model_version: str
    def __init__(self, user_id: _Optional[str] = ..., k: _Optional[int] = ..., strategy: _Optional[str] = ..., filters: _Optional[_Union[Filters, _Mapping]] = ..., session_product_ids: _Optional[_Iterable[str]] = ..., model_version: _Optional[str] = ...) -> None: ...

class RecommendedItem(_message.Message):
    __slots__ = ("product_id", "score", "reason", "title", "category", "price", "currency")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    score: float
    reason: str
    title: str
    category: str
    price: float
    currency: str
    def __init__(self, product_id: _Optional[str] = ..., score: _Optional[float] = ..., reason: _Optional[str] = ..., title: _Optional[str] = ..., category: _Optional[str] = ..., price: _Optional[float] = ..., currency: _Optional[str] = ...) -> None: ...

class RecommendResponse(_message.Message):
    __slots__ = ("user_id", "items", "model_version", "strategy", "cold_start")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    COLD_START_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    items: _containers.RepeatedCompositeFieldContainer[RecommendedItem]
    model_version: str
    strategy: str
    cold_start: bool
    def __init__(self, user_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[RecommendedItem, _Mapping]]] = ..., model_version: _Optional[str] = ..., strategy: _Optional[str] = ..., cold_start: _Optional[bool] = ...) -> None: ...

class BatchRecommendRequest(_message.Message):
    __slots__ = ("user_ids", "k", "strategy", "filters")
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    user_ids: _containers.RepeatedScalarFieldContainer[str]
    k: int
    strategy: str
    filters: Filters
    def __init__(self, user_ids: _Optional[_Iterable[str]] = ..., k: _Optional[int] = ..., strategy: _Optional[str] = ..., filters: _Optional[_Union[Filters, _Mapping]] = ...) -> None: ...

class BatchRecommendResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RecommendResponse]
    def __init__(self, results: _Optional[_Iterable[_Union[RecommendResponse, _Mapping]]] = ...) -> None: ...

class SimilarRequest(_message.Message):
    __slots__ = ("product_id", "k", "strategy", "filters", "include_variants")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_VARIANTS_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    k: int
    strategy: str
    filters: Filters
    include_variants: bool
    def __init__(self, product_id: _Optional[str] = ..., k: _Optional[int] = ..., strategy: _Optional[str] = ..., filters: _Optional[_Union[Filters, _Mapping]] = ..., include_variants: _Optional[bool] = ...) -> None: ...

class SimilarResponse(_message.Message):
    __slots__ = ("product_id", "items", "model_version", "strategy")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    items: _containers.RepeatedCompositeFieldContainer[RecommendedItem]
    model_version: str
    strategy: str
    def __init__(self, product_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[RecommendedItem, _Mapping]]] = ..., model_version: _Optional[str] = ..., strategy: _Optional[str] = ...) -> None: ...

class UserProfileRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class WeightedName(_message.Message):
    __slots__ = ("name", "weight")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    name: str
    weight: float
    def __init__(self, name: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class PriceBand(_message.Message):
    __slots__ = ("min", "median", "max", "currency")
    MIN_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    min: float
    median: float
    max: float
    currency: str
    def __init__(self, min: _Optional[float] = ..., median: _Optional[float] = ..., max: _Optional[float] = ..., currency: _Optional[str] = ...) -> None: ...

class RecentItem(_message.Message):
    __slots__ = ("product_id", "event_type", "occurred_at")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    event_type: str
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, product_id: _Optional[str] = ..., event_type: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UserProfileResponse(_message.Message):
    __slots__ = ("user_id", "purchase_frequency", "favourite_categories", "favourite_brands", "price_band", "recent_items", "event_counts", "first_seen", "last_seen", "orders", "total_spend", "currency")
    class EventCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_FREQUENCY_FIELD_NUMBER: _ClassVar[int]
    FAVOURITE_CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    FAVOURITE_BRANDS_FIELD_NUMBER: _ClassVar[int]
    PRICE_BAND_FIELD_NUMBER: _ClassVar[int]
    RECENT_ITEMS_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNTS_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SPEND_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    purchase_frequency: float
    favourite_categories: _containers.RepeatedCompositeFieldContainer[WeightedName]
    favourite_brands: _containers.RepeatedCompositeFieldContainer[WeightedName]
    price_band: PriceBand
    recent_items: _containers.RepeatedCompositeFieldContainer[RecentItem]
    event_counts: _containers.ScalarMap[str, int]
    first_seen: _timestamp_pb2.Timestamp
    last_seen: _timestamp_pb2.Timestamp
    orders: int
    total_spend: float
    currency: str
    def __init__(self, user_id: _Optional[str] = ..., purchase_frequency: _Optional[float] = ..., favourite_categories: _Optional[_Iterable[_Union[WeightedName, _Mapping]]] = ..., favourite_brands: _Optional[_Iterable[_Union[WeightedName, _Mapping]]] = ..., price_band: _Optional[_Union[PriceBand, _Mapping]] = ..., recent_items: _Optional[_Iterable[_Union[RecentItem, _Mapping]]] = ..., event_counts: _Optional[_Mapping[str, int]] = ..., first_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., orders: _Optional[int] = ..., total_spend: _Optional[float] = ..., currency: _Optional[str] = ...) -> None: ...

class ItemProfileRequest(_message.Message):
    __slots__ = ("product_id",)
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    def __init__(self, product_id: _Optional[str] = ...) -> None: ...

class ItemProfileResponse(_message.Message):
    __slots__ = ("product_id", "title", "category", "brand", "price", "currency", "tags", "in_stock", "event_counts", "unique_users", "conversion_rate", "average_rating", "rating_count", "popularity_rank", "last_interaction_at", "frequently_bought_with")
    class EventCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    BRAND_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    IN_STOCK_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNTS_FIELD_NUMBER: _ClassVar[int]
    UNIQUE_USERS_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_RATE_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_RATING_FIELD_NUMBER: _ClassVar[int]
    RATING_COUNT_FIELD_NUMBER: _ClassVar[int]
    POPULARITY_RANK_FIELD_NUMBER: _ClassVar[int]
    LAST_INTERACTION_AT_FIELD_NUMBER: _ClassVar[int]
    FREQUENTLY_BOUGHT_WITH_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    title: str
    category: str
    brand: str
    price: float
    currency: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    in_stock: bool
    event_counts: _containers.ScalarMap[str, int]
    unique_users: int
    conversion_rate: float
    average_rating: float
    rating_count: int
    popularity_rank: int
    last_interaction_at: _timestamp_pb2.Timestamp
    frequently_bought_with: _containers.RepeatedCompositeFieldContainer[RecommendedItem]
    def __init__(self, product_id: _Optional[str] = ..., title: _Optional[str] = ..., category: _Optional[str] = ..., brand: _Optional[str] = ..., price: _Optional[float] = ..., currency: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., in_stock: _Optional[bool] = ..., event_counts: _Optional[_Mapping[str, int]] = ..., unique_users: _Optional[int] = ..., conversion_rate: _Optional[float] = ..., average_rating: _Optional[float] = ..., rating_count: _Optional[int] = ..., popularity_rank: _Optional[int] = ..., last_interaction_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., frequently_bought_with: _Optional[_Iterable[_Union[RecommendedItem, _Mapping]]] = ...) -> None: ...
