"""The assistant's own data, kept in the repository: intents (train / held-out test), entities, FAQ.

``data/intents/<intent>.yaml`` holds ``train`` and ``test`` utterances per language ("en", "zh",
"mixed"). Training reads only ``train``; ``test`` is the held-out split the benchmark reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
INTENTS: tuple[str, ...] = (
    "order_status", "cancel_order", "return_request", "refund_status", "shipping_info", "change_address",
    "payment_issue", "product_inquiry", "product_recommendation", "stock_availability", "coupon_promotion",
    "account_help", "complaint", "human_agent", "greeting", "thanks", "goodbye", "out_of_scope",
)
SPLITS = ("train", "test")
VARIANTS = ("en", "zh", "mixed")


@dataclass(frozen=True)
class Utterance:
    text: str
    intent: str
    variant: str  # "en", "zh" or "mixed": how the data author wrote it


def load_utterances(split: str, directory: Path = DATA_DIR / "intents") -> list[Utterance]:
    """Every utterance of one split, in a stable order (intent, then variant, then file order)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    out: list[Utterance] = []
    for intent in INTENTS:
        path = directory / f"{intent}.yaml"
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        if doc.get("intent") != intent:
            raise ValueError(f"{path} declares intent {doc.get('intent')!r}")
        for variant in VARIANTS:
            for text in doc[split].get(variant) or []:
                out.append(Utterance(str(text).strip(), intent, variant))
    return out


@dataclass(frozen=True)
class FaqEntry:
    id: str
    topic: str
    question: dict[str, str]
    answer: dict[str, str]
    keywords: dict[str, list[str]]


def load_knowledge_base(path: Path = DATA_DIR / "knowledge_base.yaml") -> list[FaqEntry]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [
        FaqEntry(
            id=e["id"], topic=e["topic"],
            question={"en": e["question_en"], "zh": e["question_zh"]},
            answer={"en": e["answer_en"], "zh": e["answer_zh"]},
            keywords={"en": list(e.get("keywords_en") or []), "zh": list(e.get("keywords_zh") or [])},
        )
        for e in doc["entries"]
    ]


def load_entity_set(name: str) -> tuple[str, list[dict]]:
    """(today, messages) of ``data/entities/<name>.yaml`` (``dev`` or ``test``)."""
    doc = yaml.safe_load((DATA_DIR / "entities" / f"{name}.yaml").read_text(encoding="utf-8"))
    return str(doc["today"]), list(doc["messages"])
