"""Why a product is recommended: the reason shown with every item, and which of the shopper's products
explains it (pure: plain data and the model's own lookups, no I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from services.recommender.core.profiles import parse_recent

if TYPE_CHECKING:
    import scipy.sparse as sp

    from services.recommender.core.bundle import RecommenderModel

ACTION_VERBS = {
    "purchase": "bought",
    "add_to_cart": "added to your cart",
    "rating": "rated",
    "click": "looked at",
    "view": "viewed",
}
# How much an action says about a product, weakest first (the strongest one names it in a reason).
ACTION_STRENGTH = ("view", "click", "rating", "add_to_cart", "purchase")
# Components whose score no single product of the shopper's history explains.
UNANCHORED = ("popular", "user_knn")


def because_reason(anchor_title: str, anchor_action: str) -> str:
    """"because you bought Nordwind Red T-shirt"."""
    return f"because you {ACTION_VERBS.get(anchor_action, 'viewed')} {anchor_title}"


def component_reason(component: str, category: str = "") -> str:
    """The explanation when no single item of the user's history is the cause."""
    where = f" in {category}" if category else ""
    return {
        "user_knn": "popular with shoppers like you",
        "als": f"matches your taste{where}",
        "bpr": f"matches your taste{where}",
        "content": f"similar to what you viewed{where}",
        "popular": f"popular{where}" if category else "popular in the shop",
        "trending": f"trending{where} this week",
    }.get(component, f"recommended for you{where}")


def popularity_reason(strategy: str, category: str | None) -> str:
    where = f"in {category}" if category else "in the shop"
    if strategy == "trending":
        return f"trending {where} this week"
    return f"popular {where}"


def similar_to_reason(title: str) -> str:
    """A product chosen for its likeness to ``title`` (content, or a session's view)."""
    return f"similar to {title}"


def similar_reason(strategy: str, title: str) -> str:
    """Why a neighbour of the product ``title`` is shown with it."""
    return {"item_knn": f"often chosen with {title}", "als": f"liked by the same shoppers as {title}",
            "content": similar_to_reason(title), "hybrid": similar_to_reason(title)}[strategy]


def popular_alike_reason(category: str, reason: str) -> str:
    """A product the model does not know yet gets popular products of its category, said so."""
    return f"popular in {category}" if category else reason


def bought_together_reason(times: float) -> str:
    return f"bought together {int(times)} times"


def strongest_actions(recent: Iterable[str], purchased: Iterable[str]) -> dict[str, str]:
    """The strongest thing the user did with each product they touched recently (``recent`` holds
    ``profiles.recent_entry`` strings) or ever bought."""
    strength = {a: i for i, a in enumerate(ACTION_STRENGTH)}
    out: dict[str, str] = {}
    for entry in recent:
        r = parse_recent(entry)
        if strength.get(r.action, -1) > strength.get(out.get(r.product_id, ""), -1):
            out[r.product_id] = r.action
    for pid in purchased:
        out[pid] = "purchase"
    return out


def anchor_of(model: RecommenderModel, row: sp.csr_matrix, product_id: str, component: str) -> str | None:
    """The product of the shopper's row that explains ``product_id``'s score by ``component``, if any."""
    if component in UNANCHORED:
        return None
    if component == "content":
        return model.content_anchor(row, product_id)
    return model.because_of(row, product_id)


def item_reason(component: str, anchor: str | None, titles: Mapping[str, str], actions: Mapping[str, str],
                category: str) -> str:
    """The reason of one personal recommendation: its anchor product by name (and what the shopper did
    with it), else what its component means."""
    if anchor and component == "content":
        return similar_to_reason(titles.get(anchor) or anchor)
    if anchor:
        return because_reason(titles.get(anchor) or anchor, actions.get(anchor, "view"))
    return component_reason(component, category)
