"""Recommender gRPC servicer: request -> core/store -> response, no business logic here."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc

from protos import recommender_pb2 as pb
from protos import recommender_pb2_grpc as pb_grpc
from services.common.bus import EventConsumer
from services.common.cache import connect
from services.common.grpc_server import ServiceRunner, bootstrap, run
from services.common.settings import Settings, load_settings
from services.recommender import core
from services.recommender.consumer import RecommenderProjection
from services.recommender.store import RecommenderStore

POPULARITY_VERSION = "popularity-v1"
# Strategies answered from the Redis projection, without a trained model.
PROJECTION_STRATEGIES = ("popular", "trending")
# How many ranked candidates to read so that filtering still leaves k.
CANDIDATE_FACTOR = 4


class RecommenderServicer(pb_grpc.RecommenderServicer):
    def __init__(self, store: RecommenderStore) -> None:
        self.store = store

    def _recommend(self, request: pb.RecommendRequest, context: grpc.ServicerContext) -> pb.RecommendResponse:
        try:
            k = core.validate_k(request.k)
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        strategy = request.strategy or "popular"
        if strategy not in core.STRATEGIES:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"unknown strategy {strategy!r}; expected one of {', '.join(core.STRATEGIES)}",
            )
        if strategy not in PROJECTION_STRATEGIES:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"strategy {strategy!r} is not served yet")
        filters = request.filters
        category = filters.category or None
        exclude = set(filters.exclude_product_ids)
        if request.user_id and filters.exclude_purchased:
            exclude |= self.store.purchased(request.user_id)
        ranked = self.store.ranking(strategy, category, limit=(k + len(exclude)) * CANDIDATE_FACTOR)
        reason = core.popularity_reason(strategy, category)
        if strategy == "trending":  # stored scores grow with time; answer the weight decayed to now
            now = datetime.now(UTC)
            ranked = [(pid, core.decayed_to(score, now)) for pid, score in ranked]
        items = []
        for pid, score in core.top_k(ranked, k, exclude):
            info = self.store.product(pid)
            items.append(
                pb.RecommendedItem(
                    product_id=pid, score=score, reason=reason, title=info.get("title", ""),
                    category=info.get("category", ""), price=float(info.get("price", 0) or 0),
                    currency=info.get("currency", ""),
                )
            )
        return pb.RecommendResponse(
            user_id=request.user_id, items=items, model_version=POPULARITY_VERSION, strategy=strategy,
            cold_start=not request.user_id or not self.store.recent(request.user_id, 1),
        )

    def Recommend(self, request: pb.RecommendRequest, context: grpc.ServicerContext) -> pb.RecommendResponse:
        return self._recommend(request, context)

    def BatchRecommend(
        self, request: pb.BatchRecommendRequest, context: grpc.ServicerContext
    ) -> pb.BatchRecommendResponse:
        if not 1 <= len(request.user_ids) <= 1000:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "user_ids must hold 1 to 1000 users")
        return pb.BatchRecommendResponse(
            results=[
                self._recommend(
                    pb.RecommendRequest(user_id=u, k=request.k, strategy=request.strategy, filters=request.filters),
                    context,
                )
                for u in request.user_ids
            ]
        )


def build(settings: Settings) -> ServiceRunner:
    runner = bootstrap("recommender", settings)
    client = connect(settings.redis_url)
    consumer = EventConsumer(settings, RecommenderProjection(client))
    runner.add_servicer(
        pb_grpc.add_RecommenderServicer_to_server, RecommenderServicer(RecommenderStore(client)),
        pb.DESCRIPTOR.services_by_name["Recommender"].full_name,
    )
    runner.add_worker(consumer.run, "recommender-consumer")
    runner.add_readiness(consumer.ready.is_set)
    return runner


def main() -> None:
    run(build(load_settings()))

