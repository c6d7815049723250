"""Entities in a customer's message: order ids, products, quantities, money, dates, contacts, sizes, colours.

Pure Python with no model and no I/O: the closed-form types (ids, amounts, dates, phones) follow the
shop's conventions exactly with rules, and products are found with a small catalog index, so a
message costs about half a millisecond against the 2,000-product demo catalog and every decision can
be traced to a rule or a score.

Offsets are code-point indices into the original text. All matching runs on a folded copy of the
same length (lower case, full-width forms to ASCII), so a match's span is the original's span.

The modules:

- ``text``: the folded copy and numerals (三百五, "a couple of"); ``candidates``: ``Entity``, the
  candidate spans the rules propose and how overlaps are settled (an id beats a quantity);
- the rules, one module per kind: ``contacts`` (e-mails, order ids, phones), ``money``, ``dates``,
  ``sizes``, ``colours``, ``quantities``;
- ``vocabulary`` reads the product vocabulary (nouns, materials, styles, colours, words that are no
  product, words never typo-corrected) from the JSON tables in ``data/``; ``lexicon`` finds those
  words, and a catalog's brands and title words, in a message, typos corrected;
- ``catalog``: ``CatalogIndex``, which product a run of product words names;
- ``extraction``: ``extract``; ``scoring``: ``entity_scores`` against a labelled set.
"""

from services.chatbot.core.entities.candidates import ENTITY_TYPES, Entity
from services.chatbot.core.entities.catalog import CatalogIndex
from services.chatbot.core.entities.extraction import extract
from services.chatbot.core.entities.scoring import entity_scores

__all__ = ["ENTITY_TYPES", "CatalogIndex", "Entity", "entity_scores", "extract"]
