"""Natural-language understanding of one message: language, intent with confidence, entities."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from services.chatbot.core.entities import CatalogIndex, Entity, extract
from services.chatbot.core.intents import Embed, IntentClassifier, IntentPrediction, LanguageRoutedClassifier
from services.chatbot.core.language import detect_language, has_letters

MAX_CHARS = 2000


@dataclass(frozen=True)
class Parsed:
    language: str
    intent: IntentPrediction
    entities: list[Entity]


class NLU:
    def __init__(self, classifier: IntentClassifier | LanguageRoutedClassifier, embed: Embed,
                 catalog: CatalogIndex | None = None, order_ids: re.Pattern[str] | None = None) -> None:
        self.classifier = classifier
        self.embed = embed
        self.catalog = catalog
        self.order_ids = order_ids

    def parse(self, text: str, today: date, language_hint: str = "") -> Parsed:
        """``text`` must already be validated (1..MAX_CHARS characters, see ``check_message``)."""
        language = detect_language(text, language_hint)
        if not has_letters(text):  # digits, punctuation or emoji only: nothing to classify
            intent = IntentPrediction("out_of_scope", 0.0, (("out_of_scope", 0.0),))
        else:
            intent = self.classifier.predict([text], self.embed, languages=[language])[0]
        return Parsed(language, intent, extract(text, today, self.catalog, self.order_ids))


def check_message(text: str) -> str:
    """The reason a message cannot be processed, or "" when it can."""
    if not text or not text.strip():
        return "message must not be empty"
    if len(text) > MAX_CHARS:
        return f"message must be at most {MAX_CHARS} characters (got {len(text)})"
    if "\x00" in text or sum(1 for c in text if ord(c) < 32 and c not in "\n\r\t") > 0:
        return "message contains control characters"
    return ""
