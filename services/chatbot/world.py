"""The facts the dialogue may state, read from the assistant's projection, the FAQ and the recommender."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime

import grpc

from protos import recommender_pb2 as rec_pb
from protos import recommender_pb2_grpc as rec_grpc
from services.chatbot.core.data import FaqEntry
from services.chatbot.core.entities import CatalogIndex
from services.chatbot.core.entities.contacts import order_id_rule
from services.chatbot.core.knowledge import KnowledgeBase
from services.chatbot.store import ChatbotStore
from services.common.logging import get_logger

log = get_logger(__name__)
CATALOG_REFRESH_SECONDS = 1.0


class ShopWorld:
    def __init__(self, store: ChatbotStore, knowledge: KnowledgeBase, recommender: grpc.Channel,
                 deadline_seconds: float = 1.0, order_id_pattern: str = "") -> None:
        """``recommender``: a channel to the recommender (transport.open_channel), closed with the world;
        ``order_id_pattern``: the shop's own order ids (settings ``chat_order_id_pattern``; "" = ORD- ids)."""
        self.store = store
        self.order_ids = order_id_rule(order_id_pattern)
        self.knowledge = knowledge
        self.catalog = CatalogIndex()
        self._catalog_version = -1
        self._catalog_lock = threading.Lock()
        self._variants: dict[tuple[str, str, str, str], list[str]] = {}
        self.deadline = deadline_seconds
        self._request = threading.local()  # the deadline of the request a call is made for (within())
        self._channel = recommender
        self._recommender = rec_grpc.RecommenderStub(self._channel)

    @contextlib.contextmanager
    def within(self, remaining_seconds: float | None) -> Iterator[None]:
        """Calls to other services made for one request (a chat turn) end in time for it: each gets at most
        half of what remains of the request's deadline, so a recommender that accepts but does not answer
        (restarting) costs the turn its suggestions, not a 504."""
        self._request.until = None if remaining_seconds is None else time.monotonic() + remaining_seconds / 2
        try:
            yield
        finally:
            self._request.until = None

    def _timeout(self) -> float:
        until = getattr(self._request, "until", None)
        return self.deadline if until is None else max(0.05, min(self.deadline, until - time.monotonic()))

    # -- orders and products ---------------------------------------------------------------------
    def order(self, order_id: str) -> dict | None:
        """The order as the shop wrote its id, else upper-cased (ord-12345678 is ORD-12345678)."""
        return self.store.order(order_id) or self.store.order(order_id.upper())

    def user_orders(self, user_id: str) -> list[dict]:
        return self.store.user_orders(user_id)

    def product(self, product_id: str) -> dict | None:
        return self.store.product(product_id)

    def on_hand(self, product_id: str) -> int | None:
        return self.store.on_hand(product_id)

    def variants(self, product: dict) -> list[dict]:
        """The same model in other colours: same brand, category and material, title equal but for the colour."""
        key = _model_key(product)
        ids = [pid for pid in self._variants.get(key, []) if pid != product.get("product_id")]
        return [p for p in (self.product(pid) for pid in ids) if p]

    def recommend(self, user_id: str, product_ids: list[str], k: int) -> list[dict]:
        """Top products from the recommender; an empty list when it is unavailable (the reply says so)."""
        try:
            reply = self._recommender.Recommend(
                rec_pb.RecommendRequest(user_id=user_id, k=k, session_product_ids=product_ids[:20],
                                        filters=rec_pb.Filters(exclude_purchased=True, exclude_out_of_stock=True)),
                timeout=self._timeout(),
            )
        except grpc.RpcError as exc:
            log.warning("recommender_unavailable", code=exc.code().name if hasattr(exc, "code") else "?")
            return []
        out = []
        for item in reply.items:
            product = self.product(item.product_id) or {"product_id": item.product_id, "title": item.title,
                                                        "price": item.price, "currency": item.currency}
            out.append(product)
        return out

    # -- knowledge -------------------------------------------------------------------------------
    def faq(self, text: str, language: str, topics: Sequence[str]) -> FaqEntry | None:
        return self.knowledge.answer(text, topics)

    def faq_entry(self, entry_id: str) -> FaqEntry | None:
        return self.knowledge.by_id.get(entry_id)

    def today(self) -> date:
        return datetime.now(UTC).date()

    # -- catalog index ---------------------------------------------------------------------------
    def refresh_catalog(self) -> bool:
        """Rebuild the product index when the catalog changed (a product event bumps the version)."""
        version = self.store.catalog_version()
        if version == self._catalog_version:
            return False
        products = self.store.catalog()
        index = CatalogIndex(products)
        variants: dict[tuple[str, str, str, str], list[str]] = {}
        for p in products:
            variants.setdefault(_model_key(p), []).append(p["product_id"])
        with self._catalog_lock:
            self.catalog, self._variants, self._catalog_version = index, variants, version
        log.info("catalog_index_built", products=len(products), version=version)
        return True

    def watch_catalog(self, stop: threading.Event) -> None:
        while not stop.wait(CATALOG_REFRESH_SECONDS):
            try:
                self.refresh_catalog()
            except Exception:
                log.warning("catalog_refresh_failed", exc_info=True)

    def close(self) -> None:
        self._channel.close()


def _model_key(product: dict) -> tuple[str, str, str, str]:
    attributes = product.get("attributes") or {}
    colour = attributes.get("colour", "")
    title = str(product.get("title", ""))
    generic = " ".join(w for w in title.split() if w.lower() != colour.lower())
    return (str(product.get("brand", "")), str(product.get("category", "")), attributes.get("material", ""), generic)
