import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from protos import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Objective(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OBJECTIVE_UNSPECIFIED: _ClassVar[Objective]
    OBJECTIVE_REVENUE: _ClassVar[Objective]
    OBJECTIVE_PROFIT: _ClassVar[Objective]

class CohortPeriod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COHORT_PERIOD_UNSPECIFIED: _ClassVar[CohortPeriod]
    COHORT_PERIOD_DAY: _ClassVar[CohortPeriod]
    COHORT_PERIOD_WEEK: _ClassVar[CohortPeriod]
    COHORT_PERIOD_MONTH: _ClassVar[CohortPeriod]

class AlertState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALERT_STATE_UNSPECIFIED: _ClassVar[AlertState]
    ALERT_STATE_OPEN: _ClassVar[AlertState]
    ALERT_STATE_ACKNOWLEDGED: _ClassVar[AlertState]
OBJECTIVE_UNSPECIFIED: Objective
OBJECTIVE_REVENUE: Objective
OBJECTIVE_PROFIT: Objective
COHORT_PERIOD_UNSPECIFIED: CohortPeriod
COHORT_PERIOD_DAY: CohortPeriod
COHORT_PERIOD_WEEK: CohortPeriod
COHORT_PERIOD_MONTH: CohortPeriod
ALERT_STATE_UNSPECIFIED: AlertState
ALERT_STATE_OPEN: AlertState
ALERT_STATE_ACKNOWLEDGED: AlertState

class ForecastRequest(_message.Message):
    __slots__ = ("product_id", "category", "horizon_days", "interval_level", "history_days")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    HORIZON_DAYS_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_LEVEL_FIELD_NUMBER: _ClassVar[int]
    HISTORY_DAYS_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    category: str
    horizon_days: int
    interval_level: float
    history_days: int
    def __init__(self, product_id: _Optional[str] = ..., category: _Optional[str] = ..., horizon_days: _Optional[int] = ..., interval_level: _Optional[float] = ..., history_days: _Optional[int] = ...) -> None: ...

class ForecastPoint(_message.Message):
    __slots__ = ("date", "yhat", "yhat_lower", "yhat_upper")
    DATE_FIELD_NUMBER: _ClassVar[int]
    YHAT_FIELD_NUMBER: _ClassVar[int]
    YHAT_LOWER_FIELD_NUMBER: _ClassVar[int]
    YHAT_UPPER_FIELD_NUMBER: _ClassVar[int]
    date: str
    yhat: float
    yhat_lower: float
    yhat_upper: float
    def __init__(self, date: _Optional[str] = ..., yhat: _Optional[float] = ..., yhat_lower: _Optional[float] = ..., yhat_upper: _Optional[float] = ...) -> None: ...

class HistoryPoint(_message.Message):
    __slots__ = ("date", "y")
    DATE_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    date: str
    y: float
    def __init__(self, date: _Optional[str] = ..., y: _Optional[float] = ...) -> None: ...

class Backtest(_message.Message):
    __slots__ = ("mase", "smape", "mae", "horizon", "folds")
    MASE_FIELD_NUMBER: _ClassVar[int]
    SMAPE_FIELD_NUMBER: _ClassVar[int]
    MAE_FIELD_NUMBER: _ClassVar[int]
    HORIZON_FIELD_NUMBER: _ClassVar[int]
    FOLDS_FIELD_NUMBER: _ClassVar[int]
    mase: float
    smape: float
    mae: float
    horizon: int
    folds: int
    def __init__(self, mase: _Optional[float] = ..., smape: _Optional[float] = ..., mae: _Optional[float] = ..., horizon: _Optional[int] = ..., folds: _Optional[int] = ...) -> None: ...

class ForecastResponse(_message.Message):
    __slots__ = ("product_id", "category", "points", "history", "model", "model_version", "backtest", "interval_level")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    BACKTEST_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_LEVEL_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    category: str
    points: _containers.RepeatedCompositeFieldContainer[ForecastPoint]
    history: _containers.RepeatedCompositeFieldContainer[HistoryPoint]
    model: str
    model_version: str
    backtest: Backtest
    interval_level: float
    def __init__(self, product_id: _Optional[str] = ..., category: _Optional[str] = ..., points: _Optional[_Iterable[_Union[ForecastPoint, _Mapping]]] = ..., history: _Optional[_Iterable[_Union[HistoryPoint, _Mapping]]] = ..., model: _Optional[str] = ..., model_version: _Optional[str] = ..., backtest: _Optional[_Union[Backtest, _Mapping]] = ..., interval_level: _Optional[float] = ...) -> None: ...

class InventoryPlanRequest(_message.Message):
    __slots__ = ("product_id", "service_level", "lead_time_days", "ordering_cost", "holding_cost_rate")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_LEVEL_FIELD_NUMBER: _ClassVar[int]
    LEAD_TIME_DAYS_FIELD_NUMBER: _ClassVar[int]
    ORDERING_COST_FIELD_NUMBER: _ClassVar[int]
    HOLDING_COST_RATE_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    service_level: float
    lead_time_days: float
    ordering_cost: float
    holding_cost_rate: float
    def __init__(self, product_id: _Optional[str] = ..., service_level: _Optional[float] = ..., lead_time_days: _Optional[float] = ..., ordering_cost: _Optional[float] = ..., holding_cost_rate: _Optional[float] = ...) -> None: ...

class InventoryPlanResponse(_message.Message):
    __slots__ = ("product_id", "on_hand", "safety_stock", "reorder_point", "order_quantity", "stockout_risk", "days_of_cover", "forecast_demand_lead_time", "service_level", "lead_time_days", "reorder_now", "mean_daily_demand", "daily_demand_std", "ordering_cost", "holding_cost_rate", "unit_cost", "currency")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    ON_HAND_FIELD_NUMBER: _ClassVar[int]
    SAFETY_STOCK_FIELD_NUMBER: _ClassVar[int]
    REORDER_POINT_FIELD_NUMBER: _ClassVar[int]
    ORDER_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    STOCKOUT_RISK_FIELD_NUMBER: _ClassVar[int]
    DAYS_OF_COVER_FIELD_NUMBER: _ClassVar[int]
    FORECAST_DEMAND_LEAD_TIME_FIELD_NUMBER: _ClassVar[int]
    SERVICE_LEVEL_FIELD_NUMBER: _ClassVar[int]
    LEAD_TIME_DAYS_FIELD_NUMBER: _ClassVar[int]
    REORDER_NOW_FIELD_NUMBER: _ClassVar[int]
    MEAN_DAILY_DEMAND_FIELD_NUMBER: _ClassVar[int]
    DAILY_DEMAND_STD_FIELD_NUMBER: _ClassVar[int]
    ORDERING_COST_FIELD_NUMBER: _ClassVar[int]
    HOLDING_COST_RATE_FIELD_NUMBER: _ClassVar[int]
    UNIT_COST_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    on_hand: int
    safety_stock: float
    reorder_point: float
    order_quantity: int
    stockout_risk: float
    days_of_cover: float
    forecast_demand_lead_time: float
    service_level: float
    lead_time_days: float
    reorder_now: bool
    mean_daily_demand: float
    daily_demand_std: float
    ordering_cost: float
    holding_cost_rate: float
    unit_cost: float
    currency: str
    def __init__(self, product_id: _Optional[str] = ..., on_hand: _Optional[int] = ..., safety_stock: _Optional[float] = ..., reorder_point: _Optional[float] = ..., order_quantity: _Optional[int] = ..., stockout_risk: _Optional[float] = ..., days_of_cover: _Optional[float] = ..., forecast_demand_lead_time: _Optional[float] = ..., service_level: _Optional[float] = ..., lead_time_days: _Optional[float] = ..., reorder_now: _Optional[bool] = ..., mean_daily_demand: _Optional[float] = ..., daily_demand_std: _Optional[float] = ..., ordering_cost: _Optional[float] = ..., holding_cost_rate: _Optional[float] = ..., unit_cost: _Optional[float] = ..., currency: _Optional[str] = ...) -> None: ...

class PriceRecommendationRequest(_message.Message):
    __slots__ = ("product_id", "objective", "min_margin", "max_change")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVE_FIELD_NUMBER: _ClassVar[int]
    MIN_MARGIN_FIELD_NUMBER: _ClassVar[int]
    MAX_CHANGE_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    objective: Objective
    min_margin: float
    max_change: float
    def __init__(self, product_id: _Optional[str] = ..., objective: _Optional[_Union[Objective, str]] = ..., min_margin: _Optional[float] = ..., max_change: _Optional[float] = ...) -> None: ...

class PriceRecommendationResponse(_message.Message):
    __slots__ = ("product_id", "currency", "objective", "current_price", "recommended_price", "elasticity", "elasticity_ci_low", "elasticity_ci_high", "r_squared", "observations", "expected_demand_current", "expected_demand_recommended", "expected_revenue_current", "expected_revenue_recommended", "expected_profit_current", "expected_profit_recommended", "lower_bound", "upper_bound", "unit_cost", "note")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_PRICE_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDED_PRICE_FIELD_NUMBER: _ClassVar[int]
    ELASTICITY_FIELD_NUMBER: _ClassVar[int]
    ELASTICITY_CI_LOW_FIELD_NUMBER: _ClassVar[int]
    ELASTICITY_CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    R_SQUARED_FIELD_NUMBER: _ClassVar[int]
    OBSERVATIONS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_DEMAND_CURRENT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_DEMAND_RECOMMENDED_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVENUE_CURRENT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVENUE_RECOMMENDED_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_PROFIT_CURRENT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_PROFIT_RECOMMENDED_FIELD_NUMBER: _ClassVar[int]
    LOWER_BOUND_FIELD_NUMBER: _ClassVar[int]
    UPPER_BOUND_FIELD_NUMBER: _ClassVar[int]
    UNIT_COST_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    currency: str
    objective: Objective
    current_price: float
    recommended_price: float
    elasticity: float
    elasticity_ci_low: float
    elasticity_ci_high: float
    r_squared: float
    observations: int
    expected_demand_current: float
    expected_demand_recommended: float
    expected_revenue_current: float
    expected_revenue_recommended: float
    expected_profit_current: float
    expected_profit_recommended: float
    lower_bound: float
    upper_bound: float
    unit_cost: float
    note: str
    def __init__(self, product_id: _Optional[str] = ..., currency: _Optional[str] = ..., objective: _Optional[_Union[Objective, str]] = ..., current_price: _Optional[float] = ..., recommended_price: _Optional[float] = ..., elasticity: _Optional[float] = ..., elasticity_ci_low: _Optional[float] = ..., elasticity_ci_high: _Optional[float] = ..., r_squared: _Optional[float] = ..., observations: _Optional[int] = ..., expected_demand_current: _Optional[float] = ..., expected_demand_recommended: _Optional[float] = ..., expected_revenue_current: _Optional[float] = ..., expected_revenue_recommended: _Optional[float] = ..., expected_profit_current: _Optional[float] = ..., expected_profit_recommended: _Optional[float] = ..., lower_bound: _Optional[float] = ..., upper_bound: _Optional[float] = ..., unit_cost: _Optional[float] = ..., note: _Optional[str] = ...) -> None: ...

class SegmentsRequest(_message.Message):
    __slots__ = ("as_of", "sample_size")
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_SIZE_FIELD_NUMBER: _ClassVar[int]
    as_of: str
    sample_size: int
    def __init__(self, as_of: _Optional[str] = ..., sample_size: _Optional[int] = ...) -> None: ...

class Segment(_message.Message):
    __slots__ = ("name", "description", "customers", "customer_share", "revenue", "revenue_share", "avg_recency_days", "avg_frequency", "avg_monetary", "sample_user_ids")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_SHARE_FIELD_NUMBER: _ClassVar[int]
    REVENUE_FIELD_NUMBER: _ClassVar[int]
    REVENUE_SHARE_FIELD_NUMBER: _ClassVar[int]
    AVG_RECENCY_DAYS_FIELD_NUMBER: _ClassVar[int]
    AVG_FREQUENCY_FIELD_NUMBER: _ClassVar[int]
    AVG_MONETARY_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_USER_IDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    customers: int
    customer_share: float
    revenue: float
    revenue_share: float
    avg_recency_days: float
    avg_frequency: float
    avg_monetary: float
    sample_user_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., customers: _Optional[int] = ..., customer_share: _Optional[float] = ..., revenue: _Optional[float] = ..., revenue_share: _Optional[float] = ..., avg_recency_days: _Optional[float] = ..., avg_frequency: _Optional[float] = ..., avg_monetary: _Optional[float] = ..., sample_user_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class SegmentsResponse(_message.Message):
    __slots__ = ("segments", "total_customers", "total_revenue", "currency", "as_of")
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_REVENUE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    total_customers: int
    total_revenue: float
    currency: str
    as_of: str
    def __init__(self, segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ..., total_customers: _Optional[int] = ..., total_revenue: _Optional[float] = ..., currency: _Optional[str] = ..., as_of: _Optional[str] = ...) -> None: ...

class FunnelRequest(_message.Message):
    __slots__ = ("category", "from_date", "to_date")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    FROM_DATE_FIELD_NUMBER: _ClassVar[int]
    TO_DATE_FIELD_NUMBER: _ClassVar[int]
    category: str
    from_date: str
    to_date: str
    def __init__(self, category: _Optional[str] = ..., from_date: _Optional[str] = ..., to_date: _Optional[str] = ...) -> None: ...

class FunnelStep(_message.Message):
    __slots__ = ("name", "users", "events", "conversion", "conversion_from_start")
    NAME_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_FROM_START_FIELD_NUMBER: _ClassVar[int]
    name: str
    users: int
    events: int
    conversion: float
    conversion_from_start: float
    def __init__(self, name: _Optional[str] = ..., users: _Optional[int] = ..., events: _Optional[int] = ..., conversion: _Optional[float] = ..., conversion_from_start: _Optional[float] = ...) -> None: ...

class CategoryFunnel(_message.Message):
    __slots__ = ("category", "steps")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    category: str
    steps: _containers.RepeatedCompositeFieldContainer[FunnelStep]
    def __init__(self, category: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[FunnelStep, _Mapping]]] = ...) -> None: ...

