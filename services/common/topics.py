"""Kafka topic names and how an event type is routed to its topic and key."""

from __future__ import annotations

CATALOG = "catalog.products.v1"
INTERACTIONS = "shop.interactions.v1"
ORDERS = "orders.v1"
INVENTORY = "inventory.v1"
MODELS = "models.v1"
ALERTS = "alerts.v1"
HANDOFFS = "handoffs.v1"
# The vision service's own log of issued codes and scans (the registry is rebuilt from it).
CODES = "vision.codes.v1"
# Erasures of shoppers (`user.erased`), kept forever: the register every replay applies first.
PRIVACY = "privacy.v1"
# The recommendation answers the gateway served (impressions), for attribution and A/B reports.
RECOMMENDATIONS_SERVED = "recommendations.served.v1"

INPUT_TOPICS: tuple[str, ...] = (CATALOG, INTERACTIONS, ORDERS, INVENTORY)
OUTPUT_TOPICS: tuple[str, ...] = (MODELS, ALERTS, HANDOFFS, CODES, PRIVACY, RECOMMENDATIONS_SERVED)

# event type prefix -> (topic, payload field used as the message key)
ROUTES: dict[str, tuple[str, str]] = {
    "product": (CATALOG, "product_id"),
    "interaction": (INTERACTIONS, "user_id"),
    "order": (ORDERS, "order_id"),
    "inventory": (INVENTORY, "product_id"),
    "code": (CODES, "product_id"),
    "user": (PRIVACY, "user_id"),
    "handoff": (HANDOFFS, "session_id"),
    # The services key their alerts by what they are about (product, service), alert.acknowledged by alert_id.
    "alert": (ALERTS, "product_id"),
    "recommendation": (RECOMMENDATIONS_SERVED, "recommendation_id"),
}
# Families only a service or a dedicated route writes: POST /v1/events refuses them.
INTERNAL_FAMILIES: frozenset[str] = frozenset({"code", "user", "handoff", "alert", "recommendation"})


def dlq(topic: str) -> str:
    """The dead-letter topic that collects what consumers of ``topic`` could not process."""
    return f"{topic}.dlq"


def all_topics() -> tuple[str, ...]:
    return INPUT_TOPICS + OUTPUT_TOPICS + tuple(dlq(t) for t in (*INPUT_TOPICS, CODES, PRIVACY, HANDOFFS, ALERTS,
                                                                    RECOMMENDATIONS_SERVED))


def route(event_type: str) -> tuple[str, str]:
    """(topic, key field) for an event type such as ``interaction.purchase``."""
    family = event_type.split(".", 1)[0]
    try:
        return ROUTES[family]
    except KeyError:
        raise ValueError(f"no topic for event type {event_type!r}") from None
