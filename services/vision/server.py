"""Vision gRPC servicer: identify a product in a photo, search by image, issue and verify codes.

The service is ready as soon as it has a model and its index caught up with the catalog: the
first model serves the pretrained EfficientNet-Lite0 features (no training needed); once the
catalog holds ``vision_min_products`` pictures the scheduler fine-tunes the embedder
(trainer.py) and swaps the new version in. New and changed product pictures are embedded by the
index watcher within a second of their catalog event, whatever model is serving.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import grpc
import numpy as np
import torch
from google.protobuf.timestamp_pb2 import Timestamp
from PIL import Image, ImageFilter

from protos import common_pb2
from protos import vision_pb2 as pb
from protos import vision_pb2_grpc as pb_grpc
from services.common import topics
from services.common.bus import EventConsumer, LazyEnvelopePublisher
from services.common.cache import connect
from services.common.events import parse_event
from services.common.grpc_server import ServiceRunner, bootstrap, run
from services.common.jobs import JobRunner, TrainingScheduler, get_job_rpc, train_rpc
from services.common.logging import get_logger
from services.common.models import ModelHolder, ModelRegistry, model_event, retrain_due
from services.common.projection import Ops, RedisApplier
from services.common.settings import Settings, load_settings
from services.vision.consumer import VisionProjection, code_ops
from services.vision.core import codes
from services.vision.core.distort import border_colour, foreground_mask
from services.vision.core.finetune import training_params
from services.vision.core.images import ImageProblem, decode_image
from services.vision.core.model import Product, VisionModel, pretrained_model
from services.vision.core.places import Gazetteer, Place, PlaceRefused, normalise_place, world_gazetteer
from services.vision.core.scans import Scanner
from services.vision.core.verification import (
    COUNTERFEIT,
    Limits,
    ProductMatch,
    ScanNote,
    Verdict,
    judge_code,
    judge_history,
    unreadable,
)
from services.vision.store import VisionStore
from services.vision.trainer import TRAINABLE_MODELS, VisionTrainer

log = get_logger(__name__)
PRETRAINED_VERSION = "pretrained-efficientnet-lite0"
WATCH_SECONDS = 1.0
WATCH_BATCH = 256
MAX_CODES = 1000
MAX_CLIENT_ID = 64
BLUR_VARIANCE = 60.0  # variance of the edge image below which a photo counts as blurred
VERDICTS = {"authentic": pb.VERDICT_AUTHENTIC, "counterfeit": pb.VERDICT_COUNTERFEIT,
            "suspicious": pb.VERDICT_SUSPICIOUS, "unreadable": pb.VERDICT_UNREADABLE}


def load_signing_key(settings: Settings) -> codes.SigningKey | None:
    """The key from SHOPAI_VISION_SIGNING_KEY or the file SHOPAI_VISION_SIGNING_KEY_FILE (None: codes
    cannot be issued; a configured key that cannot be read stops the service with the reason)."""
    if settings.vision_signing_key is not None and settings.vision_signing_key.get_secret_value().strip():
        return codes.SigningKey.from_text(settings.vision_signing_key.get_secret_value())
    if settings.vision_signing_key_file is not None:
        text = settings.vision_signing_key_file.read_text()
        return codes.SigningKey.from_text(text) if text.strip() else None  # an empty secret file: no key
    return None


def trusted_keys(settings: Settings, key: codes.SigningKey | None) -> dict:
    keys = {key.key_id: key.public_key} if key is not None else {}
    for text in filter(None, (t.strip() for t in settings.vision_trusted_public_keys.split(","))):
        public = codes.public_key_from_text(text)
        keys[codes.key_id_of(public)] = public
    return keys


def _ts(epoch: float | None) -> Timestamp | None:
    if not epoch:
        return None
    ts = Timestamp()
    ts.FromDatetime(datetime.fromtimestamp(float(epoch), UTC))
    return ts


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def is_blurred(image: Image.Image) -> bool:
    edges = np.asarray(image.convert("L").filter(ImageFilter.FIND_EDGES), dtype=np.float32)
    return float(edges.var()) < BLUR_VARIANCE


class VisionServicer(pb_grpc.VisionServicer):
    def __init__(self, settings: Settings, store: VisionStore, holder: ModelHolder[VisionModel], jobs: JobRunner,
                 key: codes.SigningKey | None, publish: Callable[[str, str, dict], None],
                 applier: RedisApplier, gazetteer: Gazetteer | None = None) -> None:
        self.settings = settings
        self.store = store
        self.holder = holder
        self.jobs = jobs
        self.key = key
        self.keys = trusted_keys(settings, key)
        self.publish = publish
        self.applier = applier
        self.limits = Limits(settings.vision_max_scans, settings.vision_max_locations)
        self.gazetteer = gazetteer

    # -- helpers -------------------------------------------------------------------------------------
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

    @staticmethod
    def _k(k: int, default: int, context: grpc.ServicerContext) -> int:
        if k == 0:
            return default
        if not 1 <= k <= 100:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"k must be between 1 and 100, not {k}")
        return k

    def _model(self, context: grpc.ServicerContext) -> VisionModel:
        model = self.holder.model
        if model is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the vision model is still loading")
        return model

    # -- image questions -------------------------------------------------------------------------------
    def Identify(self, request: pb.ImageRequest, context: grpc.ServicerContext) -> pb.IdentifyResponse:
        k = self._k(request.k, 5, context)
        image = self._image(request.image, context)
        model = self._model(context)
        answer = model.identify(image, k, request.category)
        top = [pb.Candidate(product_id=m.product_id, label=m.title, score=m.probability, category=m.category)
               for m in answer.candidates]
        best = answer.best
        if best is None or not answer.known:
            return pb.IdentifyResponse(known=False, label="", confidence=best.probability if best else 0.0,
                                       top_k=top, model_version=self.holder.version)
        return pb.IdentifyResponse(product_id=best.product_id, label=best.title, category=best.category,
                                   confidence=best.probability, known=True, top_k=top,
                                   model_version=self.holder.version)

    def Search(self, request: pb.ImageRequest, context: grpc.ServicerContext) -> pb.SearchResponse:
        k = self._k(request.k, 10, context)
        image = self._image(request.image, context)
        model = self._model(context)
        hits = model.search(image, k, request.category)
        return pb.SearchResponse(
            results=[pb.SearchResult(product_id=m.product_id, score=m.score, label=m.title, category=m.category)
                     for m in hits], model_version=self.holder.version)

    # -- codes ------------------------------------------------------------------------------------------
    def _record(self, event_type: str, payload: dict) -> None:
        """Log a code event on vision.codes.v1 (acknowledged by the broker) and apply it at once."""
        envelope = {"event_id": str(uuid.uuid4()), "type": event_type, "schema_version": 1,
                    "occurred_at": _now(), "source": "vision", "payload": payload}
        event = parse_event(envelope)
        self.publish(topics.CODES, str(payload["product_id"]), envelope)
        ops = Ops()
        code_ops(event, ops)
        self.applier.apply([(event.event_id, ops.commands)])

    def IssueCodes(self, request: pb.IssueCodesRequest, context: grpc.ServicerContext) -> pb.IssueCodesResponse:
        if self.key is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          "no signing key is configured: set SHOPAI_VISION_SIGNING_KEY or SHOPAI_VISION_SIGNING_KEY_FILE")
        try:
            codes.check_product_id(request.product_id)
            codes.check_batch_name(request.batch)
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if not 1 <= request.count <= MAX_CODES:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"count must be between 1 and {MAX_CODES}, not {request.count}")
        if not self.store.product(request.product_id):
            context.abort(grpc.StatusCode.NOT_FOUND, f"product {request.product_id!r} is not in the catalog")
        issued_at = int(time.time())
        batch = codes.issue(self.key, request.product_id, request.batch, request.count, issued_at)
        try:
            self._record("code.issued", {"product_id": request.product_id, "batch": request.batch,
                                         "key_id": self.key.key_id, "issued_at": issued_at,
                                         "serials": [c.serial for c in batch]})
        except Exception as exc:  # the registry must hold a code before anyone may print it
            log.warning("codes_not_recorded", exc_info=True)
            context.abort(grpc.StatusCode.UNAVAILABLE, f"the codes could not be recorded: {exc}")
        return pb.IssueCodesResponse(
            product_id=request.product_id, batch=request.batch, key_id=self.key.key_id, issued_at=_ts(issued_at),
            codes=[pb.AuthenticityCode(serial=c.serial, payload=c.payload, signature=c.signature,
                                       png=b"" if request.skip_png else codes.render_png(c.payload))
                   for c in batch])

    def Verify(self, request: pb.VerifyRequest, context: grpc.ServicerContext) -> pb.VerifyResponse:
        if not request.image and not request.payload.strip():
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "send a photo of the code (image) or its text (payload)")
        if len(request.scanned_by) > 200:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "scanned_by is longer than 200 characters")
        if len(request.client_id) > MAX_CLIENT_ID:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"client_id is longer than {MAX_CLIENT_ID} characters")
        place = self._place(request.location, context)
        if not self.keys:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no verification key is configured")
        image = self._image(request.image, context) if request.image else None
        found = codes.find_codes(image) if image is not None else []
        texts = ([request.payload.strip()] if request.payload.strip() else []) + [f.text for f in found]
        checks = [codes.verify_payload(t, self.keys) for t in texts]
        ours = [c for c in checks if c.ours]
        if not ours:
            verdict = unreadable(bool(texts), image is not None and is_blurred(image))
            return pb.VerifyResponse(verdict=VERDICTS[verdict.verdict], reasons=verdict.reasons)
        check = next((c for c in ours if c.valid), ours[0])
        claims = check.claims
        issued = self.store.issued(claims.serial) if claims is not None else {}
        verdict = judge_code(check, issued)
        if verdict is not None:
            self._alert(verdict, claims, request)
            return self._verify_response(verdict, claims, None, issued)
        scanner = Scanner(request.client_id, request.trusted)
        try:
            weight = self.store.weigh_scan(claims.serial, scanner, place.key, self.settings.vision_places_per_client)
            self._record("code.scanned", {"product_id": claims.product_id, "batch": claims.batch,
                                          "serial": claims.serial, "location": request.location,
                                          "scanned_by": request.scanned_by, "place": place.key,
                                          "client_id": scanner.name, "trusted": scanner.trusted,
                                          "counted": weight.counted})
        except Exception as exc:  # a scan that is not recorded would hide a cloned code
            log.warning("scan_not_recorded", exc_info=True)
            context.abort(grpc.StatusCode.UNAVAILABLE, f"the scan could not be recorded: {exc}")
        history = self.store.history(claims.serial)
        match = self._match(image, [f.box for f in found], claims.product_id) if image is not None \
            else ProductMatch("no_photo")
        note = ScanNote(history.count, place.how if request.location.strip() else "", weight.reason)
        verdict = judge_history(check, int(issued.get("issued_at", 0)), history.counted, history.places, match,
                                self.limits, note)
        if verdict.alert:
            self._alert(verdict, claims, request)
        return self._verify_response(verdict, claims, history, issued, weight.counted)

    def _place(self, location: str, context: grpc.ServicerContext) -> Place:
        try:
            return normalise_place(location, self.gazetteer)
        except PlaceRefused as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        raise AssertionError("unreachable")

    def _match(self, image: Image.Image, boxes: list[tuple[int, int, int, int]], product_id: str) -> ProductMatch:
        """Hide the code, then ask image search whether what is left looks like the code's product."""
        model = self.holder.model
        if model is None or not len(model.index):
            return ProductMatch("unsure")
        photo = image.copy()
        fill = border_colour(photo)
        for x0, y0, x1, y1 in boxes:
            pad = max(4, (x1 - x0) // 8)
            photo.paste(fill, (max(0, x0 - pad), max(0, y0 - pad), x1 + pad, y1 + pad))
        mask = foreground_mask(photo)
        if mask.mean() < 0.02:
            return ProductMatch("no_product", "no product next to the code in the photo: the code alone was checked")
        ys, xs = np.nonzero(mask)
        product = photo.crop((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
        answer = model.identify(product, 10)
        ids = [m.product_id for m in answer.candidates]
        if product_id in ids[:10]:
            return ProductMatch("match", "the product in the photo looks like the product of the code")
        best = answer.best
        if answer.known and best is not None and best.probability >= 0.8 and product_id in model.products:
            named = model.products[product_id].title
            return ProductMatch("mismatch", f"the photo shows {best.title!r}, but the code belongs to {named!r}")
        return ProductMatch("unsure", "the product in the photo could not be matched with confidence")

    def _verify_response(self, verdict: Verdict, claims: codes.Claims | None, history, issued: dict,
                         counted: bool = False) -> pb.VerifyResponse:
        return pb.VerifyResponse(
            counted=counted,
            verdict=VERDICTS[verdict.verdict], reasons=verdict.reasons,
            product_id=claims.product_id if claims else "", batch=claims.batch if claims else "",
            serial=claims.serial if claims else "", scan_count=history.count if history else 0,
            first_scanned_at=_ts(history.first_scanned_at) if history else None,
            issued_at=_ts(float(issued["issued_at"])) if issued.get("issued_at") else None)

    def _alert(self, verdict: Verdict, claims: codes.Claims | None, request: pb.VerifyRequest) -> None:
        kind = "alert.counterfeit_detected" if verdict.verdict == COUNTERFEIT else "alert.code_suspicious"
        payload = {"verdict": verdict.verdict, "reasons": verdict.reasons, "location": request.location,
                   "scanned_by": request.scanned_by, "product_id": claims.product_id if claims else "",
                   "batch": claims.batch if claims else "", "serial": claims.serial if claims else "",
                   "payload": request.payload[:200]}
        try:
            self.publish(topics.ALERTS, payload["product_id"] or "unknown", {
                "event_id": str(uuid.uuid4()), "type": kind, "schema_version": 1, "occurred_at": _now(),
                "source": "vision", "payload": payload})
        except Exception:  # the verdict still reaches the shopper; the log keeps the alert
            log.warning("alert_not_published", exc_info=True, **{k: v for k, v in payload.items() if k != "payload"})

    # -- admin ---------------------------------------------------------------------------------------
    def Train(self, request: common_pb2.TrainRequest, context: grpc.ServicerContext) -> common_pb2.Job:
        return train_rpc(self.jobs, request, context, trainable=TRAINABLE_MODELS, check=training_params,
                         models_hint="the vision service trains 'embedder' (or empty for all)")

    def ScansBy(self, request: pb.ScansByRequest, context: grpc.ServicerContext) -> pb.ScansByResponse:
        if not request.scanned_by:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "scanned_by is required")
        scans = self.store.scans_by(request.scanned_by)
        products = {serial: self.store.issued(serial).get("product_id", "") for serial in {s for s, _ in scans}}
        return pb.ScansByResponse(scans=[
            pb.RecordedScan(serial=serial, product_id=products[serial], scanned_at=_ts(scan.get("at")),
                            location=str(scan.get("location", "")), place=str(scan.get("place", "")),
                            counted=bool(scan.get("counted", True)))
            for serial, scan in scans])

    def GetJob(self, request: common_pb2.GetJobRequest, context: grpc.ServicerContext) -> common_pb2.Job:
        return get_job_rpc(self.jobs, request, context)


class IndexWatcher:
    """Keeps the served index equal to the catalog's pictures: embeds new and changed products,
    drops removed ones, within a second; ``synced`` is set once it has caught up."""

    def __init__(self, store: VisionStore, holder: ModelHolder[VisionModel]) -> None:
        self.store = store
        self.holder = holder
        self.synced = threading.Event()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                if self.sync() == 0:
                    self.synced.set()
                    stop.wait(WATCH_SECONDS)
            except Exception:  # Redis away for a moment, or a picture that vanished: next round
                log.warning("index_sync_failed", exc_info=True)
                stop.wait(WATCH_SECONDS)

    def sync(self) -> int:
        model, version = self.holder.model, self.holder.version
        if model is None:
            return 0
        fingerprints = self.store.fingerprints()
        changed = [p for p, fp in fingerprints.items()
                   if p not in model.products or model.products[p].fingerprint != fp][:WATCH_BATCH]
        removed = [p for p in model.products if p not in fingerprints]
        if not changed and not removed:
            return 0
        entries = self.store.entries(changed)
        images = {e.product_id: (Product(e.product_id, e.title, e.category, e.fingerprint), e.image)
                  for e in entries}
        if self.holder.update(model.with_products(images, removed), version):
            log.info("index_updated", added=len(images), removed=len(removed), version=version)
        return len(changed) + len(removed)


class Scheduler(TrainingScheduler):
    """Fine-tunes on its own: once the catalog has enough pictures, then as it grows."""

    def __init__(self, settings: Settings, store: VisionStore, holder: ModelHolder[VisionModel],
                 jobs: JobRunner) -> None:
        super().__init__(settings.retrain_check_seconds, holder, jobs, enabled=settings.vision_auto_train)
        self.settings = settings
        self.store = store

    def due(self) -> bool:
        model = self.holder.model
        finetuned = model is not None and model.kind == "finetuned"
        images = self.store.images_count()
        return retrain_due(
            has_model=finetuned, users=images, min_users=self.settings.vision_min_products, events_now=images,
            events_at_training=int(self.holder.meta.get("metrics", {}).get("products", 0)),
            model_age_seconds=time.time() - model.trained_at if finetuned else 0.0,
            interval_seconds=self.settings.retrain_interval_seconds)


def build(settings: Settings) -> ServiceRunner:
    torch.set_num_threads(settings.torch_threads)
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
        publish(topics.MODELS, "vision", json.loads(model_event("vision", version, meta)))

    trainer = VisionTrainer(store, holder, registry, on_new_version=announce)
    jobs = JobRunner("vision", client, trainer.train, ttl_seconds=settings.jobs_ttl_seconds)
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
