"""Training sees what was accepted (issue #20): a training job first waits until the service's consumer has
applied every event that was in its topics when the job was requested.

``POST /v1/events`` or ``shopai import`` answer once the broker has the events; the consumer applies them a
moment later. A training job requested right after an import would otherwise train on whatever was applied
by then. So the job notes, when it is requested, where each partition of the consumer's topics ends
(:meth:`LogCatchUp.ends`), and before training waits, with progress, until the consumer group's committed
offsets (the group commits after it applied a batch: services/common/bus.py) reach those ends, bounded by
``SHOPAI_TRAIN_CATCHUP_SECONDS``. The job's metrics record what it waited for: the events in the log at the
request, how many were not applied yet, how long it waited, and any left when the bound ran out.

The dev broker (tansu) answers ListOffsets with the last record batch's base offset + 1, short of the end
when that batch holds several records, so an end is the larger of that answer and the high watermark one
fetch reports.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from services.common.logging import get_logger

if TYPE_CHECKING:
    from services.common.settings import Settings

log = get_logger(__name__)

Ends = dict[str, int]  # "topic:partition" -> the offset after the last event


def behind(ends: Mapping[str, int], committed: Mapping[str, int]) -> int:
    """Events of ``ends`` the group has not committed yet (a partition it never committed counts whole)."""
    return sum(max(0, end - committed.get(tp, 0)) for tp, end in ends.items())


def catchup_metrics(ends: Mapping[str, int], behind_at_start: int, left: int, seconds: float) -> dict[str, float]:
    """What the job reports: events in the log when requested, not applied when the job started, still not
    applied when training began (0 unless the bound ran out), and the seconds waited."""
    return {"events_in_log_at_request": float(sum(ends.values())),
            "events_not_applied_at_start": float(behind_at_start),
            "events_not_applied_at_training": float(left), "catchup_seconds": round(seconds, 3)}


def for_projection(settings: Settings, projection: Any) -> LogCatchUp | None:
    """The catch-up of the consumer that feeds a trainer (its projection's group and topics), or None when
    ``SHOPAI_TRAIN_CATCHUP_SECONDS`` is 0 (train on what is applied, at once)."""
    if settings.train_catchup_seconds <= 0:
        return None
    return LogCatchUp(settings, projection.group, projection.topics, settings.train_catchup_seconds)


class LogCatchUp:
    """The ends of a consumer group's topics, and waiting for the group to commit up to them."""

    def __init__(self, settings: Settings, group: str, topics: Iterable[str], timeout_seconds: float,
                 poll_seconds: float = 0.5) -> None:
        self.settings = settings
        self.group = group
        self.topics = tuple(topics)
        self.timeout_seconds = timeout_seconds
        self.poll_seconds = poll_seconds

    def ends(self) -> Ends:
        """Where each partition of the topics ends now (empty partitions left out)."""
        from kafka import KafkaConsumer, TopicPartition

        from services.common.bus import kafka_config

        consumer = KafkaConsumer(**kafka_config(self.settings), group_id=None, enable_auto_commit=False,
                                 client_id=f"{self.group}-catchup", bootstrap_timeout_ms=5000)
        try:
            partitions = [TopicPartition(t, p) for t in self.topics
                          for p in sorted(consumer.partitions_for_topic(t) or ())]
            listed = consumer.end_offsets(partitions) if partitions else {}
            used = [tp for tp in partitions if listed.get(tp)]
            if not used:
                return {}
            consumer.assign(used)
            for tp in used:  # one fetch from the last listed record reports the high watermark
                consumer.seek(tp, max(0, listed[tp] - 1))
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline and any(consumer.highwater(tp) is None for tp in used):
                consumer.poll(timeout_ms=200, max_records=1)
            return {f"{tp.topic}:{tp.partition}": max(listed[tp], consumer.highwater(tp) or 0) for tp in used}
        finally:
            consumer.close(autocommit=False)

    def committed(self) -> Ends:
        """The group's committed offsets ("topic:partition" -> offset)."""
        from kafka import KafkaAdminClient

        from services.common.bus import kafka_config

        admin = KafkaAdminClient(**kafka_config(self.settings), client_id=f"{self.group}-catchup",
                                 bootstrap_timeout_ms=5000)
        try:
            offsets: dict[Any, Any] = admin.list_group_offsets(self.group).get(self.group, {})
        finally:
            admin.close()
        return {f"{tp.topic}:{tp.partition}": int(o.offset) for tp, o in offsets.items()
                if o is not None and o.offset is not None and o.offset >= 0}

    def wait(self, ends: Mapping[str, int], progress: Callable[[float, str], None],
             stop: threading.Event | None = None) -> dict[str, float]:
        """Wait until the group committed up to ``ends`` (or the bound runs out); the job's metrics."""
        started = time.monotonic()
        first = left = behind(ends, self.committed())
        while left > 0 and time.monotonic() - started < self.timeout_seconds:
            if stop is not None and stop.is_set():
                break
            progress(0.0, f"waiting for the {self.group} consumer to apply {left} of the {sum(ends.values())} "
                          f"events accepted before this job was requested")
            time.sleep(self.poll_seconds)
            left = behind(ends, self.committed())
        if left > 0:
            log.warning("training_catchup_timed_out", group=self.group, events_left=left,
                        seconds=self.timeout_seconds)
        return catchup_metrics(ends, first, left, time.monotonic() - started)
