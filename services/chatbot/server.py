"""Assistant gRPC servicer: request -> NLU -> dialogue (over the projection) -> response.

The first intent model is trained when the service starts with none in its model directory
(about 2.5 minutes on two cores without the embedding cache, 30 s with it); until
then the service reports NOT_SERVING, so load balancers and the gateway's readiness wait.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import grpc
from google.protobuf import json_format
from prometheus_client import Counter

from protos import chatbot_pb2 as pb
from protos import chatbot_pb2_grpc as pb_grpc
from protos import common_pb2
from services.chatbot.consumer import ChatbotProjection
from services.chatbot.core import handoff as H
from services.chatbot.core import turns
from services.chatbot.core.data import load_knowledge_base
from services.chatbot.core.dialogue import MAX_TURNS_KEPT, Dialogue, Understood, new_session
from services.chatbot.core.embeddings import Embedders
from services.chatbot.core.intents import LanguageRoutedClassifier
from services.chatbot.core.knowledge import KnowledgeBase
from services.chatbot.core.masking import mask_personal_data
from services.chatbot.core.nlu import NLU, check_message
from services.chatbot.handoffs import (
    DEFAULT_LIMIT,
    HK,
    MAX_LIMIT,
    HandoffDesk,
    HandoffPending,
    HandoffRefused,
    HandoffStore,
)
from services.chatbot.store import ChatbotStore
from services.chatbot.trainer import IntentTrainer, make_classifier
from services.chatbot.world import ShopWorld
from services.common import topics
from services.common.bus import EventConsumer, LazyEnvelopePublisher
from services.common.cache import connect
from services.common.events import envelope, epoch_time
from services.common.grpc_server import ServiceRunner, bootstrap, run
from services.common.jobs import JobRunner, get_job_rpc, list_models_rpc, serve_model_rpc, train_rpc
from services.common.logging import get_logger
from services.common.models import ModelHolder, ModelRegistry, announce_version
from services.common.settings import Settings, load_settings
from services.common.transport import open_channel

TURNS_REPLAYED = Counter("shopai_chat_turns_replayed_total",
                         "Conversation turns sent again with their message_id: answered from memory, not applied twice.", [])
# The refusal while the encoders load after a (re)start; the gateway reads it as "the assistant cannot be reached"
# (nothing of the message was taken) and asks the shopper to send it again.
STARTING = "the assistant is starting: loading its models"
log = get_logger(__name__)
TRAINABLE_MODELS = ("", "intent")
NOT_YOURS = "no hand-off in this conversation, or not one this caller may see"


class AssistantServicer(pb_grpc.AssistantServicer):
    def __init__(self, store: ChatbotStore, world: ShopWorld, holder: ModelHolder[LanguageRoutedClassifier],
                 embedders: Embedders, jobs: JobRunner, publish: Callable[[str, str, dict], None],
                 handoffs: HandoffStore | None = None, warm: Callable[[], bool] = lambda: True) -> None:
        """``warm()``: the encoders are loaded (a message before then would wait seconds for them)."""
        self.store = store
        self.warm = warm
        self.handoffs = handoffs or HandoffStore(store.redis)
        self.desk = HandoffDesk(self.handoffs, publish)
        self.world = world
        self.holder = holder
        self.embedders = embedders
        self.jobs = jobs
        self.publish = publish
        self.dialogue = Dialogue(world)

    def _nlu(self, context: grpc.ServicerContext) -> NLU:
        classifier = self.holder.model
        if classifier is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the assistant is still training its first model")
        if not self.warm():  # just (re)started: refused at once, before anything of the message is taken
            context.abort(grpc.StatusCode.UNAVAILABLE, STARTING)
        return NLU(classifier, self.embedders, self.world.catalog, self.world.order_ids)

    def Parse(self, request: pb.ParseRequest, context: grpc.ServicerContext) -> pb.ParseResponse:
        problem = check_message(request.text)
        if problem:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        parsed = self._nlu(context).parse(request.text, self.world.today(), request.language)
        return pb.ParseResponse(
            intent=pb.Intent(name=parsed.intent.name, confidence=parsed.intent.confidence),
            entities=[_entity(e) for e in parsed.entities], language=parsed.language,
            intent_ranking=[pb.Intent(name=n, confidence=c) for n, c in parsed.intent.ranking],
        )

    def Chat(self, request: pb.ChatRequest, context: grpc.ServicerContext) -> pb.ChatResponse:
        problem = check_message(request.message) or turns.check_message_id(request.message_id)
        if problem:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        message_id = request.message_id
        session_id = request.session_id or uuid.uuid4().hex
        turn_print = turns.fingerprint(request.session_id, request.message, request.user_id, request.user_verified,
                                       request.language) if message_id else ""
        if message_id and not request.session_id:  # a retry gets the first answer back (core/turns.py)
            session_id, first_print = self.store.claim_first_turn(message_id, turn_print, session_id)
            if first_print != turn_print:
                self._reused_id(context)
        remembered, state, current_handoff = self.store.open_turn(session_id, message_id, HK.current(session_id))
        if remembered is not None:
            if remembered[0] != turn_print:
                self._reused_id(context)
            TURNS_REPLAYED.inc()
            return pb.ChatResponse.FromString(remembered[1])
        state = state or new_session()
        owner = request.user_id if request.user_verified else ""
        active = self._active_handoff(session_id, state, current_handoff)
        if active is not None and active.get("user_id", "") == owner:
            return self._relay(active, state, request, session_id, owner, turn_print)
        nlu = self._nlu(context)
        parsed = nlu.parse(request.message, self.world.today(), request.language)
        understood = Understood(parsed.intent.name, parsed.intent.confidence, parsed.entities, parsed.language)
        with self.world.within(context.time_remaining()):
            turn = self.dialogue.respond(state, understood, request.message, request.user_id, request.user_verified)
        handoff_id = ""
        for action, details in turn.actions:
            event_id = self._act(action, details, session_id, turns.event_id(session_id, message_id, action))
            if action == "handoff":  # the assistant relays this conversation from now on, until it is closed
                handoff_id = state["handoff_id"] = event_id
                state["handoff_user"] = details.get("user_id", "")
        reply = pb.ChatResponse(
            reply=turn.reply, intent=pb.Intent(name=turn.intent, confidence=parsed.intent.confidence),
            entities=[_entity(e) for e in parsed.entities], handoff=turn.handoff, session_id=session_id,
            language=parsed.language, suggestions=turn.suggestions[:5], handoff_reason=turn.handoff_reason,
            product_ids=turn.product_ids, handoff_id=handoff_id, message_id=message_id,
        )
        # Indexed under the verified user only: a claimed id must not put a stranger's words in their export.
        self.store.save_session(session_id, state, owner, _remember(message_id, turn_print, reply))
        return reply

    @staticmethod
    def _reused_id(context: grpc.ServicerContext) -> None:
        context.abort(grpc.StatusCode.ALREADY_EXISTS,
                      "this message_id was already sent with another message (or by another caller); send a new "
                      "id with every new message, and the same id only when sending the same message again")

    def _active_handoff(self, session_id: str, state: dict, current: str | None = None) -> dict | None:
        """The conversation's hand-off while a person owns it (open or claimed), else None. One the assistant
        requested but the projection has not applied yet counts as open. ``current``: the conversation's
        latest hand-off id when already read ("" for none)."""
        pending = state.get("handoff_id", "")
        if pending:
            record = self.handoffs.handoff(pending)
        elif current is not None:
            record = self.handoffs.handoff(current)
        else:
            record = self.handoffs.current(session_id)
        if pending and record is None:
            record = {"handoff_id": pending, "session_id": session_id, "user_id": state.get("handoff_user", ""),
                      "state": H.OPEN}
        return record if record is not None and H.state_of(record) in H.ACTIVE else None

    def _relay(self, record: dict, state: dict, request: pb.ChatRequest, session_id: str,
               owner: str, turn_print: str) -> pb.ChatResponse:
        """A person owns the conversation: the message goes to the hand-off (masked), the assistant is silent."""
        self.desk.relay({**record, "session_id": session_id}, request.message,
                        turns.event_id(session_id, request.message_id, "relay"))
        state["turns"] = (state["turns"] + [{"role": "user", "text": request.message}])[-MAX_TURNS_KEPT:]
        reply = pb.ChatResponse(session_id=session_id, language=state.get("language", "en"), relayed_to_agent=True,
                                handoff_id=record["handoff_id"], intent=pb.Intent(),  # not read: no intent
                                message_id=request.message_id)
        self.store.save_session(session_id, state, owner, _remember(request.message_id, turn_print, reply))
        return reply

    def _act(self, action: str, details: dict, session_id: str, event_id: str | None = None) -> str:
        """Hand-offs and cancellation requests go to people through handoffs.v1, personal data masked.
        Their ``user_id`` is the verified user the dialogue put in ``details`` (empty when nobody signed in).
        Returns the event id (a hand-off's id)."""
        transcript = [{"role": t["role"], "text": mask_personal_data(t["text"])} for t in details["transcript"]]
        payload = {"session_id": session_id, "kind": action, "transcript": transcript,
                   **{k: v for k, v in details.items() if k != "transcript"}}
        kind = "handoff.cancel_requested" if action == "cancel_order" else "handoff.requested"
        event = envelope(kind, payload, "chatbot", event_id=event_id)
        self.publish(topics.HANDOFFS, session_id, event)
        return event["event_id"]

    # -- support staff -----------------------------------------------------------------------------
    def ListHandoffs(self, request: pb.ListHandoffsRequest, context: grpc.ServicerContext) -> pb.ListHandoffsResponse:
        if request.state and request.state not in H.STATES:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"state must be one of {', '.join(H.STATES)}")
        if not 0 <= request.limit <= MAX_LIMIT:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"limit must be between 1 and {MAX_LIMIT} (0: {DEFAULT_LIMIT})")
        found = self.handoffs.inbox(request.state, request.limit or DEFAULT_LIMIT)
        return pb.ListHandoffsResponse(handoffs=[_handoff(r) for r in found])

    def GetHandoff(self, request: pb.HandoffRequest, context: grpc.ServicerContext) -> pb.Handoff:
        record = self.handoffs.handoff(request.handoff_id)
        if record is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no hand-off {request.handoff_id!r}")
        return _handoff(record, self.handoffs.messages(request.handoff_id))

    def ClaimHandoff(self, request: pb.HandoffRequest, context: grpc.ServicerContext) -> pb.Handoff:
        return self._agent_action("claimed", request, context)

    def ReplyHandoff(self, request: pb.HandoffRequest, context: grpc.ServicerContext) -> pb.Handoff:
        problem = check_message(request.text)
        if problem:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        return self._agent_action("message", request, context)

    def CloseHandoff(self, request: pb.HandoffRequest, context: grpc.ServicerContext) -> pb.Handoff:
        return self._agent_action("closed", request, context)

    def _agent_action(self, action: str, request: pb.HandoffRequest, context: grpc.ServicerContext) -> pb.Handoff:
        if not request.handoff_id or not request.agent:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "handoff_id and agent are required")
        try:
            record = self.desk.act(action, request.handoff_id, request.agent, request.text)
        except HandoffRefused as exc:
            code = grpc.StatusCode.NOT_FOUND if exc.not_found else grpc.StatusCode.ABORTED
            context.abort(code, f"hand-off {request.handoff_id!r}: {exc}")
        except HandoffPending as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        return _handoff(record, self.handoffs.messages(request.handoff_id))

    def ConversationMessages(self, request: pb.ConversationMessagesRequest,
                             context: grpc.ServicerContext) -> pb.ConversationMessagesResponse:
        """The shopper's side of the conversation's hand-offs; NOT_FOUND alike for none and not yours."""
        if request.after < 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "after must not be negative")
        record = self.handoffs.current(request.session_id) if request.session_id else None
        owner = (record or {}).get("user_id", "")
        mine = not owner or request.staff or (request.user_verified and request.user_id == owner)
        if record is None or not mine:
            context.abort(grpc.StatusCode.NOT_FOUND, NOT_YOURS)
        entries = self.handoffs.feed(request.session_id, request.after)
        return pb.ConversationMessagesResponse(
            session_id=request.session_id, next=request.after + len(entries), handoff_id=record["handoff_id"],
            handoff_state=H.state_of(record),
            entries=[pb.ConversationEntry(seq=e["seq"], kind=e["kind"], role=e.get("role", ""),
                                          text=e.get("text", ""), at=epoch_time(e["at"]),
                                          handoff_id=e.get("handoff_id", "")) for e in entries],
        )

    def Train(self, request: common_pb2.TrainRequest, context: grpc.ServicerContext) -> common_pb2.Job:
        return train_rpc(self.jobs, request, context, trainable=TRAINABLE_MODELS, check=make_classifier,
                         models_hint="the assistant trains 'intent' (or empty for all)")

    def GetJob(self, request: common_pb2.GetJobRequest, context: grpc.ServicerContext) -> common_pb2.Job:
        return get_job_rpc(self.jobs, request, context)

    def ListModels(self, request: common_pb2.ListModelsRequest,
                   context: grpc.ServicerContext) -> common_pb2.ListModelsResponse:
        return list_models_rpc(self.holder, "chatbot", request, context)

    def ServeModel(self, request: common_pb2.ServeModelRequest,
                   context: grpc.ServicerContext) -> common_pb2.ModelVersion:
        return serve_model_rpc(self.holder, "chatbot", request, context)

    def UserData(self, request: pb.UserDataRequest, context: grpc.ServicerContext) -> pb.UserDataResponse:
        if not request.user_id:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "user_id is required")
        orders = self.store.user_orders(request.user_id, limit=0)
        conversations = self.store.user_conversations(request.user_id)
        return pb.UserDataResponse(
            user_id=request.user_id, orders=[_order_record(o) for o in orders],
            conversations=[pb.Conversation(session_id=sid, language=state.get("language", ""),
                                           turns=[pb.Turn(role=t["role"], text=t["text"]) for t in state["turns"]])
                           for sid, state in conversations.items()],
        )