class FunnelResponse(_message.Message):
    __slots__ = ("steps", "categories", "from_date", "to_date")
    STEPS_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    FROM_DATE_FIELD_NUMBER: _ClassVar[int]
    TO_DATE_FIELD_NUMBER: _ClassVar[int]
    steps: _containers.RepeatedCompositeFieldContainer[FunnelStep]
    categories: _containers.RepeatedCompositeFieldContainer[CategoryFunnel]
    from_date: str
    to_date: str
    def __init__(self, steps: _Optional[_Iterable[_Union[FunnelStep, _Mapping]]] = ..., categories: _Optional[_Iterable[_Union[CategoryFunnel, _Mapping]]] = ..., from_date: _Optional[str] = ..., to_date: _Optional[str] = ...) -> None: ...

class CohortsRequest(_message.Message):
    __slots__ = ("period", "max_periods", "from_date", "to_date")
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    MAX_PERIODS_FIELD_NUMBER: _ClassVar[int]
    FROM_DATE_FIELD_NUMBER: _ClassVar[int]
    TO_DATE_FIELD_NUMBER: _ClassVar[int]
    period: CohortPeriod
    max_periods: int
    from_date: str
    to_date: str
    def __init__(self, period: _Optional[_Union[CohortPeriod, str]] = ..., max_periods: _Optional[int] = ..., from_date: _Optional[str] = ..., to_date: _Optional[str] = ...) -> None: ...

