"""The assistant's dialogue over a fixed world: slot filling, context, confirmation, grounded answers,
hand-off, languages. Intents are given here (the classifier is tested on its own); entities come from
the real extractor."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.chatbot.core.data import load_knowledge_base
from services.chatbot.core.dialogue import Dialogue, Understood, anger, new_session
from services.chatbot.core.entities import CatalogIndex, extract
from services.chatbot.core.knowledge import KnowledgeBase
from services.chatbot.core.language import detect_language
from services.chatbot.core.masking import mask_personal_data

TODAY = date(2026, 11, 28)


def ts(day: str) -> float:
    return datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()


PRODUCTS = {
    "p1": {"product_id": "p1", "title": "Nordwind Slim-fit Black Cotton T-shirt", "title_zh": "Nordwind 修身黑色纯棉T恤",
           "brand": "Nordwind", "category": "t-shirts", "price": 99.0, "currency": "CNY",
           "attributes": {"colour": "black", "colour_zh": "黑色", "material": "cotton", "material_zh": "纯棉",
                          "size": "S,M,L"}},
    "p2": {"product_id": "p2", "title": "Nordwind Slim-fit Red Cotton T-shirt", "title_zh": "Nordwind 修身红色纯棉T恤",
           "brand": "Nordwind", "category": "t-shirts", "price": 99.0, "currency": "CNY",
           "attributes": {"colour": "red", "colour_zh": "红色", "material": "cotton", "material_zh": "纯棉",
                          "size": "M,L,XL"}},
}
ORDERS = {
    "ORD-20481234": {"order_id": "ORD-20481234", "user_id": "u1", "status": "delivered", "total": "99.0",
                     "currency": "CNY", "created_at": ts("2026-11-10"), "delivered_at": ts("2026-11-15"),
                     "lines": [{"product_id": "p1", "quantity": 1, "unit_price": 99.0}]},
    "ORD-20485555": {"order_id": "ORD-20485555", "user_id": "u1", "status": "shipped", "total": "198.0",
                     "currency": "CNY", "created_at": ts("2026-11-25"), "shipped_at": ts("2026-11-26"),
                     "carrier": "SF Express", "tracking_no": "SF1234567890", "expected_delivery": "2026-11-30",
                     "lines": [{"product_id": "p2", "quantity": 2, "unit_price": 99.0}]},
    "ORD-20489999": {"order_id": "ORD-20489999", "user_id": "u2", "status": "paid", "total": "99.0",
                     "currency": "CNY", "created_at": ts("2026-11-27"), "paid_at": ts("2026-11-27"),
                     "lines": [{"product_id": "p1", "quantity": 1, "unit_price": 99.0}]},
}


class FakeWorld:
    def __init__(self) -> None:
        self.knowledge = KnowledgeBase(load_knowledge_base(), None)
        self.stock = {"p1": 3, "p2": 0}

    def order(self, order_id):
        return ORDERS.get(order_id)

    def user_orders(self, user_id):
        return sorted((o for o in ORDERS.values() if o["user_id"] == user_id), key=lambda o: -o["created_at"])

    def product(self, product_id):
        return PRODUCTS.get(product_id)

    def on_hand(self, product_id):
        return self.stock.get(product_id)

    def variants(self, product):
        return [p for p in PRODUCTS.values() if p["product_id"] != product["product_id"]]

    def recommend(self, user_id, product_ids, k):
        self.recommended_for = user_id
        return [PRODUCTS["p2"]]

    def faq(self, text, language, topics):
        return self.knowledge.answer(text, topics)

    def faq_entry(self, entry_id):
        return self.knowledge.by_id.get(entry_id)

    def today(self):
        return TODAY


CATALOG = CatalogIndex(PRODUCTS.values())


class Chat:
    """A conversation: say(text, intent) runs one turn with the real entity extractor. The user is a
    signed-in (verified) one unless ``verified=False`` makes ``user_id`` a mere claim."""

    def __init__(self, user_id: str = "", verified: bool = True) -> None:
        self.dialogue = Dialogue(FakeWorld())
        self.state = new_session()
        self.user_id = user_id
        self.verified = verified and bool(user_id)

    def say(self, text: str, intent: str, confidence: float = 0.9):
        nlu = Understood(intent, confidence, extract(text, TODAY, CATALOG), detect_language(text))
        return self.dialogue.respond(self.state, nlu, text, self.user_id, self.verified)


def test_how_do_i_return_an_item_gives_the_steps_asks_which_order_then_continues_with_it():
    chat = Chat(user_id="u1")
    first = chat.say("How do I return an item?", "return_request")
    steps = FakeWorld().knowledge.by_id["return-steps"].answer["en"]
    assert steps in first.reply and "Which order would you like to return?" in first.reply
    assert "ORD-20485555 (Nordwind Slim-fit Red Cotton T-shirt ×2), ORD-20481234" in first.reply
    assert chat.state["pending"] == {"kind": "slot", "intent": "return_request", "slot": "order_id"}
    second = chat.say("it's ORD-20481234", "order_status", confidence=0.4)  # the slot, whatever the classifier says
    assert second.intent == "return_request"
    assert "ORD-20481234" in second.reply and "within the 30-day return window" in second.reply
    assert "Nordwind Slim-fit Black Cotton T-shirt" in second.reply and "Dec 15" in second.reply


def test_an_unknown_order_is_not_found_never_invented():
    chat = Chat(user_id="u1")
    reply = chat.say("where is order ORD-99999999?", "order_status")
    assert "couldn't find an order ORD-99999999" in reply.reply
    assert not any(word in reply.reply for word in ("shipped", "delivered", "paid"))


def test_someone_elses_order_is_not_shown():
    reply = Chat(user_id="u1").say("status of ORD-20489999", "order_status")
    assert "couldn't find" in reply.reply and "paid" not in reply.reply


def test_status_comes_from_the_order_and_the_other_one_follows_context():
    chat = Chat(user_id="u1")
    first = chat.say("where is my order ORD-20485555", "order_status")
    assert "shipped on Nov 26 with SF Express" in first.reply and "SF1234567890" in first.reply
    assert "expected delivery Nov 30" in first.reply and first.product_ids == ["p2"]
    other = chat.say("and the other one?", "greeting", confidence=0.3)
    assert other.intent == "order_status" and "ORD-20481234" in other.reply and "delivered on Nov 15" in other.reply


def test_cancelling_asks_for_confirmation_first():
    chat = Chat(user_id="u2")
    ask = chat.say("cancel my order ORD-20489999", "cancel_order")
    assert "Please answer yes or no" in ask.reply and not ask.actions
    done = chat.say("yes", "greeting")
    assert "cancellation of order ORD-20489999 has been sent" in done.reply
    assert done.actions[0][0] == "cancel_order" and done.actions[0][1]["order_id"] == "ORD-20489999"
    chat = Chat(user_id="u2")
    chat.say("取消订单ORD-20489999", "cancel_order")
    kept = chat.say("算了", "goodbye")
    assert "不会取消" in kept.reply and not kept.actions


def test_a_shipped_order_cannot_be_cancelled():
    reply = Chat(user_id="u1").say("cancel ORD-20485555", "cancel_order")
    assert "already shipped" in reply.reply and not reply.actions


def test_refunds_in_chinese_ask_for_the_order_and_explain_the_policy():
    chat = Chat(user_id="u1")
    reply = chat.say("我想要退款", "refund_status")
    assert chat.state["language"] == "zh" and "哪一个订单" in reply.reply and "ORD-20485555" in reply.reply
    refund_policy = FakeWorld().knowledge.by_id["refunds-timing"].answer["zh"]
    assert refund_policy in reply.reply


def test_stock_of_the_red_one_in_size_m_uses_the_product_in_context():
    chat = Chat()
    first = chat.say("is the Nordwind Slim-fit Black Cotton T-shirt in stock?", "stock_availability")
    assert "in stock (only 3 left)" in first.reply
    red = chat.say("do you have the red one in size M", "stock_availability")
    assert "Nordwind Slim-fit Red Cotton T-shirt" in red.reply and "sold out" in red.reply
    assert "Size M is offered" in red.reply and red.product_ids == ["p2"]


def test_asking_for_a_person_hands_off_with_the_transcript():
    chat = Chat()
    chat.say("hi", "greeting")
    turn = chat.say("I want to talk to a real person, my email is li.wei@example.com", "human_agent")
    assert turn.handoff and turn.handoff_reason == "asked for a person"
    kind, details = turn.actions[0]
    assert kind == "handoff" and next(t["text"] for t in details["transcript"]) == "hi"


def test_an_angry_complaint_hands_off_a_calm_one_does_not():
    calm = Chat().say("The shirt I got has a small stain.", "complaint")
    assert not calm.handoff and "sorry" in calm.reply
    angry = Chat().say("THIS IS THE WORST SERVICE EVER!!! Garbage!", "complaint")
    assert angry.handoff and angry.handoff_reason == "angry complaint"
    assert anger("垃圾服务！！骗子") >= 0.5 and anger("thanks, all good") == 0


def test_repeated_failure_to_understand_hands_off():
    chat = Chat()
    assert not chat.say("blorp fizz", "product_inquiry", confidence=0.2).handoff
    second = chat.say("zzkk qq", "coupon_promotion", confidence=0.1)
    assert second.handoff and "not understood" in second.handoff_reason


def test_policy_questions_are_answered_from_the_knowledge_base():
    reply = Chat().say("how long does standard shipping take?", "shipping_info")
    assert reply.reply == FakeWorld().knowledge.by_id["shipping-standard"].answer["en"]


@pytest.mark.parametrize("text, language", [("我如何退货？", "zh"), ("How do I return an item?", "en"),
                                            ("我的order到哪了", "zh"), ("ORD-20481234", "en")])
def test_language_detection(text, language):
    assert detect_language(text) == language


def test_personal_data_is_masked():
    masked = mask_personal_data("call 13812345678 or mail li.wei@example.com, my address is 88 Nanjing Rd, "
                                "order ORD-20481234, card 6222 0212 3456 7890 123")
    assert "13812345678" not in masked and "li.wei" not in masked and "Nanjing" not in masked
    assert "6222" not in masked and "ORD-20481234" in masked


# ------------------------------------------------------------------ trust: orders only for the verified owner

SIGN_IN = {"en": "please sign in", "zh": "请先登录"}
ORDER_QUESTIONS = [  # (intent, English, Chinese): every kind of order question, with and without a number
    ("order_status", "where is my order ORD-20485555?", "我的订单ORD-20485555到哪了？"),
    ("order_status", "what's the tracking number of ORD-20485555", "ORD-20485555的运单号是多少"),
    ("order_status", "show me my orders", "我的订单"),
    ("cancel_order", "cancel my order ORD-20489999", "取消订单ORD-20489999"),
    ("return_request", "I want to return ORD-20481234", "我要退货，订单ORD-20481234"),
    ("refund_status", "where is my refund for ORD-20485555", "订单ORD-20485555的退款到了吗"),
    ("change_address", "change the address of ORD-20489999", "修改订单ORD-20489999的收货地址"),
    ("greeting", "ORD-20481234", "订单 ORD-20481234"),  # a bare order number, whatever the classifier says
]
ORDER_FACTS = ("Nordwind", "SF1234567890", "SF Express", "¥", "元", "ORD-2048")


@pytest.mark.parametrize("language", ["en", "zh"])
@pytest.mark.parametrize("claimed", ["", "u1"], ids=["anonymous", "claimed-user"])
@pytest.mark.parametrize("intent, english, chinese", ORDER_QUESTIONS)
def test_order_questions_without_a_verified_user_ask_to_sign_in(intent, english, chinese, claimed, language):
    chat = Chat(user_id=claimed, verified=False)
    turn = chat.say(english if language == "en" else chinese, intent)
    assert SIGN_IN[language] in turn.reply and chat.state["language"] == language
    assert not any(fact in turn.reply for fact in ORDER_FACTS), turn.reply
    assert not turn.actions and not turn.product_ids and chat.state["pending"] is None
    assert chat.state["order_id"] == "" and chat.state["orders"] == []


def test_signed_out_return_and_refund_questions_still_get_the_policy():
    steps = FakeWorld().knowledge.by_id["return-steps"].answer["zh"]
    assert steps in Chat().say("我如何退货？", "return_request").reply
    refunds = FakeWorld().knowledge.by_id["refunds-timing"].answer["en"]
    assert refunds in Chat().say("when do I get my refund?", "refund_status").reply


def test_signed_out_a_yes_cannot_confirm_a_cancellation():
    chat = Chat(user_id="u2")
    assert "yes or no" in chat.say("cancel my order ORD-20489999", "cancel_order").reply
    chat.verified = False  # the same session id, now without the shopper's token
    turn = chat.say("yes", "greeting")
    assert not turn.actions and "cancellation" not in turn.reply


def test_everything_else_is_answered_without_signing_in():
    chat = Chat(user_id="u9", verified=False)
    assert chat.say("how long does standard shipping take?", "shipping_info").reply == \
        FakeWorld().knowledge.by_id["shipping-standard"].answer["en"]
    assert "in stock" in chat.say("is the Nordwind Slim-fit Black Cotton T-shirt in stock?", "stock_availability").reply
    assert "sorry" in chat.say("The shirt from ORD-20481234 has a small stain.", "complaint").reply
    assert "You might like" in chat.say("recommend me something", "product_recommendation").reply


@pytest.mark.parametrize("verified, expected", [(False, ""), (True, "u9")], ids=["claimed", "verified"])
def test_recommendations_use_the_history_of_a_verified_shopper_only(verified, expected):
    chat = Chat(user_id="u9", verified=verified)
    chat.say("recommend me something", "product_recommendation")
    assert chat.dialogue.world.recommended_for == expected


@pytest.mark.parametrize("intent, text", [
    ("order_status", "where is my order {}?"), ("order_status", "我的订单{}到哪了？"),
    ("cancel_order", "cancel order {}"), ("return_request", "I want to return {}"),
    ("refund_status", "订单{}退款了吗"), ("change_address", "change the address of {}"),
])
def test_someone_elses_order_gets_the_same_reply_as_an_unknown_one(intent, text):
    theirs_chat, unknown_chat = Chat(user_id="u1"), Chat(user_id="u1")
    theirs = theirs_chat.say(text.format("ORD-20489999"), intent)  # u2's order
    unknown = unknown_chat.say(text.format("ORD-99999999"), intent)
    assert theirs.reply.replace("ORD-20489999", "ORD-X") == unknown.reply.replace("ORD-99999999", "ORD-X")
    assert (theirs.intent, theirs.suggestions, theirs.product_ids, theirs.actions) == \
        (unknown.intent, unknown.suggestions, unknown.product_ids, unknown.actions)
    assert {**theirs_chat.state, "turns": []} == {**unknown_chat.state, "turns": []}
    assert "paid" not in theirs.reply and "已付款" not in theirs.reply


def test_the_signed_in_shoppers_own_orders_are_answered():
    chat = Chat(user_id="u1")
    latest = chat.say("我的订单到哪了？", "order_status")
    assert "ORD-20485555" in latest.reply and "SF1234567890" in latest.reply and latest.product_ids == ["p2"]
    returned = chat.say("I want to return ORD-20481234", "return_request")
    assert "within the 30-day return window" in returned.reply


def test_a_session_continued_by_another_shopper_forgets_the_orders_in_it():
    chat = Chat(user_id="u1")
    assert "SF1234567890" in chat.say("where is my order ORD-20485555", "order_status").reply
    chat.user_id = "u2"  # the same session id, another shopper's token
    other = chat.say("and the other one?", "greeting", confidence=0.3)
    assert "ORD-2048" not in other.reply or "ORD-20489999" in other.reply
    assert "SF1234567890" not in chat.say("where is it now?", "order_status").reply


def test_hand_offs_carry_only_the_verified_user():
    claimed = Chat(user_id="u1", verified=False).say("talk to a person", "human_agent")
    assert claimed.actions[0][0] == "handoff" and claimed.actions[0][1]["user_id"] == ""
    signed_in = Chat(user_id="u1").say("talk to a person", "human_agent")
    assert signed_in.actions[0][1]["user_id"] == "u1"
    chat = Chat(user_id="u2")
    chat.say("cancel my order ORD-20489999", "cancel_order")
    kind, details = chat.say("yes", "greeting").actions[0]
    assert (kind, details["user_id"], details["order_id"]) == ("cancel_order", "u2", "ORD-20489999")


def test_a_shop_with_its_own_order_ids_gets_its_own_hint():
    from services.chatbot.core.entities.contacts import order_id_rule

    chat = Chat(user_id="u1")
    chat.dialogue.world.order_ids = order_id_rule(r"#\d{4,}")
    nlu = Understood("order_status", 0.9, extract("where is #4711?", TODAY, CATALOG, chat.dialogue.world.order_ids),
                     "en")
    reply = chat.dialogue.respond(chat.state, nlu, "where is #4711?", chat.user_id, True)
    assert "couldn't find an order #4711" in reply.reply and "order confirmation" in reply.reply
    assert "ORD-" not in reply.reply