def _handoff(record: dict, messages: list[dict] | None = None) -> pb.Handoff:
    def when(seconds: float) -> str:
        return epoch_time(seconds) if seconds else ""

    return pb.Handoff(
        handoff_id=record["handoff_id"], session_id=record.get("session_id", ""), user_id=record.get("user_id", ""),
        state=H.state_of(record), created_at=when(record["created_at"]), reason=record.get("reason", ""),
        last_intent=record.get("intent", ""), language=record.get("language", ""),
        transcript=[pb.Turn(role=t.get("role", ""), text=t.get("text", "")) for t in record["transcript"]],
        claimed_by=record.get("claimed_by", ""), claimed_at=when(record["claimed_at"]),
        closed_by=record.get("closed_by", ""), closed_at=when(record["closed_at"]),
        message_count=record["messages"],
        messages=[pb.HandoffMessage(id=m["id"], role=m["role"], text=m["text"], agent=m.get("agent", ""),
                                    at=epoch_time(m["at"])) for m in messages or []],
    )


def _entity(e) -> pb.Entity:
    return pb.Entity(type=e.type, value=e.value, start=e.start, end=e.end, normalized=e.normalized)


def _order_record(order: dict) -> pb.OrderRecord:
    record = pb.OrderRecord(
        order_id=order["order_id"], status=order.get("status", ""), total=float(order.get("total") or 0.0),
        currency=order.get("currency", ""), carrier=order.get("carrier", ""),
        tracking_no=order.get("tracking_no", ""), expected_delivery=order.get("expected_delivery", ""),
        reason=order.get("reason", ""),
        history=[pb.StatusChange(status=status, at=epoch_time(at))
                 for status, at in order["history"]],
    )
    for line in order["lines"]:
        record.lines.add(product_id=line.get("product_id", ""), quantity=int(line.get("quantity", 0)),
                         unit_price=float(line.get("unit_price", 0.0)))
    if order.get("sealed_personal"):
        json_format.ParseDict(order["sealed_personal"], record.sealed_personal)
    return record


