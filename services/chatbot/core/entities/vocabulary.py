"""The product vocabulary, read once from the JSON tables in ``data/`` (shipped with the package).

Each table lists forms in English and Chinese; they are handed on as "a|b" strings, the shape
``Lexicon.add`` takes for a catalog's own words too."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def _table(name: str) -> Any:
    return json.loads((resources.files(__package__) / "data" / name).read_text(encoding="utf-8"))


def _forms(words: list[str]) -> str:
    return "|".join(words)


def nouns() -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """(English forms, Chinese forms, features such as "cat:bags" and "noun:tote") per product word."""
    return tuple((_forms(e["en"]), _forms(e["zh"]), tuple(e["features"])) for e in _table("nouns.json")["entries"])


def attributes(name: str) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """(English forms, Chinese forms, values) per word of ``materials.json`` or ``styles.json``."""
    return tuple((_forms(e["en"]), _forms(e["zh"]), tuple(e["values"])) for e in _table(name)["entries"])


def colours() -> tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]:
    """(slug, English forms, Chinese forms) per colour, forms longest first."""
    return tuple((e["slug"], tuple(e["en"]), tuple(e["zh"])) for e in _table("colours.json")["entries"])


def not_products_zh() -> str:
    """Chinese words that contain a product word but are no product (鞋底, 钱包), as "a|b"."""
    return _forms(_table("not_products.json")["zh"])


def typo_stop_words() -> frozenset[str]:
    """Words never corrected to a product word."""
    return frozenset(_table("typo_stop_words.json")["words"])
