"""The demo's live shoppers (shopai/demo/shoppers.py): how they react to an answer, against a fake shop."""

from __future__ import annotations

import random

from services.common.events import parse_event
from shopai.demo.shoppers import LiveShoppers, keys_with_roles, react


def clicked_share(match: float, answers: int = 4000) -> float:
    rng = random.Random(3)
    return sum(any(a == "click" for _, a in react([match] * 10, rng)) for _ in range(answers)) / answers


def test_better_matches_are_clicked_more_and_the_funnel_narrows():
    assert clicked_share(0.9) > clicked_share(0.4) + 0.05 > clicked_share(0.0) + 0.1
    rng = random.Random(5)
    actions = [a for _ in range(3000) for a in react([0.8] * 10, rng)]
    clicks, carts, buys = (sum(1 for _, a in actions if a == kind) for kind in ("click", "add_to_cart", "purchase"))
    assert clicks > carts > buys > 0


def test_the_top_of_the_list_is_looked_at_most():
    rng = random.Random(9)
    ranks = [rank for _ in range(3000) for rank, action in react([0.5] * 10, rng) if action == "click"]
    assert ranks.count(0) > 2 * ranks.count(2) > 0


def test_keys_are_found_by_role_and_admin_holds_them_all():
    text = "# dev keys\nkey-admin-0123456789abcdef:admin\nkey-ingest-0123456789abcd:ingest+codes\n"
    found = keys_with_roles(text)
    assert found["ingest"] == "key-ingest-0123456789abcd" and found["admin"] == "key-admin-0123456789abcdef"
    assert "sessions" not in found


class FakeShop:
    def __init__(self) -> None:
        self.sent: list[dict] = []

    def recommendations(self, user: str, k: int) -> dict:
        return {"user_id": user, "strategy": "hybrid", "recommendation_id": "ab" * 16,
                "items": [{"product_id": f"p{i}"} for i in range(k)]}

    def send(self, events: list[dict]) -> None:
        self.sent.extend(events)


def test_a_session_sends_its_reactions_with_the_answers_id():
    truth = {"users": {"u1": {}}, "products": {}}  # products unknown to the truth: a match of 0
    shop = FakeShop()
    shoppers = LiveShoppers(shop, truth, seed=1)
    for _ in range(200):
        shoppers.session()
    assert shoppers.tally.sessions == 200 and 0 < shoppers.tally.clicked < 200
    assert shop.sent and all(e["payload"]["recommendation_id"] == "ab" * 16 and e["payload"]["user_id"] == "u1"
                             for e in shop.sent)
    assert {e["type"] for e in shop.sent} <= {"interaction.click", "interaction.add_to_cart", "interaction.purchase"}
    for event in shop.sent:
        parse_event(event)  # valid as POST /v1/events takes them


def test_live_shoppers_start_only_when_asked_and_able(tmp_path):
    import threading

    from services.common.settings import Settings
    from shopai.demo.shoppers import start_live_shoppers

    stop = threading.Event()
    truth = tmp_path / "truth.json"
    truth.write_text('{"users": {"u1": {}}, "products": {}}')
    off = Settings(demo_live_sessions_per_second=0, gateway_api_keys="k" * 32 + ":admin")
    assert start_live_shoppers(off, "http://127.0.0.1:9", truth, stop) is None
    no_keys = Settings(demo_live_sessions_per_second=1)
    assert start_live_shoppers(no_keys, "http://127.0.0.1:9", truth, stop) is None
    no_truth = Settings(demo_live_sessions_per_second=1, gateway_api_keys="k" * 32 + ":admin")
    assert start_live_shoppers(no_truth, "http://127.0.0.1:9", tmp_path / "none.json", stop) is None
