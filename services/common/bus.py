"""The Kafka bus on kafka-python: publishing with acks='all', and consumers that
apply each event exactly once.

Consumer loop, per polled batch:
  1. decode and validate each record; what fails goes to ``<topic>.dlq`` with the reason;
  2. the projection turns each valid event into Redis commands (a processing error
     also goes to the DLQ);
  3. ``RedisApplier`` applies the batch atomically with per-event de-duplication;
  4. dead letters are acknowledged by the broker;
  5. only then are the offsets committed.
Steps 3-4 of one batch run on a thread of their own while the next batch goes through
steps 1-2 (Redis works while the consumer decodes): the next batch is built on the
state the one in flight left (``Projection.prepare``'s reads and what ``apply`` wrote
into them), exactly as if the two were one batch, and its offsets are committed only
after the first one's. A batch in flight that met events applied before (a
redelivery) has the next one built again on fresh reads.
An infrastructure error (Redis or Kafka unreachable) retries the whole batch with
back-off and commits nothing, so nothing accepted is lost. When the projection's
sentinel key is missing from Redis (a flushed or new Redis) the consumer replays
its topics from the beginning into Redis before it goes on.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import (
    CommitFailedError,
    KafkaError,
    KafkaStorageError,
    TopicAlreadyExistsError,
    UnknownError,
)
from kafka.structs import OffsetAndMetadata
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    stop_when_event_set,
    wait_exponential,
)

from services.common import metrics
from services.common.events import Event, InvalidEvent, decode_event, format_time, parse_event
from services.common.logging import get_logger
from services.common.projection import Applied, Ops, Projection, RedisApplier
from services.common.settings import Settings
from services.common.topics import PRIVACY, all_topics, dlq, route
from services.common.transport import kafka_options
from services.common.vault import PersonalDataVault, needs_sealing, seal_personal

log = get_logger(__name__)

# Fault injection for the tests: SIGKILL this process after the Nth batch's effects are stored
# and before its offsets are committed, the moment where a crash is hardest to survive.
KILL_BEFORE_COMMIT_ENV = "SHOPAI_FAILPOINT_KILL_BEFORE_COMMIT"

# Reconnect to a broker that was away within 2 s of its return (kafka-python backs off to 30 s).
RECONNECT = {"reconnect_backoff_ms": 100, "reconnect_backoff_max_ms": 2000}


def kafka_config(settings: Settings) -> dict[str, Any]:
    """What every KafkaProducer, KafkaConsumer and KafkaAdminClient of ShopAI is built with: the brokers,
    SASL and TLS of the settings (services/common/transport.py), and quick reconnection."""
    return {**kafka_options(settings), **RECONNECT}


class PublishError(RuntimeError):
    """The broker did not acknowledge an event."""


class BrokerStorageError(PublishError):
    """The broker took the events but could not write them to its storage. The embedded broker (tansu) answers
    a produce whose write to its S3 store fails (the store's disk is full: 507, or the store does not answer)
    with UNKNOWN_SERVER_ERROR (-1), after about 5 s of its own retries; Apache Kafka answers a failed log
    directory with KAFKA_STORAGE_ERROR (56)."""


# What a produce answers when the broker's storage refused the write (see BrokerStorageError).
STORAGE_ERRORS = (UnknownError, KafkaStorageError)


# Errors that say "the infrastructure is away", not "this event is bad": retry, never dead-letter.
TRANSIENT_ERRORS = (
    redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, KafkaError, OSError, PublishError,
)


def ensure_topics(settings: Settings, topics: Iterable[str] | None = None, wait_seconds: float = 60.0) -> None:
    """Create the topics if missing (idempotent; every process calls it at start), waiting up to
    ``wait_seconds`` for the broker."""
    wanted = list(topics or all_topics())
    for attempt in Retrying(
        retry=retry_if_exception_type(TRANSIENT_ERRORS), wait=wait_exponential(0.2, max=2),
        stop=stop_after_delay(wait_seconds), reraise=True,
    ):
        with attempt:
            admin = KafkaAdminClient(
                **kafka_config(settings), client_id="shopai-admin",
                bootstrap_timeout_ms=int(min(wait_seconds, 30) * 1000),
            )
            try:
                existing = set(admin.list_topics())
                missing = [t for t in wanted if t not in existing]
                if missing:
                    try:
                        admin.create_topics(
                            [NewTopic(t, settings.kafka_topic_partitions, 1) for t in missing]
                        )
                    except TopicAlreadyExistsError:
                        pass  # another process won the race
                    log.info("topics_created", topics=missing)
            finally:
                admin.close()


class EventPublisher:
    """Publishes events to their topics, keyed for per-entity ordering; waits for the broker's ack.

    Personal fields of orders never reach the broker in plaintext: ``publish`` seals them with the shopper's
    key (services/common/vault.py) first, through ``vault`` or, when none is given, the vault the settings
    name, opened on the first event that needs it."""

    def __init__(self, settings: Settings, client_id: str = "shopai", vault: PersonalDataVault | None = None) -> None:
        self._settings = settings
        self._vault = vault
        self._own_vault = vault is None  # opened here on first use, so closed here
        self._vault_lock = threading.Lock()
        self._producer = KafkaProducer(
            **kafka_config(settings),
            client_id=client_id,
            acks="all",
            retries=5,
            linger_ms=5,
            # Bulk publishing (seeding, imports) flushes per chunk: big batches, compressed, move
            # ~1.8x more events per second than the defaults (benchmarks/README.md).
            batch_size=256 * 1024,
            compression_type="gzip",
            max_in_flight_requests_per_connection=1,  # keeps per-key order across retries
            # A missing broker or topic fails a call within seconds instead of blocking a request.
            request_timeout_ms=15000,
            delivery_timeout_ms=20000,
            bootstrap_timeout_ms=10000,
            max_block_ms=10000,
            # Not kafka-python 3's idempotent producer: it needs the broker to keep a producer id, which the
            # embedded broker writes to its storage, so with a full disk no new producer could start; and it
            # takes any refused produce (a failed storage write) as fatal, failing every later send of the
            # process. Retries may then write a record twice; consumers count each event id once.
            enable_idempotence=False,
        )

    def send(self, topic: str, key: str | None, value: bytes) -> Any:
        """Queue one raw record; returns its future."""
        return self._producer.send(topic, key=key.encode() if key else None, value=value)

    def publish(self, events: Iterable[Event | Mapping[str, Any]], timeout: float = 30.0) -> int:
        """Publish validated events; return how many the broker acknowledged, or raise PublishError."""
        futures = []
        parsed = [item if isinstance(item, Event) else parse_event(dict(item)) for item in events]
        if any(needs_sealing(e) for e in parsed):
            parsed = seal_personal(parsed, self.vault())
        for event in parsed:
            topic, key_field = route(event.type)
            value = json.dumps(event.to_dict(), separators=(",", ":"), ensure_ascii=False).encode()
            try:
                futures.append((topic, self.send(topic, str(event.payload.get(key_field, "")), value)))
            except KafkaError as exc:  # no metadata within max_block_ms: the broker is away
                raise PublishError(f"the broker took no event for {topic}: {exc}") from exc
        return self.wait(futures, timeout)

    def vault(self) -> PersonalDataVault:
        with self._vault_lock:
            if self._vault is None:
                self._vault = PersonalDataVault.from_settings(self._settings)
            return self._vault

    def wait(self, futures: list[tuple[str, Any]], timeout: float = 30.0) -> int:
        try:
            self._producer.flush(timeout=timeout)
        except KafkaError as exc:  # KafkaTimeoutError: not all acknowledged in time (a broker restarting)
            raise PublishError(f"the broker did not acknowledge the events within {timeout:g} s: {exc}") from exc
        for topic, future in futures:
            try:
                future.get(timeout=timeout)
            except KafkaError as exc:
                if isinstance(exc, STORAGE_ERRORS):
                    raise BrokerStorageError(
                        f"the broker could not write the events for {topic} to its storage ({exc}): its disk is full "
                        "or its store does not answer; send them again once it has room (the same event ids are "
                        "counted once)") from exc
                raise PublishError(f"broker did not acknowledge an event for {topic}: {exc}") from exc
            metrics.EVENTS_PUBLISHED.labels(topic).inc()
        return len(futures)

    def close(self) -> None:
        self._producer.close(timeout=5)
        if self._own_vault and self._vault is not None:
            self._vault.close()


class LazyEnvelopePublisher:
    """A service's own outputs (``models.v1``, ``alerts.v1``, ``handoffs.v1``, ...): one envelope at a
    time, acknowledged by the broker before ``publish`` returns. The producer is made on first use, so a
    service starts (and answers) before the broker is up."""

    def __init__(self, settings: Settings, client_id: str) -> None:
        self._settings = settings
        self._client_id = client_id
        self._publisher: EventPublisher | None = None
        self._lock = threading.Lock()

    def publish(self, topic: str, key: str, envelope: Mapping[str, Any]) -> None:
        with self._lock:
            if self._publisher is None:
                self._publisher = EventPublisher(self._settings, client_id=self._client_id)
            publisher = self._publisher
        value = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
        publisher.wait([(topic, publisher.send(topic, key, value))])

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.close()


def dead_letter_value(record: Any, group: str, reason: str, error_type: str) -> bytes:
    """The JSON body of a dead letter (schema: protos/events.proto DeadLetter)."""
    raw: bytes = record.value or b""
    try:
        text, is_b64 = raw.decode("utf-8"), False
    except UnicodeDecodeError:
        text, is_b64 = base64.b64encode(raw).decode(), True
    return json.dumps(
        {
            "reason": reason,
            "error_type": error_type,
            "topic": record.topic,
            "partition": record.partition,
            "offset": str(record.offset),
            "key": (record.key or b"").decode("utf-8", "replace"),
            "value": text,
            "value_is_base64": is_b64,
            "consumer_group": group,
            "failed_at": format_time(datetime.now(UTC)),
        },
        ensure_ascii=False,
    ).encode()


@dataclass
class BuiltBatch:
    """One polled batch turned into Redis commands (steps 1-2), ready for the applier (3-4)."""

    batch: Mapping[TopicPartition, list[Any]]
    items: list[tuple[str, list[list[str]]]] = field(default_factory=list)
    topics_of: list[str] = field(default_factory=list)
    dead: list[tuple[Any, str, str]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)  # prepare's reads, as apply left them
    started: float = 0.0
    chain: int = 0  # batches built on the state of the ones before it, without fresh reads


@dataclass
class _InFlight:
    built: BuiltBatch
    future: Future


class EventConsumer:
    """Runs one projection as a member of its consumer group until ``stop`` is set."""

    # Batches built in a row on the state of the one before (then one waits, and the next reads afresh): bounds how
    # long a cached read may go without a fresh one (~16 x 25 ms) when another replica writes the same keys.
    CHAIN_LIMIT = 16

    def __init__(
        self,
        settings: Settings,
        projection: Projection,
        publisher: EventPublisher | None = None,
        rebuild_check_seconds: float = 2.0,
    ) -> None:
        self.settings = settings
        self.projection = projection
        self.group = projection.group
        self.applier = RedisApplier(projection.redis, self.group, settings.dedup_ttl_seconds)
        self.publisher = publisher  # for dead letters; created in run() once the broker answers
        self.rebuild_check_seconds = rebuild_check_seconds
        self._next_rebuild_check = 0.0
        self._consumer: KafkaConsumer | None = None
        self.ready = threading.Event()  # set once the projection is current with its topics at start
        self._batches = 0
        self._kill_before_commit = int(os.environ.get(KILL_BEFORE_COMMIT_ENV, "0") or 0)

    # -- the loop -------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set. A session that fails (the broker is not up yet, or a bug
        in a batch) is logged, reported as not ready, and started again with back-off: the
        committed offsets make a restart lose nothing."""
        backoff = 1.0
        while not stop.is_set():
            try:
                self._session(stop)
                backoff = 1.0
            except Exception:  # kept alive on purpose; the failure is logged with its traceback
                self.ready.clear()
                log.exception("consumer_session_failed", group=self.group, retry_in=backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
        if self.publisher is not None:
            self.publisher.close()
        log.info("consumer_stopped", group=self.group)

    def _session(self, stop: threading.Event) -> None:
        ensure_topics(self.settings)  # all of them: a producer may need a topic no consumer reads yet
        if self.publisher is None:
            self.publisher = EventPublisher(self.settings, client_id=f"{self.group}-dlq")
        self._consumer = self._group_consumer()
        log.info("consumer_started", group=self.group, topics=list(self.projection.topics))
        # One batch's script in flight on this thread while the loop builds the next.
        storer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self.group}-apply")
        in_flight: _InFlight | None = None
        try:
            while not stop.is_set():
                try:
                    if in_flight is None:
                        self._maybe_rebuild(stop)
                    self.ready.set()
                    batch = self._consumer.poll(timeout_ms=500, max_records=self.settings.kafka_max_batch)
                    self._record_assignment_and_lag()
                    if not batch:
                        self._finish(in_flight, stop)
                        in_flight = None
                        continue
                    built = None
                    if in_flight is not None and in_flight.built.chain < self.CHAIN_LIMIT:
                        try:  # while Redis applies the batch in flight
                            built = self.build(batch, in_flight.built.state, chain=in_flight.built.chain + 1)
                        except TRANSIENT_ERRORS:
                            built = None  # built again below, once the one in flight is done
                    applied = self._finish(in_flight, stop)
                    in_flight = None
                    if built is not None and applied is not None and not all(applied.per_event):
                        # A redelivery: the state it left assumed every event applied now. Read afresh.
                        built = None
                    if built is None:
                        built = self._build_with_retry(batch, stop)
                    in_flight = _InFlight(built, storer.submit(self.store, built, True))
                except TRANSIENT_ERRORS as exc:
                    metrics.CONSUMER_RETRIES.labels(self.group).inc()
                    log.warning("consumer_infrastructure_error", group=self.group, error=str(exc))
                    stop.wait(1.0)
        finally:
            if in_flight is not None:  # let its script end, and commit it if it was stored (a stop, not a crash)
                try:
                    if in_flight.future.exception() is None:
                        self._commit(in_flight.built.batch)
                except Exception as exc:  # noqa: BLE001 - left uncommitted: a restart re-reads it, the markers skip it
                    log.warning("last_batch_not_committed", group=self.group, error=str(exc))
            storer.shutdown(wait=True)
            self._consumer.close(autocommit=False)

    def _record_assignment_and_lag(self) -> None:
        """Partitions owned and events behind, from the high watermarks that fetches report."""
        assigned = self._consumer.assignment()
        metrics.CONSUMER_ASSIGNED.labels(self.group).set(len(assigned))
        lag: dict[str, int] = {t: 0 for t in self.projection.topics}
        for tp in assigned:
            high = self._consumer.highwater(tp)
            if high is not None:
                lag[tp.topic] += max(0, high - self._consumer.position(tp))
        for topic, behind in lag.items():
            metrics.CONSUMER_LAG.labels(self.group, topic).set(behind)

    def _group_consumer(self) -> KafkaConsumer:
        return KafkaConsumer(
            *self.projection.topics,
            **kafka_config(self.settings),
            group_id=self.group,
            client_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self.settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=self.settings.kafka_heartbeat_interval_ms,
            max_poll_records=self.settings.kafka_max_batch,
        )

    def _retrying(self, stop: threading.Event) -> Retrying:
        def note_retry(state: RetryCallState) -> None:
            metrics.CONSUMER_RETRIES.labels(self.group).inc()
            log.warning("batch_retry", group=self.group, attempt=state.attempt_number,
                        error=str(state.outcome.exception()) if state.outcome else "")

        # Redis or Kafka away: retry until it is done (or we are told to stop).
        return Retrying(
            retry=retry_if_exception_type(TRANSIENT_ERRORS), wait=wait_exponential(multiplier=0.2, max=10),
            stop=stop_when_event_set(stop), before_sleep=note_retry, sleep=stop.wait, reraise=True,
        )

    def _build_with_retry(self, batch: Mapping[TopicPartition, list[Any]], stop: threading.Event) -> BuiltBatch:
        for attempt in self._retrying(stop):
            with attempt:
                built = self.build(batch)
        return built

    def _finish(self, in_flight: _InFlight | None, stop: threading.Event) -> Applied | None:
        """Wait for the batch in flight to be stored (retrying it if Redis or Kafka failed it), then commit its
        offsets. None when nothing was in flight or the batch had no valid event."""
        if in_flight is None:
            return None
        try:
            applied = in_flight.future.result()
        except TRANSIENT_ERRORS:
            # The same commands again: the script is atomic and its markers skip what a failed attempt stored.
            applied = None
            for attempt in self._retrying(stop):
                with attempt:
                    applied = self.store(in_flight.built, dead_letter=True)
        self._commit(in_flight.built.batch)
        return applied

    def _commit(self, batch: Mapping[TopicPartition, list[Any]]) -> None:
        self._batches += 1
        if self._batches == self._kill_before_commit:
            log.warning("failpoint_kill_before_commit", group=self.group, batch=self._batches)
            os.kill(os.getpid(), signal.SIGKILL)
        offsets = {
            tp: OffsetAndMetadata(records[-1].offset + 1, None, -1) for tp, records in batch.items() if records
        }
        try:
            self._consumer.commit(offsets)
        except CommitFailedError as exc:
            # The group rebalanced under us; the new owner re-reads these events and the markers skip them.
            log.warning("commit_failed_after_rebalance", group=self.group, error=str(exc))

    # -- one batch ------------------------------------------------------------------------------------
    def process(self, batch: Mapping[TopicPartition, list[Any]], dead_letter: bool) -> None:
        """Apply one polled batch; raises a TRANSIENT_ERROR to have it retried whole."""
        self.store(self.build(batch), dead_letter)

    def build(self, batch: Mapping[TopicPartition, list[Any]], state: dict[str, Any] | None = None,
              chain: int = 0) -> BuiltBatch:
        """Steps 1-2: decode and validate the records, read what the projection needs (``prepare``) and turn each
        event into its commands. ``state``: the state a batch not yet stored left, to build on it as if one batch."""
        built = BuiltBatch(batch, state={} if state is None else state, started=time.perf_counter(), chain=chain)
        decoded: list[tuple[Any, Event]] = []
        for records in batch.values():
            for record in records:
                try:
                    decoded.append((record, decode_event(record.value or b"")))
                except InvalidEvent as exc:
                    built.dead.append((record, f"invalid event: {exc}", "InvalidEvent"))
        # What the events will read of Redis, read once for the whole batch (one round trip, not one per event).
        self.projection.prepare([event for _, event in decoded], built.state)
        for record, event in decoded:
            ops = Ops(built.state, (record.topic, record.partition, record.offset))
            try:
                self.projection.apply(event, ops)
            except TRANSIENT_ERRORS:
                raise
            except Exception as exc:  # noqa: BLE001 - bad data in one event must not stop the others
                built.dead.append((record, f"processing failed: {exc}", type(exc).__name__))
                continue
            built.items.append((event.event_id, ops.commands))
            built.topics_of.append(record.topic)
        return built

    def store(self, built: BuiltBatch, dead_letter: bool) -> Applied | None:
        """Steps 3-4: the commands through the exactly-once script, then the dead letters to the broker."""
        result = self.applier.apply(built.items) if built.items else None
        if dead_letter and built.dead:
            assert self.publisher is not None, "dead letters are sent only from run()"
            futures = []
            for record, reason, error_type in built.dead:
                log.warning("event_dead_lettered", group=self.group, topic=record.topic,
                            offset=record.offset, reason=reason)
                value = dead_letter_value(record, self.group, reason, error_type)
                futures.append((dlq(record.topic), self.publisher.send(dlq(record.topic), None, value)))
            self.publisher.wait(futures)
            for record, _, _ in built.dead:
                metrics.EVENTS_CONSUMED.labels(self.group, record.topic, "dead_lettered").inc()
        if result is not None:
            for topic, applied in zip(built.topics_of, result.per_event):
                metrics.EVENTS_CONSUMED.labels(self.group, topic, "applied" if applied else "duplicate").inc()
        metrics.CONSUMER_BATCH_SECONDS.labels(self.group).observe(time.perf_counter() - built.started)
        return result

    # -- rebuilding a flushed Redis -------------------------------------------------------------------
    def _maybe_rebuild(self, stop: threading.Event) -> None:
        now = time.monotonic()
        if now < self._next_rebuild_check:
            return
        self._next_rebuild_check = now + self.rebuild_check_seconds
        if self.projection.redis.exists(self.projection.sentinel_key):
            return
        self.rebuild(stop)

    def rebuild(self, stop: threading.Event) -> int:
        """Replay the projection's topics from the beginning into Redis; return events read. The erasure
        register (``privacy.v1``) is replayed first, so an erased shopper's events replay as no-ops."""
        log.info("projection_rebuild_started", group=self.group)
        metrics.PROJECTION_REBUILDS.labels(self.group).inc()
        replayer = KafkaConsumer(
            **kafka_config(self.settings),
            group_id=None,
            enable_auto_commit=False,
            client_id=f"{self.group}-rebuild",
        )
        read = 0
        try:
            first = [t for t in self.projection.topics if t == PRIVACY]
            for phase in (first, [t for t in self.projection.topics if t not in first]):
                read += self._replay(replayer, phase, stop)
        finally:
            replayer.close()
        if not stop.is_set():
            self.projection.redis.set(self.projection.sentinel_key, format_time(datetime.now(UTC)))
            log.info("projection_rebuild_finished", group=self.group, events=read)
        return read

    def _replay(self, replayer: KafkaConsumer, topics: list[str], stop: threading.Event) -> int:
        """Read ``topics`` from the beginning to their high watermarks through the exactly-once path."""
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(replayer.partitions_for_topic(t) or ())]
        if not partitions:
            return 0
        replayer.assign(partitions)
        replayer.seek_to_beginning(*partitions)
        read = 0
        # Read to the high watermark that fetch responses report. (ListOffsets is not used:
        # the dev broker answers it with the last batch's base offset + 1.)
        while not stop.is_set():
            batch = replayer.poll(timeout_ms=500, max_records=self.settings.kafka_max_batch)
            if batch:
                read += sum(len(records) for records in batch.values())
                # Invalid events are dead-lettered by the group consumer, once, not here.
                self.process(batch, dead_letter=False)
                continue
            marks = {tp: replayer.highwater(tp) for tp in partitions}
            if all(m is not None and replayer.position(tp) >= m for tp, m in marks.items()):
                break
        return read
