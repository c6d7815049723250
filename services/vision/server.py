"""Vision gRPC servicer: identify a product in a photo, search by image, issue and verify codes.

The service is ready as soon as it has a model and its index caught up with the catalog: the
first model serves the pretrained EfficientNet-Lite0 features (no training needed); once the
catalog holds ``vision_min_products`` pictures the scheduler (scheduler.py) fine-tunes the embedder
(trainer.py) and swaps the new version in. New and changed product pictures are embedded by the
index watcher (index_watcher.py) within a second of their catalog event, whatever model is serving.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import grpc
import torch
from PIL import Image

from protos import common_pb2
from protos import vision_pb2 as pb
from protos import vision_pb2_grpc as pb_grpc
from services.common import catchup
from services.common.ann import AnnParams
from services.common.bus import EventConsumer, LazyEnvelopePublisher
from services.common.cache import connect
from services.common.grpc_server import ServiceRunner, bootstrap, run
from services.common.jobs import JobRunner, get_job_rpc, list_models_rpc, serve_model_rpc, train_rpc
from services.common.logging import get_logger
from services.common.models import ModelHolder, ModelRegistry, announce_version
from services.common.projection import RedisApplier
from services.common.pseudonyms import pseudonym_key
from services.common.settings import Settings, load_settings
from services.vision import converters as cv
from services.vision.codelog import CodeLog
from services.vision.consumer import VisionProjection
from services.vision.core import codes, history, index
from services.vision.core.finetune import training_params
from services.vision.core.images import ImageProblem, decode_image
from services.vision.core.model import VisionModel, pretrained_model
from services.vision.core.places import Gazetteer, Place, PlaceRefused, normalise_place, world_gazetteer
from services.vision.core.verification import Limits
from services.vision.index_watcher import IndexWatcher
from services.vision.keys import load_signing_key, trusted_keys
from services.vision.revocations import AmbiguousBatch, NotIssued, Revoker
from services.vision.scheduler import Scheduler
from services.vision.store import KEPT_SCANS, VisionStore
from services.vision.trainer import TRAINABLE_MODELS, VisionTrainer
from services.vision.verifier import ScanNotRecorded, Verifier

log = get_logger(__name__)
PRETRAINED_VERSION = "pretrained-efficientnet-lite0"
T = TypeVar("T")


class VisionServicer(pb_grpc.VisionServicer):
    def __init__(self, settings: Settings, store: VisionStore, holder: ModelHolder[VisionModel], jobs: JobRunner,
                 key: codes.SigningKey | None, publish: Callable[[str, str, dict], None],
                 applier: RedisApplier, gazetteer: Gazetteer | None = None, pseudonyms: bytes | None = None) -> None:
        self.settings = settings
        self.store = store
        self.holder = holder
        self.jobs = jobs
        self.key = key
        self.keys = trusted_keys(settings, key)
        self.codelog = CodeLog(publish, applier)
        self.gazetteer = gazetteer
        self.verifier = Verifier(store, holder, self.keys, self.codelog,
                                 Limits(settings.vision_max_scans, settings.vision_max_locations),
                                 settings.vision_places_per_client)
        self.revoker = Revoker(store, self.codelog)
        self.pseudonyms = pseudonyms or pseudonym_key(settings)  # the key of scanned_by in staff reads

    # -- request checks -----------------------------------------------------------------------------
    @staticmethod
    def _checked(context: grpc.ServicerContext, check: Callable[..., T], *args) -> T:
        try:
            return check(*args)
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        raise AssertionError("unreachable")

    def _image(self, data: bytes, context: grpc.ServicerContext) -> Image.Image:
        if not data:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "image is required")
        try:
            return decode_image(data, max_bytes=self.settings.vision_max_image_bytes,
                                max_pixels=self.settings.vision_max_pixels)
        except ImageProblem as exc:
            if exc.too_large:
                context.abort(grpc.StatusCode.OUT_OF_RANGE, f"too large: {exc.reason}")
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.reason)
        raise AssertionError("unreachable")

    def _place(self, location: str, context: grpc.ServicerContext) -> Place:
        try:
            return normalise_place(location, self.gazetteer)
        except PlaceRefused as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        raise AssertionError("unreachable")

    def _model(self, context: grpc.ServicerContext) -> VisionModel:
        model = self.holder.model
        if model is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the vision model is still loading")
        return model

    # -- image questions -------------------------------------------------------------------------------
    def Identify(self, request: pb.ImageRequest, context: grpc.ServicerContext) -> pb.IdentifyResponse:
        k = self._checked(context, cv.request_k, request.k, 5)
        image = self._image(request.image, context)
        answer = self._model(context).identify(image, k, request.category)
        return cv.identify_response(answer, self.holder.version)

    def Search(self, request: pb.ImageRequest, context: grpc.ServicerContext) -> pb.SearchResponse:
        k = self._checked(context, cv.request_k, request.k, 10)
        image = self._image(request.image, context)
        hits = self._model(context).search(image, k, request.category)
        return cv.search_response(hits, self.holder.version)

    # -- codes ------------------------------------------------------------------------------------------
    def IssueCodes(self, request: pb.IssueCodesRequest, context: grpc.ServicerContext) -> pb.IssueCodesResponse:
        if self.key is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          "no signing key is configured: set SHOPAI_VISION_SIGNING_KEY or SHOPAI_VISION_SIGNING_KEY_FILE")
        self._checked(context, cv.check_issue, request)
        if not self.store.product(request.product_id):
            context.abort(grpc.StatusCode.NOT_FOUND, f"product {request.product_id!r} is not in the catalog")
        issued_at = int(time.time())
        batch = codes.issue(self.key, request.product_id, request.batch, request.count, issued_at)
        try:
            self.codelog.issued(request.product_id, request.batch, self.key.key_id, issued_at, batch)
        except Exception as exc:  # the registry must hold a code before anyone may print it
            log.warning("codes_not_recorded", exc_info=True)
            context.abort(grpc.StatusCode.UNAVAILABLE, f"the codes could not be recorded: {exc}")
        return cv.issue_response(request, self.key.key_id, issued_at, batch)

    def Verify(self, request: pb.VerifyRequest, context: grpc.ServicerContext) -> pb.VerifyResponse:
        self._checked(context, cv.check_verify, request)
        place = self._place(request.location, context)
        if not self.keys:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no verification key is configured")
        image = self._image(request.image, context) if request.image else None
        try:
            return self.verifier.verify(request, image, place)
        except ScanNotRecorded as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"the scan could not be recorded: {exc}")
        raise AssertionError("unreachable")

    def RevokeCodes(self, request: pb.RevokeCodesRequest, context: grpc.ServicerContext) -> pb.RevokeCodesResponse:
        self._checked(context, cv.check_revoke, request)
        try:
            outcome = self.revoker.revoke(request.batch, request.serial, request.product_id, request.reason.strip(),
                                          request.revoked_by)
        except NotIssued as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except AmbiguousBatch as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except Exception as exc:  # the log did not take it: nothing is revoked
            log.warning("revocation_not_recorded", exc_info=True)
            context.abort(grpc.StatusCode.UNAVAILABLE, f"the revocation could not be recorded: {exc}")
        return pb.RevokeCodesResponse(revocation=cv.revocation_message(outcome.revocation),
                                      already_revoked=outcome.already_revoked, codes=outcome.codes)

    def CodeScans(self, request: pb.CodeScansRequest, context: grpc.ServicerContext) -> pb.CodeScansResponse:
        self._checked(context, codes.check_id, "serial", request.serial)
        limit = self._checked(context, history.check_limit, request.limit)
        issued = self.store.issued(request.serial)
        if not issued.get("product_id"):
            context.abort(grpc.StatusCode.NOT_FOUND, f"serial {request.serial} was never issued")
        recorded = self.store.history(request.serial, recent=KEPT_SCANS)
        chosen, next_before = self._checked(context, history.page, recorded.recent, limit, request.before)
        return cv.code_scans_response(request.serial, issued, recorded, self.store.revocation(issued),
                                      [history.for_staff(s, self.pseudonyms) for s in chosen], next_before)

    # -- admin ---------------------------------------------------------------------------------------
    def Train(self, request: common_pb2.TrainRequest, context: grpc.ServicerContext) -> common_pb2.Job:
        return train_rpc(self.jobs, request, context, trainable=TRAINABLE_MODELS, check=training_params,
                         models_hint="the vision service trains 'embedder' (or empty for all)")

    def ScansBy(self, request: pb.ScansByRequest, context: grpc.ServicerContext) -> pb.ScansByResponse:
        if not request.scanned_by:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "scanned_by is required")
        scans = self.store.scans_by(request.scanned_by)
        products = {serial: self.store.issued(serial).get("product_id", "") for serial in {s for s, _ in scans}}
        return cv.scans_response(scans, products)

    def GetJob(self, request: common_pb2.GetJobRequest, context: grpc.ServicerContext) -> common_pb2.Job:
        return get_job_rpc(self.jobs, request, context)

    def ListModels(self, request: common_pb2.ListModelsRequest,
                   context: grpc.ServicerContext) -> common_pb2.ListModelsResponse:
        return list_models_rpc(self.holder, "vision", request, context)

    def ServeModel(self, request: common_pb2.ServeModelRequest,
                   context: grpc.ServicerContext) -> common_pb2.ModelVersion:
        return serve_model_rpc(self.holder, "vision", request, context)


def build(settings: Settings) -> ServiceRunner:
    torch.set_num_threads(settings.torch_threads)
    index.configure(AnnParams(settings.vision_index_exact_below, settings.vision_index_hnsw_m,
                              settings.vision_index_ef_construction, settings.vision_index_ef_search))
    runner = bootstrap("vision", settings)
    client = connect(settings)
    store = VisionStore(client)
    registry = ModelRegistry(settings.model_dir("vision"))
    holder: ModelHolder[VisionModel] = ModelHolder(registry)
    if not holder.refresh():
        holder.swap(pretrained_model(settings.vision_image_size), PRETRAINED_VERSION,
                    {"kind": "pretrained", "metrics": {}})
    key = load_signing_key(settings)
    outputs = LazyEnvelopePublisher(settings, client_id="vision")
    publish = outputs.publish

    def announce(version: str, meta: dict) -> None:
        announce_version(publish, "vision", version, meta)

    trainer = VisionTrainer(store, holder, registry, on_new_version=announce)
    jobs = JobRunner("vision", client, trainer.train, ttl_seconds=settings.jobs_ttl_seconds,
                     nice=settings.jobs_nice, catchup=catchup.for_projection(settings, VisionProjection))
    projection = VisionProjection(client)
    consumer = EventConsumer(settings, projection)
    applier = RedisApplier(client, projection.group, settings.dedup_ttl_seconds)
    watcher = IndexWatcher(store, holder)
    scheduler = Scheduler(settings, store, holder, jobs)
    runner.add_servicer(pb_grpc.add_VisionServicer_to_server,
                        VisionServicer(settings, store, holder, jobs, key, publish, applier, world_gazetteer()),
                        pb.DESCRIPTOR.services_by_name["Vision"].full_name)
    runner.add_worker(consumer.run, "vision-consumer")
    runner.add_worker(jobs.run, "vision-trainer")
    runner.add_worker(watcher.run, "vision-index")
    runner.add_worker(scheduler.run, "vision-scheduler")
    runner.add_readiness(consumer.ready.is_set)
    runner.add_readiness(watcher.synced.is_set)
    runner.add_readiness(lambda: holder.model is not None)
    runner.on_stop(outputs.close)
    return runner


def main() -> None:
    run(build(load_settings()))
