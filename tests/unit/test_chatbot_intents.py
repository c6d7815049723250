"""The trained intent model on the seed document's examples and on the held-out split."""

from __future__ import annotations

from datetime import date

import pytest

from services.chatbot.core.nlu import NLU

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("text, intent", [
    ("我如何退货？", "return_request"),
    ("我想要退款", "refund_status"),
    ("How do I return an item?", "return_request"),
    ("where is my order ORD-20481234?", "order_status"),
    ("do you have the red one in size M", "stock_availability"),
    ("转人工", "human_agent"),
    ("what's the weather in Paris tomorrow?", "out_of_scope"),
])
def test_seed_examples(chatbot_model_dir, text, intent):
    _, holder, embedders = chatbot_model_dir
    parsed = NLU(holder.model, embedders).parse(text, date(2026, 11, 28))
    assert parsed.intent.name == intent, parsed.intent
    assert 0 < parsed.intent.confidence <= 1


def test_held_out_accuracy_is_reported_with_the_version(chatbot_model_dir):
    _, holder, _ = chatbot_model_dir
    metrics = holder.meta["metrics"]
    # A broken model (e.g. labels shuffled) scores ~6%; this bound only guards against that, the
    # benchmark reports the real figures.
    assert metrics["accuracy_en"] > 0.9 and metrics["accuracy_zh"] > 0.9, metrics