def build(settings: Settings) -> ServiceRunner:
    runner = bootstrap("chatbot", settings)
    client = connect(settings)
    store = ChatbotStore(client, settings.chat_session_ttl_seconds)
    cache_dir = settings.embedding_cache_dir or settings.data_dir / "cache"
    embedders = Embedders(settings.chat_encoders, cache_dir, settings.chat_recent_vectors)
    knowledge = KnowledgeBase(load_knowledge_base(), embedders.query, embedders.passages)
    recommender = open_channel(settings.endpoint("recommender").target, settings)
    world = ShopWorld(store, knowledge, recommender, settings.grpc_deadline_seconds, settings.chat_order_id_pattern)
    holder: ModelHolder[LanguageRoutedClassifier] = ModelHolder(ModelRegistry(settings.model_dir("chatbot")))
    holder.refresh()
    outputs = LazyEnvelopePublisher(settings, client_id="chatbot")
    publish = outputs.publish

    def announce(version: str, meta: dict) -> None:
        announce_version(publish, "chatbot", version, meta)

    trainer = IntentTrainer(embedders, holder.registry, holder, cache_dir, on_new_version=announce)
    # No catch-up: the intent model learns from the service's own data set, not from the events.
    jobs = JobRunner("chatbot", client, trainer.train, ttl_seconds=settings.jobs_ttl_seconds,
                     nice=settings.jobs_nice)
    if holder.model is None:
        jobs.submit("intent", {}, "startup")  # the first model; the service is not ready until it is in
    warm = threading.Event()

    def warm_up(stop: threading.Event) -> None:
        """Load every encoder before reporting ready: the first message must not wait seconds for torch."""
        for name in embedders.models:
            embedders(name, ["warm up"])
        world.refresh_catalog()
        warm.set()

    consumer = EventConsumer(settings, ChatbotProjection(client))
    runner.add_servicer(pb_grpc.add_AssistantServicer_to_server,
                        AssistantServicer(store, world, holder, embedders, jobs, publish, warm=warm.is_set),
                        pb.DESCRIPTOR.services_by_name["Assistant"].full_name)
    runner.add_worker(consumer.run, "chatbot-consumer")
    runner.add_worker(jobs.run, "chatbot-trainer")
    runner.add_worker(world.watch_catalog, "chatbot-catalog")
    runner.add_worker(warm_up, "chatbot-warm-up")
    runner.add_readiness(warm.is_set)
    runner.add_readiness(consumer.ready.is_set)
    runner.add_readiness(lambda: holder.model is not None)
    runner.on_stop(world.close)
    runner.on_stop(outputs.close)
    return runner


def main() -> None:
    run(build(load_settings()))


def _remember(message_id: str, turn_print: str, reply: pb.ChatResponse) -> tuple[str, str, bytes] | None:
    """What the store keeps of a turn sent with a message id, for its retries (core/turns.py)."""
    return (message_id, turn_print, reply.SerializeToString()) if message_id else None
