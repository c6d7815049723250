"""User-behaviour analytics: RFM scores and segments, the view -> add_to_cart -> purchase funnel,
cohort retention, BG/NBD + Gamma-Gamma customer value, and one customer's behaviour profile.

Pure functions over plain Python records or numpy arrays; no I/O and no clock (every "today" is a
parameter). Conventions:

* Times are UTC. Naive datetimes are taken as UTC; a purchase's day is its UTC calendar day.
* An *order* is one ``order_id`` of one user (rows sharing both are summed); rows without an
  order id are one order each. RFM ``frequency`` counts orders, ``monetary`` is the total spend.
* The BG/NBD model counts *purchase days* (several orders on one day are one purchase occasion, as in
  the published CDNOW analyses); ``frequency`` there is the number of repeat purchase days.
* Raw user ids never leave this module through segments or profiles: they are replaced by
  :func:`pseudonymise` (HMAC-SHA256 with the deployment's secret).

One module per analysis, every public name re-exported here (``from services.forecasting.core import
behaviour`` then ``behaviour.rfm(...)``): ``records`` (purchases, interactions, ``PurchaseLog``, pseudonyms,
UTC days), ``segmentation`` (RFM scores and segments), ``funnels`` (view -> cart -> purchase),
``retention`` (cohorts), ``customer_value`` (BG/NBD x Gamma-Gamma) and ``profiles`` (the population model
and one customer's profile).
"""

from __future__ import annotations

from services.forecasting.core.behaviour.customer_value import (
    BgNbdParams,
    CustomerValueModel,
    GammaGammaParams,
    RepeatSummary,
    ValuePrediction,
    repeat_summary,
)
from services.forecasting.core.behaviour.funnels import (
    FUNNEL_STEPS,
    CategoryFunnel,
    FunnelReport,
    FunnelStep,
    funnel,
)
from services.forecasting.core.behaviour.profiles import (
    BehaviourModel,
    UserProfile,
    user_profile,
    visitor_profile,
)
from services.forecasting.core.behaviour.records import (
    EPOCH,
    EPOCH_ORDINAL,
    Interaction,
    Purchase,
    PurchaseLog,
    day_to_date,
    pseudonymise,
    utc_day,
)
from services.forecasting.core.behaviour.retention import (
    PERIODS,
    Cohort,
    CohortReport,
    cohorts,
    period_index,
    period_start,
)
from services.forecasting.core.behaviour.segmentation import (
    SEGMENT_DESCRIPTIONS,
    SEGMENT_MAP,
    SEGMENT_NAMES,
    CustomerRfm,
    QuintileEdges,
    SegmentReport,
    SegmentSummary,
    rfm,
    segment_of,
    segments,
)

__all__ = [
    "EPOCH",
    "EPOCH_ORDINAL",
    "FUNNEL_STEPS",
    "PERIODS",
    "SEGMENT_DESCRIPTIONS",
    "SEGMENT_MAP",
    "SEGMENT_NAMES",
    "BehaviourModel",
    "BgNbdParams",
    "CategoryFunnel",
    "Cohort",
    "CohortReport",
    "CustomerRfm",
    "CustomerValueModel",
    "FunnelReport",
    "FunnelStep",
    "GammaGammaParams",
    "Interaction",
    "Purchase",
    "PurchaseLog",
    "QuintileEdges",
    "RepeatSummary",
    "SegmentReport",
    "SegmentSummary",
    "UserProfile",
    "ValuePrediction",
    "cohorts",
    "day_to_date",
    "funnel",
    "period_index",
    "period_start",
    "pseudonymise",
    "repeat_summary",
    "rfm",
    "segment_of",
    "segments",
    "user_profile",
    "utc_day",
    "visitor_profile",
]
