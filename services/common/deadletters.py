"""Dead letters: list the ``<topic>.dlq`` topics, show one, replay chosen ones to their source topic.

A consumer that cannot process an event publishes a dead letter (``bus.dead_letter_value``; schema
protos/events.proto DeadLetter) to ``<topic>.dlq``. Here they are read back, each named by a stable id,
``<dlq topic>:<partition>:<offset>`` (e.g. ``orders.v1.dlq:0:3``).

Replaying a letter re-publishes the original event's bytes, with its key, to its source topic. Every
consumer group of that topic sees the event again: the groups that applied it already skip it by its
``event_id`` (the exactly-once markers, kept ``SHOPAI_DEDUP_TTL_SECONDS``), the ones that could not process it
try again, and one that still cannot dead-letters it again with the new reason (a new letter, for the new
copy's position). After the event is acknowledged, a *replay marker* is appended to the same ``.dlq`` topic:
``{"replay_of": <letter id>, "source": {...}, "replayed_to": {...}, "replayed_at", "replayed_by",
"forced"}``. Markers are how a letter is known to be replayed, kept in Kafka with the letters (a flushed
Redis loses nothing); a marker covers every letter of the same source event (one per consumer group that
failed it), since one re-publication reaches every group. A second replay is refused unless forced, and
so is a letter older than the de-duplication window (a group that applied the event may have forgotten it).

The parsing, the assembly of letters and markers, and the replay plan are pure; ``DeadLetters`` does the I/O
with kafka-python: ``assign`` + ``seek`` (no consumer group), reading each partition up to its end offset.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.common.events import format_time
from services.common.settings import Settings
from services.common.topics import all_topics

DLQ_SUFFIX = ".dlq"
DLQ_TOPICS: tuple[str, ...] = tuple(t for t in all_topics() if t.endswith(DLQ_SUFFIX))
ID_PATTERN = re.compile(r"^(?P<topic>[A-Za-z0-9._-]{1,200}\.dlq):(?P<partition>\d{1,9}):(?P<offset>\d{1,19})$")
ID_EXAMPLE = "orders.v1.dlq:0:3"
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
READ_TIMEOUT_SECONDS = 15.0


class BadLetterId(ValueError):
    """Not a dead letter id (``<dlq topic>:<partition>:<offset>``), or not a dead-letter topic."""


class UnknownLetters(LookupError):
    """Well-formed ids with no dead letter behind them."""

    def __init__(self, ids: Sequence[str]) -> None:
        super().__init__("no dead letter " + ", ".join(ids))
        self.ids = list(ids)


class ReplayRefused(Exception):
    """Letters replayed before (or too old to replay safely), and ``force`` was not given."""

    def __init__(self, reasons: dict[str, str]) -> None:
        super().__init__("; ".join(f"{i}: {r}" for i, r in reasons.items()))
        self.reasons = reasons


class DeadLetterReadError(RuntimeError):
    """The dead-letter topics could not be read to their end in time (the broker is away or slow)."""


@dataclass(frozen=True, order=True)
class LetterId:
    topic: str  # the .dlq topic
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"

    @classmethod
    def parse(cls, text: str) -> LetterId:
        match = ID_PATTERN.match(text.strip())
        if match is None:
            raise BadLetterId(f"{text!r} is not a dead letter id: expected <dead-letter topic>:<partition>:<offset>, "
                              f"e.g. {ID_EXAMPLE}")
        return cls(match["topic"], int(match["partition"]), int(match["offset"]))


def dlq_topic_of(topic: str) -> str:
    """The dead-letter topic named by ``topic``, which may be a source topic (``orders.v1``) or the
    dead-letter topic itself (``orders.v1.dlq``); BadLetterId when it is neither."""
    name = topic.strip()
    wanted = name if name.endswith(DLQ_SUFFIX) else name + DLQ_SUFFIX
    if wanted not in DLQ_TOPICS:
        sources = ", ".join(t[: -len(DLQ_SUFFIX)] for t in DLQ_TOPICS)
        raise BadLetterId(f"{topic!r} has no dead-letter topic; expected one of {sources} (or the same with .dlq)")
    return wanted


@dataclass(frozen=True)
class Replay:
    """A replay marker: letter ``letter`` was re-published as ``topic:partition:offset``."""

    letter: str
    source: tuple[str, int, int]  # the original event's position
    topic: str
    partition: int
    offset: int
    at: str
    by: str
    forced: bool

    def to_dict(self) -> dict[str, Any]:
        return {"letter": self.letter, "topic": self.topic, "partition": self.partition, "offset": self.offset,
                "at": self.at, "by": self.by, "forced": self.forced}


@dataclass
class DeadLetter:
    id: LetterId
    timestamp_ms: int  # when the broker stored the letter
    source_topic: str
    source_partition: int
    source_offset: int
    consumer_group: str
    reason: str
    error_type: str
    failed_at: str
    key: str
    value: bytes  # the original event's bytes
    replayed: Replay | None = field(default=None)

    @property
    def source(self) -> tuple[str, int, int]:
        return (self.source_topic, self.source_partition, self.source_offset)

    def event(self) -> Any | None:
        """The original event decoded, when it is JSON; None otherwise."""
        try:
            return json.loads(self.value)
        except (UnicodeDecodeError, ValueError):
            return None

    def to_dict(self) -> dict[str, Any]:
        event = self.event()
        body: dict[str, Any] = {
            "id": str(self.id),
            "dead_letter_topic": self.id.topic,
            "topic": self.source_topic,
            "partition": self.source_partition,
            "offset": self.source_offset,
            "consumer_group": self.consumer_group,
            "reason": self.reason,
            "error_type": self.error_type,
            "failed_at": self.failed_at,
            "key": self.key,
            "event_id": event.get("event_id") if isinstance(event, dict) else None,
            "event_type": event.get("type") if isinstance(event, dict) else None,
            "event": event,
            "event_base64": None if event is not None else base64.b64encode(self.value).decode(),
            "replayed": self.replayed.to_dict() if self.replayed else None,
        }
        return body


# -- pure: records -> letters and markers ---------------------------------------------------------------

def parse_record(topic: str, partition: int, offset: int, timestamp_ms: int,
                 value: bytes | None) -> DeadLetter | Replay | None:
    """One record of a ``.dlq`` topic: a dead letter, a replay marker, or None for anything else."""
    try:
        data = json.loads(value or b"")
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    try:
        if "replay_of" in data:
            source, to = data["source"], data["replayed_to"]
            return Replay(
                letter=str(data["replay_of"]),
                source=(str(source["topic"]), int(source["partition"]), int(source["offset"])),
                topic=str(to["topic"]), partition=int(to["partition"]), offset=int(to["offset"]),
                at=str(data.get("replayed_at", "")), by=str(data.get("replayed_by", "")),
                forced=bool(data.get("forced", False)),
            )
        if "reason" not in data or "consumer_group" not in data:
            return None
        text = str(data.get("value", ""))
        raw = base64.b64decode(text) if data.get("value_is_base64") else text.encode("utf-8")
        return DeadLetter(
            id=LetterId(topic, partition, offset), timestamp_ms=timestamp_ms,
            source_topic=str(data.get("topic") or topic[: -len(DLQ_SUFFIX)]),
            source_partition=int(data.get("partition", -1)), source_offset=int(data.get("offset", -1)),
            consumer_group=str(data["consumer_group"]), reason=str(data["reason"]),
            error_type=str(data.get("error_type", "")), failed_at=str(data.get("failed_at", "")),
            key=str(data.get("key", "")), value=raw,
        )
    except (KeyError, TypeError, ValueError):
        return None


def assemble(records: Iterable[DeadLetter | Replay | None]) -> list[DeadLetter]:
    """The letters of ``records``, each marked with its replay (its own, or its source event's: another
    group's letter of the same event), newest first."""
    letters: list[DeadLetter] = []
    by_letter: dict[str, Replay] = {}
    by_source: dict[tuple[str, int, int], Replay] = {}
    for record in records:
        if isinstance(record, DeadLetter):
            letters.append(record)
        elif isinstance(record, Replay):
            by_letter.setdefault(record.letter, record)
            by_source.setdefault(record.source, record)
    for letter in letters:
        letter.replayed = by_letter.get(str(letter.id)) or by_source.get(letter.source)
    letters.sort(key=lambda x: (x.timestamp_ms, x.id), reverse=True)
    return letters


def replay_marker(letter: DeadLetter, topic: str, partition: int, offset: int, by: str, forced: bool,
                  now: datetime | None = None) -> bytes:
    """The JSON of the marker that records ``letter`` as replayed to ``topic:partition:offset``."""
    return json.dumps({
        "replay_of": str(letter.id),
        "source": {"topic": letter.source_topic, "partition": letter.source_partition,
                   "offset": letter.source_offset},
        "replayed_to": {"topic": topic, "partition": partition, "offset": offset},
        "replayed_at": format_time(now or datetime.now(UTC)),
        "replayed_by": by,
        "forced": forced,
    }, ensure_ascii=False, separators=(",", ":")).encode()


def plan_replay(wanted: Sequence[LetterId], found: dict[LetterId, DeadLetter], force: bool, now_ms: int,
                dedup_ttl_seconds: float) -> list[list[DeadLetter]]:
    """The letters to replay, grouped by source event (one re-publication per group), in the order asked;
    raises UnknownLetters, or ReplayRefused for letters replayed before or older than the de-duplication
    window (unless ``force``)."""
    unknown = [str(i) for i in wanted if i not in found]
    if unknown:
        raise UnknownLetters(unknown)
    if not force:
        refused: dict[str, str] = {}
        for letter_id in wanted:
            letter = found[letter_id]
            if letter.replayed is not None:
                via = "" if letter.replayed.letter == str(letter_id) else f" through {letter.replayed.letter}"
                refused[str(letter_id)] = (f"already replayed{via} at {letter.replayed.at} (to "
                                           f"{letter.replayed.topic}:{letter.replayed.partition}:"
                                           f"{letter.replayed.offset}); force to replay it again")
            elif now_ms - letter.timestamp_ms > dedup_ttl_seconds * 1000:
                refused[str(letter_id)] = (f"older than the de-duplication window ({dedup_ttl_seconds / 86400:g} "
                                           "days): a consumer that applied the event may apply it twice; "
                                           "force to replay it anyway")
        if refused:
            raise ReplayRefused(refused)
    groups: dict[tuple[str, int, int], list[DeadLetter]] = {}
    for letter_id in dict.fromkeys(wanted):  # each id once, in order
        letter = found[letter_id]
        groups.setdefault(letter.source if letter.source_offset >= 0 else (str(letter_id), 0, 0), []).append(letter)
    return list(groups.values())


# -- I/O ------------------------------------------------------------------------------------------------

class DeadLetters:
    """Reads and replays dead letters on the broker of ``settings``. ``publisher`` gives the
    EventPublisher used to replay (the caller's; made and closed here when None)."""

    def __init__(self, settings: Settings, publisher: Callable[[], Any] | None = None,
                 read_timeout: float = READ_TIMEOUT_SECONDS) -> None:
        self.settings = settings
        self._publisher = publisher
        self.read_timeout = read_timeout

    def read(self, topics: Sequence[str] = DLQ_TOPICS) -> list[DeadLetter]:
        """Every letter of ``topics`` with its replay state, newest first."""
        from kafka import KafkaConsumer, TopicPartition

        from services.common.bus import kafka_config

        consumer = KafkaConsumer(**kafka_config(self.settings), group_id=None, enable_auto_commit=False,
                                 client_id="shopai-deadletters", bootstrap_timeout_ms=5000)
        records: list[DeadLetter | Replay | None] = []
        try:
            partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
            ends = consumer.end_offsets(partitions) if partitions else {}
            # An end offset of 0 is an empty partition. Otherwise read up to the end offset and to the high
            # watermark of the fetches, whichever is further: the dev broker (tansu) answers ListOffsets with
            # the last batch's base offset + 1, short of the end when that batch holds several records.
            todo = [tp for tp in partitions if ends.get(tp)]
            if not todo:
                return []
            consumer.assign(todo)
            consumer.seek_to_beginning(*todo)
            deadline = time.monotonic() + self.read_timeout
            while True:
                batch = consumer.poll(timeout_ms=200, max_records=1000)
                for tp, items in batch.items():
                    records.extend(parse_record(tp.topic, tp.partition, r.offset, r.timestamp, r.value)
                                   for r in items)
                if batch:
                    continue
                done = True
                for tp in todo:
                    high = consumer.highwater(tp)
                    if high is None or consumer.position(tp) < max(high, ends[tp]):
                        done = False
                        break
                if done:
                    break
                if time.monotonic() > deadline:
                    raise DeadLetterReadError(f"the dead-letter topics were not read to their end within "
                                              f"{self.read_timeout:g} s")
        finally:
            consumer.close(autocommit=False)
        return assemble(records)

    def list(self, topic: str | None = None, limit: int = DEFAULT_LIMIT) -> tuple[list[DeadLetter], int]:
        """The newest ``limit`` letters (of one topic's dead-letter topic when ``topic`` is given) and how many
        there are in all."""
        letters = self.read([dlq_topic_of(topic)] if topic else DLQ_TOPICS)
        return letters[:limit], len(letters)

    def get(self, letter_id: str) -> DeadLetter:
        wanted = LetterId.parse(letter_id)
        if wanted.topic not in DLQ_TOPICS:
            raise UnknownLetters([str(wanted)])
        for letter in self.read([wanted.topic]):
            if letter.id == wanted:
                return letter
        raise UnknownLetters([str(wanted)])

    def replay(self, letter_ids: Sequence[str], force: bool = False, by: str = "") -> list[dict[str, Any]]:
        """Re-publish the chosen letters' events to their source topics, then record them as replayed;
        what each became (``id``, ``topic``, ``partition``, ``offset``, ``event_id``)."""
        if not letter_ids:
            raise BadLetterId(f"no dead letter id given, e.g. {ID_EXAMPLE}")
        wanted = [LetterId.parse(i) for i in letter_ids]
        unknown = [str(i) for i in wanted if i.topic not in DLQ_TOPICS]
        if unknown:
            raise UnknownLetters(unknown)
        letters = self.read(sorted({i.topic for i in wanted}))
        found = {letter.id: letter for letter in letters if letter.id in set(wanted)}
        plan = plan_replay(wanted, found, force, int(time.time() * 1000), self.settings.dedup_ttl_seconds)
        own = self._publisher is None
        if own:
            from services.common.bus import EventPublisher

            publisher = EventPublisher(self.settings, client_id="shopai-deadletters")
        else:
            publisher = self._publisher()  # type: ignore[misc]
        try:
            sent = [(group, publisher.send(group[0].source_topic, group[0].key or None, group[0].value))
                    for group in plan]
            publisher.wait([(group[0].source_topic, future) for group, future in sent])
            results: list[dict[str, Any]] = []
            markers = []
            for group, future in sent:
                meta = future.get(timeout=0)
                for letter in group:
                    value = replay_marker(letter, meta.topic, meta.partition, meta.offset, by, force)
                    markers.append((letter.id.topic, publisher.send(letter.id.topic, str(letter.id), value)))
                    event = letter.event()
                    results.append({"id": str(letter.id), "topic": meta.topic, "partition": meta.partition,
                                    "offset": meta.offset,
                                    "event_id": event.get("event_id") if isinstance(event, dict) else None})
            publisher.wait(markers)
        finally:
            if own:
                publisher.close()
        return results