class Cohort(_message.Message):
    __slots__ = ("cohort", "size", "retention", "active")
    COHORT_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    RETENTION_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    cohort: str
    size: int
    retention: _containers.RepeatedScalarFieldContainer[float]
    active: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, cohort: _Optional[str] = ..., size: _Optional[int] = ..., retention: _Optional[_Iterable[float]] = ..., active: _Optional[_Iterable[int]] = ...) -> None: ...

class CohortsResponse(_message.Message):
    __slots__ = ("period", "cohorts")
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    COHORTS_FIELD_NUMBER: _ClassVar[int]
    period: CohortPeriod
    cohorts: _containers.RepeatedCompositeFieldContainer[Cohort]
    def __init__(self, period: _Optional[_Union[CohortPeriod, str]] = ..., cohorts: _Optional[_Iterable[_Union[Cohort, _Mapping]]] = ...) -> None: ...

class UserProfileRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class Rfm(_message.Message):
    __slots__ = ("recency_days", "frequency", "monetary", "r_score", "f_score", "m_score")
    RECENCY_DAYS_FIELD_NUMBER: _ClassVar[int]
    FREQUENCY_FIELD_NUMBER: _ClassVar[int]
    MONETARY_FIELD_NUMBER: _ClassVar[int]
    R_SCORE_FIELD_NUMBER: _ClassVar[int]
    F_SCORE_FIELD_NUMBER: _ClassVar[int]
    M_SCORE_FIELD_NUMBER: _ClassVar[int]
    recency_days: float
    frequency: int
    monetary: float
    r_score: int
    f_score: int
    m_score: int
    def __init__(self, recency_days: _Optional[float] = ..., frequency: _Optional[int] = ..., monetary: _Optional[float] = ..., r_score: _Optional[int] = ..., f_score: _Optional[int] = ..., m_score: _Optional[int] = ...) -> None: ...

