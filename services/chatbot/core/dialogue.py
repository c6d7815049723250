"""Dialogue management: one turn = (session state, understood message, facts) -> reply + new state.

Pure: every fact comes through ``World`` (the service implements it over Redis and the
recommender), the state is a JSON-serialisable dict the service keeps in Redis with a TTL.
What it does:
- slot filling: an order question without an order number asks for it, then continues;
- context: the order / product being discussed carries over; "and the other one?" switches to
  the other order or product;
- confirmation before an action (cancelling an order);
- hand-off to a person: asked for, an angry complaint, or repeated failure to understand;
- trust: orders are spoken of only to a verified user (the gateway checked the shopper's token) and only
  their own; anyone else asking about an order is asked to sign in, and another user's order number gets
  the same answer as one that does not exist.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

from services.chatbot.core import replies as R
from services.chatbot.core.entities import Entity

SMALL_TALK = ("greeting", "thanks", "goodbye")
ORDER_INTENTS = ("order_status", "cancel_order", "return_request", "refund_status", "change_address")
PRODUCT_INTENTS = ("product_inquiry", "stock_availability")
# FAQ topics that may answer each intent (knowledge_base.yaml `topic`).
FAQ_TOPICS = {
    "shipping_info": ("shipping",),
    "payment_issue": ("payment",),
    "coupon_promotion": ("coupons",),
    "account_help": ("account", "privacy"),
    "change_address": ("orders",),
    "return_request": ("returns",),
    "refund_status": ("refunds",),
    "product_inquiry": ("sizing", "care", "warranty"),
    "complaint": ("contact",),
}
LOW_CONFIDENCE = 0.45
FAILURES_BEFORE_HANDOFF = 2
MAX_TURNS_KEPT = 20
RETURN_WINDOW_DAYS = 30

_FOLLOW_UP = re.compile(
    r"^\s*(and|what about|how about|and what about)?\s*(the other( one)?|the other order|the second one|that other one)"
    r"\s*[?？.!]*\s*$|另一个|另外一个|另一单|另一件|另外那个|还有一个呢|那另一个", re.IGNORECASE)
_YES = re.compile(r"^\s*(yes|yeah|yep|yup|sure|ok(ay)?|confirm(ed)?|please do|do it|go ahead|y|是|是的|对|好|好的|确认|"
                  r"确定|可以|嗯|要)\s*[.!！。]*\s*$", re.IGNORECASE)
_NO = re.compile(r"^\s*(no|nope|nah|don'?t|do not|cancel that|never ?mind|n|不|不要|不用|不用了|否|算了|先不)\s*[.!！。]*\s*$",
                 re.IGNORECASE)
_ANGER_WORDS = re.compile(
    r"worst|terrible|horrible|awful|ridiculous|unacceptable|disgusting|scam|fraud|useless|pathetic|furious|angry|"
    r"rubbish|garbage|trash|hate|wtf|damn|hell|sue|lawyer|never again|"
    r"垃圾|气死|骗子|太差|差评|什么破|坑人|恶心|投诉你们|愤怒|生气|无语|滚|废物|举报|退钱|黑店", re.IGNORECASE)


class World(Protocol):
    """The facts a reply may use; nothing else is ever stated as fact."""

    def order(self, order_id: str) -> dict | None: ...
    def user_orders(self, user_id: str) -> list[dict]: ...
    def product(self, product_id: str) -> dict | None: ...
    def on_hand(self, product_id: str) -> int | None: ...
    def variants(self, product: dict) -> list[dict]: ...  # the same model in other colours
    def recommend(self, user_id: str, product_ids: list[str], k: int) -> list[dict]: ...
    def faq(self, text: str, language: str, topics: Sequence[str]) -> Any | None: ...  # best FaqEntry or None
    def faq_entry(self, entry_id: str) -> Any | None: ...
    def today(self) -> date: ...


@dataclass
class Understood:
    intent: str
    confidence: float
    entities: list[Entity]
    language: str


@dataclass
class Turn:
    reply: str
    intent: str
    handoff: bool = False
    handoff_reason: str = ""
    suggestions: list[str] = field(default_factory=list)
    product_ids: list[str] = field(default_factory=list)
    # Actions for the service to carry out: ("handoff", {...}) or ("cancel_order", {...}).
    actions: list[tuple[str, dict]] = field(default_factory=list)


def new_session() -> dict:
    return {"language": "en", "turns": [], "last_intent": "", "order_id": "", "orders": [], "product_id": "",
            "products": [], "pending": None, "failures": 0, "handed_off": False, "owner": ""}


def _bind_owner(state: dict, owner: str) -> None:
    """The order context (orders discussed, a pending slot or confirmation) belongs to the verified user it
    was built for: a session continued by anyone else starts without it, so a shared id reveals nothing."""
    if state.get("owner", "") != owner:
        state.update(owner=owner, order_id="", orders=[], pending=None)


def _about_orders(nlu: Understood, order_entity: Entity | None) -> bool:
    """An order question: an order intent, or an order number that nothing else in the message explains."""
    if nlu.intent in ORDER_INTENTS:
        return True
    unexplained = nlu.confidence < LOW_CONFIDENCE or nlu.intent in (*SMALL_TALK, "out_of_scope")
    return order_entity is not None and unexplained


def anger(text: str) -> float:
    """0..1: insults and anger words, shouting in capitals, runs of exclamation marks."""
    score = 0.5 * min(2, len(_ANGER_WORDS.findall(text)))
    letters = [c for c in text if c.isalpha() and c.isascii()]
    if len(letters) >= 8 and sum(c.isupper() for c in letters) / len(letters) > 0.7:
        score += 0.5
    if re.search(r"[!！]{2,}", text):
        score += 0.3
    return min(1.0, score)


def _entity(nlu: Understood, kind: str) -> Entity | None:
    return next((e for e in nlu.entities if e.type == kind), None)


class Dialogue:
    def __init__(self, world: World) -> None:
        self.world = world

    def respond(self, state: dict, nlu: Understood, text: str, user_id: str = "", verified: bool = False) -> Turn:
        """One turn. Orders and personal suggestions come only from a ``verified`` user; a claimed one is ignored."""
        lang = nlu.language
        owner = user_id if verified else ""
        _bind_owner(state, owner)
        state["language"] = lang
        state["turns"] = (state["turns"] + [{"role": "user", "text": text}])[-MAX_TURNS_KEPT:]
        turn = self._turn(state, nlu, text, user_id, owner, lang)
        if turn.handoff:
            state["handed_off"] = True
            transcript = list(state["turns"])
            turn.actions.append(("handoff", {"reason": turn.handoff_reason, "intent": turn.intent, "language": lang,
                                             "user_id": owner, "transcript": transcript}))
        state["last_intent"] = turn.intent if turn.intent not in SMALL_TALK else state["last_intent"]
        state["turns"] = (state["turns"] + [{"role": "assistant", "text": turn.reply}])[-MAX_TURNS_KEPT:]
        if not turn.suggestions:
            turn.suggestions = R.SUGGESTIONS["default"][lang]
        return turn

    # -- routing --------------------------------------------------------------------------------
    def _turn(self, state: dict, nlu: Understood, text: str, user_id: str, owner: str, lang: str) -> Turn:
        pending = state.get("pending")
        if pending and pending.get("kind") == "confirm":
            state["pending"] = None
            if _YES.match(text):
                return self._confirmed(state, pending, owner, lang)
            if _NO.match(text):
                return Turn(R.say("cancel_kept", lang, order_id=pending["order_id"]), "cancel_order")
        order_entity = _entity(nlu, "order_id")
        if pending and pending.get("kind") == "slot":
            state["pending"] = None
            if order_entity is not None:  # the order number we asked for: continue the interrupted request
                nlu = Understood(pending["intent"], 1.0, nlu.entities, lang)
        other = False
        if _FOLLOW_UP.search(text) and state.get("last_intent"):
            nlu = Understood(state["last_intent"], 1.0, nlu.entities, lang)
            other = True
        intent = nlu.intent
        if intent == "human_agent":
            return Turn(R.say("handoff", lang), intent, handoff=True, handoff_reason="asked for a person")
        if intent == "complaint" and anger(text) >= 0.5 or anger(text) >= 1.0:
            return Turn(R.say("handoff_angry", lang), "complaint", handoff=True, handoff_reason="angry complaint")
        if not owner and _about_orders(nlu, order_entity):
            state["failures"] = 0
            return self._sign_in(nlu.intent, text, lang)
        failed = nlu.confidence < LOW_CONFIDENCE and intent not in SMALL_TALK and not other
        state["failures"] = state["failures"] + 1 if failed else 0
        if state["failures"] >= FAILURES_BEFORE_HANDOFF:
            state["failures"] = 0
            return Turn(R.say("handoff_failures", lang), intent, handoff=True,
                        handoff_reason=f"{FAILURES_BEFORE_HANDOFF} messages in a row not understood")
        if failed:
            return Turn(R.say("not_understood", lang), intent)
        if intent in ORDER_INTENTS:
            return self._order_turn(state, nlu, text, owner, lang, other)
        if intent in PRODUCT_INTENTS:
            return self._product_turn(state, nlu, lang, other)
        if intent == "product_recommendation":  # from the verified shopper's history only, never a claimed one's
            return self._recommend(state, owner, lang)
        if intent == "complaint":
            return Turn(R.say("complaint", lang), intent, suggestions=R.SUGGESTIONS["default"][lang])
        if intent in SMALL_TALK:
            return Turn(R.say(intent, lang), intent,
                        suggestions=R.SUGGESTIONS["greeting"][lang] if intent == "greeting" else [])
        if intent in FAQ_TOPICS:
            entry = self.world.faq(text, lang, FAQ_TOPICS[intent])
            return Turn(entry.answer[lang] if entry else R.say("faq_fallback", lang), intent)
        return Turn(R.say("out_of_scope", lang), "out_of_scope")

    # -- orders (``user_id`` here is always the verified owner) -----------------------------------
    def _sign_in(self, intent: str, text: str, lang: str) -> Turn:
        """An order question from someone not signed in: the policy it touches, and a request to sign in."""
        if intent == "return_request":
            reply = R.say("return_sign_in", lang, steps=self._faq_answer("return-steps", text, lang, ("returns",)))
        elif intent == "refund_status":
            reply = R.say("refund_sign_in", lang, policy=self._faq_answer("refunds-timing", text, lang, ("refunds",)))
        else:
            reply = R.say("sign_in", lang)
        return Turn(reply, intent, suggestions=R.SUGGESTIONS["sign_in"][lang])

    def _resolve_order(self, state: dict, nlu: Understood, user_id: str, other: bool) -> tuple[dict | None, str]:
        """(order, problem): problem is "" when found, else the reply key explaining why not."""
        entity = _entity(nlu, "order_id")
        if entity is not None:
            order_id = (entity.normalized or entity.value).upper()
        elif other:
            order_id = self._other_order(state, user_id)
        else:
            order_id = state.get("order_id", "")
        if not order_id:
            orders = self.world.user_orders(user_id)
            if not orders:
                return None, "no_orders"
            if len(orders) > 1 and nlu.intent != "order_status":
                return None, "which_order"
            order_id = orders[0]["order_id"]  # "where is my order": the most recent one
        order = self.world.order(order_id)
        if order is None or order.get("user_id") != user_id:
            state["order_id"] = ""
            return {"order_id": order_id}, self._not_found()  # someone else's order is not found either
        state["order_id"] = order_id
        state["orders"] = ([order_id] + [o for o in state["orders"] if o != order_id])[:10]
        return order, ""

    def _not_found(self) -> str:
        """The reply to an unknown order id: with ShopAI's ORD- format as the hint, or the shop's own."""
        return "order_not_found" if getattr(self.world, "order_ids", None) is None else "order_not_found_shop"

    def _other_order(self, state: dict, user_id: str) -> str:
        current = state.get("order_id", "")
        for order_id in state.get("orders", []):
            if order_id != current:
                return order_id
        for order in self.world.user_orders(user_id):
            if order["order_id"] != current:
                return order["order_id"]
        return ""

    def _order_turn(self, state: dict, nlu: Understood, text: str, user_id: str, lang: str, other: bool) -> Turn:
        intent = nlu.intent
        order, problem = self._resolve_order(state, nlu, user_id, other)
        if problem == "which_order":
            state["pending"] = {"kind": "slot", "intent": intent, "slot": "order_id"}
            return Turn(self._which_order_text(intent, text, user_id, lang), intent)
        if problem:
            return Turn(R.say(problem, lang, order_id=(order or {}).get("order_id", "")), intent)
        facts = self._order_facts(order, lang)
        status = order.get("status", "")
        if intent == "order_status":
            return Turn(R.say("order_status", lang, status=self._status_text(order, facts, lang), **facts), intent,
                        suggestions=R.SUGGESTIONS["order"][lang], product_ids=facts["product_ids"])
        if intent == "cancel_order":
            if status in ("created", "paid"):
                state["pending"] = {"kind": "confirm", "action": "cancel_order", "order_id": order["order_id"],
                                    "user_id": user_id}
                return Turn(R.say("cancel_confirm", lang, **facts), intent, suggestions=R.SUGGESTIONS["confirm"][lang])
            key = {"shipped": "cancel_too_late", "delivered": "cancel_delivered"}.get(status, "already_cancelled")
            return Turn(R.say(key, lang, **facts), intent)
        if intent == "return_request":
            return Turn(self._return_text(order, facts, status, text, lang), intent)
        if intent == "refund_status":
            return Turn(self._refund_text(order, facts, status, text, lang), intent)
        # change_address
        if status in ("created", "paid"):
            return Turn(R.say("address_before_shipping", lang, extra="", **facts), intent)
        if status == "shipped":
            return Turn(R.say("address_after_shipping", lang, **facts), intent)
        return Turn(R.say("order_status", lang, status=self._status_text(order, facts, lang), **facts), intent)

    def _which_order_text(self, intent: str, text: str, user_id: str, lang: str) -> str:
        orders = ", ".join(f"{o['order_id']} ({self._items(o, lang)})" for o in self.world.user_orders(user_id)[:3])
        if intent == "return_request":
            return R.say("return_need_order", lang, orders=orders,
                         steps=self._faq_answer("return-steps", text, lang, ("returns",)))
        if intent == "refund_status":
            return R.say("refund_need_order", lang, orders=orders,
                         policy=self._faq_answer("refunds-timing", text, lang, ("refunds",)))
        return R.say("which_order", lang, orders=orders)

    def _return_text(self, order: dict, facts: dict, status: str, text: str, lang: str) -> str:
        if status == "delivered":
            delivered = _day(order.get("delivered_at"))
            if delivered and (self.world.today() - delivered).days <= RETURN_WINDOW_DAYS:
                deadline = date.fromordinal(delivered.toordinal() + RETURN_WINDOW_DAYS)
                return R.say("return_ok", lang, deadline=R.fmt_date(deadline, lang),
                             steps=self._faq_answer("return-steps", text, lang, ("returns",)), **facts)
            return R.say("return_too_late", lang, **facts)
        if status in ("returned", "refunded"):
            return R.say("already_returned", lang, status=R.STATUS_WORDS[status][lang], **facts)
        if status == "cancelled":
            return R.say("already_cancelled", lang, **facts)
        return R.say("return_not_delivered", lang, status=R.STATUS_WORDS.get(status, {}).get(lang, status), **facts)

    def _refund_text(self, order: dict, facts: dict, status: str, text: str, lang: str) -> str:
        if status == "refunded":
            return R.say("refund_done", lang, **facts)
        if status == "returned":
            return R.say("refund_processing", lang, **facts)
        if status == "cancelled":
            return R.say("refund_cancelled", lang, **facts)
        if status in ("created", "paid"):
            return R.say("refund_before_shipping", lang, status=R.STATUS_WORDS[status][lang], **facts)
        return R.say("refund_needs_return", lang, status=R.STATUS_WORDS.get(status, {}).get(lang, status),
                     steps=self._faq_answer("return-steps", text, lang, ("returns",)), **facts)

    def _confirmed(self, state: dict, pending: dict, owner: str, lang: str) -> Turn:
        order = self.world.order(pending["order_id"])
        if order is None or not owner or order.get("user_id") != owner or pending.get("user_id") != owner:
            return Turn(R.say(self._not_found(), lang, order_id=pending["order_id"]), "cancel_order")
        facts = self._order_facts(order, lang)
        if order.get("status") not in ("created", "paid"):  # it moved on while the shopper was deciding
            return Turn(R.say("cancel_too_late", lang, **facts), "cancel_order")
        return Turn(R.say("cancel_done", lang, **facts), "cancel_order",
                    actions=[("cancel_order", {"order_id": order["order_id"], "user_id": owner,
                                               "transcript": list(state["turns"])})])

    def _order_facts(self, order: dict, lang: str) -> dict:
        return {
            "order_id": order["order_id"],
            "items": self._items(order, lang),
            "total": R.fmt_money(order.get("total"), order.get("currency", ""), lang),
            "carrier": order.get("carrier") or ("快递" if lang == "zh" else "the carrier"),
            "tracking": order.get("tracking_no") or "-",
            **{f"{s}": R.fmt_date(order.get(f"{s}_at"), lang)
               for s in ("created", "paid", "shipped", "delivered", "cancelled", "returned", "refunded")},
            "product_ids": [line["product_id"] for line in order.get("lines", [])],
        }

    def _items(self, order: dict, lang: str) -> str:
        names = []
        for line in order.get("lines", [])[:3]:
            product = self.world.product(line["product_id"]) or {}
            title = (product.get("title_zh") if lang == "zh" else product.get("title")) or line["product_id"]
            qty = int(line.get("quantity", 1) or 1)
            names.append(f"{title} ×{qty}" if qty > 1 else title)
        more = len(order.get("lines", [])) - 3
        if more > 0:
            names.append(f"+{more}")
        return R.join_names(names, lang) if names else "-"

    def _status_text(self, order: dict, facts: dict, lang: str) -> str:
        status = order.get("status", "")
        if status == "shipped":
            eta = (R.say("eta", lang, date=R.fmt_date(order["expected_delivery"], lang))
                   if order.get("expected_delivery") else "")
            return R.say("status_shipped", lang, eta=eta, **facts)
        key = f"status_{status}"
        return R.say(key, lang, **facts) if key in R.TEMPLATES else status

    def _faq_answer(self, entry_id: str, text: str, lang: str, topics: Sequence[str]) -> str:
        """A known policy entry (e.g. the return steps), or the best match for the message in its topics."""
        entry = self.world.faq_entry(entry_id) or self.world.faq(text, lang, topics)
        return entry.answer[lang] if entry else ""

    # -- products -------------------------------------------------------------------------------
    def _resolve_product(self, state: dict, nlu: Understood, other: bool) -> dict | None:
        mentioned = [e for e in nlu.entities if e.type == "product" and e.normalized]
        if mentioned:
            pid = mentioned[0].normalized
        elif other:
            pid = next((p for p in state.get("products", []) if p != state.get("product_id")), "")
        else:
            pid = state.get("product_id", "")
        product = self.world.product(pid) if pid else None
        if product is not None:
            state["product_id"] = pid
            state["products"] = ([pid] + [p for p in state["products"] if p != pid])[:10]
        return product

    def _product_turn(self, state: dict, nlu: Understood, lang: str, other: bool) -> Turn:
        product = self._resolve_product(state, nlu, other)
        if product is None:
            return Turn(R.say("ask_product", lang), nlu.intent)
        variants = self.world.variants(product)
        colour = _entity(nlu, "color")
        wanted = colour.normalized if colour else ""
        if wanted and wanted != product.get("attributes", {}).get("colour"):
            match = next((v for v in variants if v.get("attributes", {}).get("colour") == wanted), None)
            if match is None:
                colours = [v["attributes"].get("colour_zh" if lang == "zh" else "colour", "") for v in [product, *variants]]
                return Turn(R.say("colour_missing", lang, title=_title(product, lang),
                                  colour=colour.value, colours=R.join_names(colours, lang)), nlu.intent,
                            product_ids=[product["product_id"]])
            product = match
            state["product_id"] = product["product_id"]
        title = _title(product, lang)
        sizes = [s.strip() for s in str(product.get("attributes", {}).get("size", "")).split(",") if s.strip()]
        size = _entity(nlu, "size")
        size_text = ""
        if size is not None and sizes:
            wanted_size = size.normalized or size.value
            offered = wanted_size in sizes or wanted_size == "one size" and sizes == ["one size"]
            size_text = (R.say("size_ok", lang, size=wanted_size) if offered else
                         R.say("size_missing", lang, size=wanted_size, sizes=", ".join(sizes)))
        if nlu.intent == "stock_availability":
            on_hand = self.world.on_hand(product["product_id"])
            if on_hand is None:
                reply = R.say("stock_unknown", lang, title=title)
            elif on_hand <= 0:
                reply = R.say("sold_out", lang, title=title)
            else:
                few = R.say("few_left", lang, n=on_hand) if on_hand < 5 else ""
                reply = R.say("in_stock", lang, title=title, few=few)
            return Turn(reply + size_text, nlu.intent, product_ids=[product["product_id"]],
                        suggestions=R.SUGGESTIONS["product"][lang])
        attributes = product.get("attributes", {})
        others = [v["attributes"].get("colour_zh" if lang == "zh" else "colour", "") for v in variants]
        reply = R.say(
            "product_info", lang, title=title,
            price=R.fmt_money(product.get("price"), product.get("currency", ""), lang),
            material=attributes.get("material_zh" if lang == "zh" else "material", "-"),
            colour=attributes.get("colour_zh" if lang == "zh" else "colour", "-"),
            other_colours=R.say("other_colours", lang, colours=R.join_names(others, lang)) if others else "",
            sizes=", ".join(sizes) or "-",
        )
        return Turn(reply + size_text, nlu.intent, product_ids=[product["product_id"]],
                    suggestions=R.SUGGESTIONS["product"][lang])

    def _recommend(self, state: dict, user_id: str, lang: str) -> Turn:
        items = self.world.recommend(user_id, list(state.get("products", [])), 3)
        if not items:
            return Turn(R.say("no_recommendations", lang), "product_recommendation")
        names = [f"{_title(i, lang)} ({R.fmt_money(i.get('price'), i.get('currency', ''), lang)})" for i in items]
        return Turn(R.say("recommendations", lang, items=R.join_names(names, lang)), "product_recommendation",
                    product_ids=[i["product_id"] for i in items], suggestions=R.SUGGESTIONS["product"][lang])


def _title(product: dict, lang: str) -> str:
    return (product.get("title_zh") if lang == "zh" else product.get("title")) or product.get("title") or "?"


def _day(epoch: float | str | None) -> date | None:
    if epoch in (None, ""):
        return None
    return datetime.fromtimestamp(float(epoch), UTC).date()
