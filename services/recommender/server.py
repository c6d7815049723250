"""Recommender gRPC servicer: request -> store/model -> response.

The ranking logic lives in ``core`` (pure) and ``ranker`` (core + the Redis reads a
request needs); this module only validates, caches and translates.
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc
import redis

from protos import common_pb2
from protos import recommender_pb2 as pb
from protos import recommender_pb2_grpc as pb_grpc
from services.common import catchup
from services.common import recommendations as contract
from services.common.bus import EventConsumer, LazyEnvelopePublisher
from services.common.cache import connect
from services.common.grpc_server import ServiceRunner, bootstrap, run
from services.common.jobs import JobRunner, get_job_rpc, list_models_rpc, serve_model_rpc, train_rpc
from services.common.logging import get_logger
from services.common.models import ModelHolder, ModelRegistry, announce_version
from services.common.settings import Settings, load_settings
from services.recommender.consumer import RecommenderProjection
from services.recommender.core.bundle import RecommenderModel
from services.recommender.core.candidates import CandidatePolicy
from services.recommender.core.defaults import TRAIN_PARAMS, make_components
from services.recommender.forgetting import ModelForgetter
from services.recommender.ranker import Ranker
from services.recommender.scheduler import RecommenderScheduler
from services.recommender.store import RecommenderStore
from services.recommender.trainer import RecommenderTrainer
from services.recommender.versions import StoredVersions

TRAINABLE_MODELS = ("", "hybrid")

log = get_logger(__name__)


def _filters(message: pb.Filters) -> contract.Filters:
    return contract.Filters(
        exclude=set(message.exclude_product_ids), category=message.category,
        exclude_categories=set(message.exclude_categories),
        min_price=message.min_price if message.HasField("min_price") else None,
        max_price=message.max_price if message.HasField("max_price") else None,
    )


def _k_and_filters(request: pb.RecommendRequest | pb.SimilarRequest,
                   context: grpc.ServicerContext) -> tuple[int, contract.Filters]:
    try:
        return contract.validate_k(request.k), _filters(request.filters)
    except ValueError as exc:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        raise  # abort raises; this keeps type checkers honest


class RecommenderServicer(pb_grpc.RecommenderServicer):
    def __init__(self, store: RecommenderStore, ranker: Ranker, jobs: JobRunner,
                 answers: contract.AnswerCache, versions: StoredVersions) -> None:
        self.store = store
        self.ranker = ranker
        self.jobs = jobs
        self.answers = answers
        self.versions = versions

    def _recommend(self, request: pb.RecommendRequest, context: grpc.ServicerContext) -> pb.RecommendResponse:
        k, filters = _k_and_filters(request, context)
        strategy = request.strategy or "hybrid"
        if strategy not in contract.STRATEGIES:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"unknown strategy {strategy!r}; expected one of {', '.join(contract.STRATEGIES)}",
            )
        if len(request.session_product_ids) > contract.MAX_SESSION_PRODUCTS:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"at most {contract.MAX_SESSION_PRODUCTS} session_product_ids")
        user = request.user_id
        cached = None
        model_version = self.ranker.model_version
        pinned = None  # another stored version than the serving one (an experiment's arm): never cached
        if request.model_version and request.model_version != model_version:
            try:
                pinned = self.versions.get(request.model_version)
            except KeyError:
                context.abort(grpc.StatusCode.NOT_FOUND,
                              f"model version {request.model_version!r} is not stored (ListModels)")
        if user and pinned is None:
            cached = self.answers.lookup(user, contract.request_digest(request),
                                         exclude_out_of_stock=request.filters.exclude_out_of_stock,
                                         model_version=model_version)
            if cached.payload is not None:
                return pb.RecommendResponse.FromString(cached.payload)
        answer = self.ranker.recommend(
            user, k, strategy, filters, exclude_purchased=request.filters.exclude_purchased,
            exclude_out_of_stock=request.filters.exclude_out_of_stock,
            session=list(request.session_product_ids), model=pinned,
        )
        response = pb.RecommendResponse(
            user_id=user, items=[pb.RecommendedItem(**item) for item in answer.items],
            model_version=answer.model_version, strategy=answer.strategy, cold_start=answer.cold_start,
        )
        if cached is not None and cached.field and answer.model_version == model_version:
            self.answers.store(user, cached.field, response.SerializeToString(),
                               [item.product_id for item in response.items], model_version)
        return response

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

    def Similar(self, request: pb.SimilarRequest, context: grpc.ServicerContext) -> pb.SimilarResponse:
        k, filters = _k_and_filters(request, context)
        strategy = request.strategy or "item_knn"
        if strategy not in contract.SIMILAR_STRATEGIES:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"unknown strategy {strategy!r}; "
                          f"expected one of {', '.join(contract.SIMILAR_STRATEGIES)}")
        if not request.product_id or not self.store.product(request.product_id):
            context.abort(grpc.StatusCode.NOT_FOUND, f"product {request.product_id!r} is not in the catalog")
        answer = self.ranker.similar(request.product_id, k, strategy, filters,
                                     exclude_out_of_stock=request.filters.exclude_out_of_stock,
                                     include_variants=request.include_variants)
        return pb.SimilarResponse(
            product_id=request.product_id, items=[pb.RecommendedItem(**item) for item in answer.items],
            model_version=answer.model_version, strategy=answer.strategy,
        )

    def UserProfile(self, request: pb.UserProfileRequest, context: grpc.ServicerContext) -> pb.UserProfileResponse:
        profile = self.ranker.user_profile(request.user_id) if request.user_id else None
        if profile is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"user {request.user_id!r} has never been seen")
        return pb.UserProfileResponse(**profile)

    def ItemProfile(self, request: pb.ItemProfileRequest, context: grpc.ServicerContext) -> pb.ItemProfileResponse:
        profile = self.ranker.item_profile(request.product_id) if request.product_id else None
        if profile is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"product {request.product_id!r} is not in the catalog")
        return pb.ItemProfileResponse(**profile)

    def Train(self, request: common_pb2.TrainRequest, context: grpc.ServicerContext) -> common_pb2.Job:
        return train_rpc(self.jobs, request, context, trainable=TRAINABLE_MODELS, check=validate_params,
                         models_hint="the recommender trains all its models together (the hybrid learns "
                                     "their weights), so model must be empty or 'hybrid'")

    def GetJob(self, request: common_pb2.GetJobRequest, context: grpc.ServicerContext) -> common_pb2.Job:
        return get_job_rpc(self.jobs, request, context)

    def ListModels(self, request: common_pb2.ListModelsRequest,
                   context: grpc.ServicerContext) -> common_pb2.ListModelsResponse:
        return list_models_rpc(self.ranker.holder, "recommender", request, context)

    def ServeModel(self, request: common_pb2.ServeModelRequest,
                   context: grpc.ServicerContext) -> common_pb2.ModelVersion:
        return serve_model_rpc(self.ranker.holder, "recommender", request, context)


def validate_params(params: Mapping[str, str]) -> dict[str, str]:
    """Every param must be known and parse (a bad value fails the call, not the job an hour later)."""
    unknown = sorted(set(params) - set(TRAIN_PARAMS))
    if unknown:
        raise ValueError(f"unknown params {unknown}; known: {', '.join(sorted(TRAIN_PARAMS))}")
    make_components(None, **params)
    return dict(params)


def build(settings: Settings) -> ServiceRunner:
    runner = bootstrap("recommender", settings)
    client = connect(settings)
    store = RecommenderStore(client)
    holder: ModelHolder[RecommenderModel] = ModelHolder(ModelRegistry(settings.model_dir("recommender")))
    holder.refresh()  # serve the last trained version straight away after a restart
    outputs = LazyEnvelopePublisher(settings, client_id="recommender-models")

    def announce(version: str, meta: dict) -> None:
        announce_version(outputs.publish, "recommender", version, meta)

    trainer = RecommenderTrainer(store, holder.registry, holder, on_new_version=announce)
    jobs = JobRunner("recommender", client, trainer.train, ttl_seconds=settings.jobs_ttl_seconds,
                     nice=settings.jobs_nice, catchup=catchup.for_projection(settings, RecommenderProjection))
    ranker = Ranker(store, holder, CandidatePolicy(settings.recommender_candidates_from,
                                                   settings.recommender_candidates))
    # The gateway serves cached answers of the model that serves now (services/common/recommendations.py).
    answers = contract.AnswerCache(client)
    holder.on_swap.append(lambda version: answers.announce(version))
    try:
        answers.announce(ranker.model_version)
    except redis.RedisError as exc:  # Redis may come up later: the first cached answer says it too
        log.warning("model_version_not_announced", error=str(exc))
    consumer = EventConsumer(settings, RecommenderProjection(client))
    runner.add_servicer(
        pb_grpc.add_RecommenderServicer_to_server, RecommenderServicer(store, ranker, jobs, answers,
                                                                      StoredVersions(holder.registry, client)),
        pb.DESCRIPTOR.services_by_name["Recommender"].full_name,
    )
    scheduler = RecommenderScheduler(settings, trainer, jobs, holder)
    runner.add_worker(consumer.run, "recommender-consumer")
    runner.add_worker(jobs.run, "recommender-trainer")
    runner.add_worker(scheduler.run, "recommender-scheduler")
    runner.add_worker(ranker.watch_catalog, "recommender-catalog")
    runner.add_worker(ModelForgetter(client, holder).run, "recommender-forgetter")
    runner.add_readiness(consumer.ready.is_set)
    return runner


def main() -> None:
    run(build(load_settings()))
