"""``extract``: every rule and the catalog index on one message, overlaps settled."""

from __future__ import annotations

import re
from datetime import date

from services.chatbot.core.entities.candidates import RANK, Cand, Entity, resolve
from services.chatbot.core.entities.catalog import CatalogIndex
from services.chatbot.core.entities.colours import colors
from services.chatbot.core.entities.contacts import contacts_and_ids
from services.chatbot.core.entities.dates import dates
from services.chatbot.core.entities.lexicon import STATIC_LEXICON
from services.chatbot.core.entities.money import money
from services.chatbot.core.entities.quantities import quantities
from services.chatbot.core.entities.sizes import sizes
from services.chatbot.core.entities.text import fold


def extract(text: str, today: date, catalog: CatalogIndex | None = None,
            order_ids: re.Pattern[str] | None = None) -> list[Entity]:
    """Every entity in the message, sorted by start, non-overlapping.

    ``today`` anchors relative dates ("yesterday", "上周五"); without ``catalog`` no products are found;
    ``order_ids``: the shop's own order-id rule (``contacts.order_id_rule``), else ShopAI's ORD- ids.
    """
    if not text:
        return []
    f = fold(text)
    cands = contacts_and_ids(f, text, order_ids) + money(f) + dates(f, today) + sizes(text, f) + colors(f)
    if catalog is not None:
        cands += [Cand("product", s, e, pid, RANK["product"]) for s, e, pid, _ in catalog.match_folded(f)]
        cands += quantities(f, catalog.lexicon)
    else:
        cands += quantities(f, STATIC_LEXICON)
    return [Entity(c.type, text[c.start:c.end], c.start, c.end, c.normalized) for c in resolve(cands)]