class UserProfileResponse(_message.Message):
    __slots__ = ("pseudonymous_id", "rfm", "segment", "repeat_purchase_probability", "predicted_customer_value", "currency", "orders", "total_spend", "average_order_value", "first_purchase_at", "last_purchase_at", "avg_days_between_purchases", "event_counts", "cart_to_purchase_rate", "favourite_categories")
    class EventCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    PSEUDONYMOUS_ID_FIELD_NUMBER: _ClassVar[int]
    RFM_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    REPEAT_PURCHASE_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_CUSTOMER_VALUE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SPEND_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_ORDER_VALUE_FIELD_NUMBER: _ClassVar[int]
    FIRST_PURCHASE_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_PURCHASE_AT_FIELD_NUMBER: _ClassVar[int]
    AVG_DAYS_BETWEEN_PURCHASES_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNTS_FIELD_NUMBER: _ClassVar[int]
    CART_TO_PURCHASE_RATE_FIELD_NUMBER: _ClassVar[int]
    FAVOURITE_CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    pseudonymous_id: str
    rfm: Rfm
    segment: str
    repeat_purchase_probability: float
    predicted_customer_value: float
    currency: str
    orders: int
    total_spend: float
    average_order_value: float
    first_purchase_at: _timestamp_pb2.Timestamp
    last_purchase_at: _timestamp_pb2.Timestamp
    avg_days_between_purchases: float
    event_counts: _containers.ScalarMap[str, int]
    cart_to_purchase_rate: float
    favourite_categories: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, pseudonymous_id: _Optional[str] = ..., rfm: _Optional[_Union[Rfm, _Mapping]] = ..., segment: _Optional[str] = ..., repeat_purchase_probability: _Optional[float] = ..., predicted_customer_value: _Optional[float] = ..., currency: _Optional[str] = ..., orders: _Optional[int] = ..., total_spend: _Optional[float] = ..., average_order_value: _Optional[float] = ..., first_purchase_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_purchase_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., avg_days_between_purchases: _Optional[float] = ..., event_counts: _Optional[_Mapping[str, int]] = ..., cart_to_purchase_rate: _Optional[float] = ..., favourite_categories: _Optional[_Iterable[str]] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("alert_id", "type", "occurred_at", "source", "subject", "state", "payload", "acknowledged_at", "acknowledged_by", "acknowledged_role")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGED_AT_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGED_BY_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGED_ROLE_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    type: str
    occurred_at: _timestamp_pb2.Timestamp
    source: str
    subject: str
    state: AlertState
    payload: _struct_pb2.Struct
    acknowledged_at: _timestamp_pb2.Timestamp
    acknowledged_by: str
    acknowledged_role: str
    def __init__(self, alert_id: _Optional[str] = ..., type: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[str] = ..., subject: _Optional[str] = ..., state: _Optional[_Union[AlertState, str]] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., acknowledged_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., acknowledged_by: _Optional[str] = ..., acknowledged_role: _Optional[str] = ...) -> None: ...

class ListAlertsRequest(_message.Message):
    __slots__ = ("state", "type", "limit", "before")
    STATE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    state: AlertState
    type: str
    limit: int
    before: str
    def __init__(self, state: _Optional[_Union[AlertState, str]] = ..., type: _Optional[str] = ..., limit: _Optional[int] = ..., before: _Optional[str] = ...) -> None: ...

class ListAlertsResponse(_message.Message):
    __slots__ = ("alerts", "next")
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    alerts: _containers.RepeatedCompositeFieldContainer[Alert]
    next: str
    def __init__(self, alerts: _Optional[_Iterable[_Union[Alert, _Mapping]]] = ..., next: _Optional[str] = ...) -> None: ...

class AcknowledgeAlertRequest(_message.Message):
    __slots__ = ("alert_id", "acknowledged_by", "role")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGED_BY_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    acknowledged_by: str
    role: str
    def __init__(self, alert_id: _Optional[str] = ..., acknowledged_by: _Optional[str] = ..., role: _Optional[str] = ...) -> None: ...
