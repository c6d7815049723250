"""The demo shop's events: deterministic ids, a clock that never reads the wall clock, and the per-stream
buffers the simulation appends to. Envelopes are ``services.common.events.envelope``'s, like every record
on every topic."""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

from services.common.events import envelope

SOURCE = "demo-shop"
# Fixed namespace of the demo shop's event ids (uuid5(NAMESPACE, f"{seed}:{type}:{counter}")).
NAMESPACE = uuid.UUID("8a4b2c1e-5d3f-5e7a-9b0c-1d2e3f4a5b6c")
_NS_BYTES = NAMESPACE.bytes
EPOCH = date(1970, 1, 1)
_EPOCH_TIME = datetime(1970, 1, 1, tzinfo=UTC)


def event_id(name: str) -> str:
    """Same value as ``str(uuid.uuid5(NAMESPACE, name))``, about 3x faster."""
    h = bytearray(hashlib.sha1(_NS_BYTES + name.encode("utf-8")).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50
    h[8] = (h[8] & 0x3F) | 0x80
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


class Clock:
    """Integer seconds since the Unix epoch -> dates, without the wall clock."""

    def __init__(self) -> None:
        self._days: dict[int, str] = {}

    def day_string(self, epoch_day: int) -> str:
        s = self._days.get(epoch_day)
        if s is None:
            s = self._days[epoch_day] = (EPOCH + timedelta(days=epoch_day)).isoformat()
        return s

    def date_of(self, ts: int) -> str:
        return self.day_string(ts // 86400)


class Emitter:
    """Builds envelopes with deterministic ids and keeps (ts, seq, event) per stream."""

    def __init__(self, seed: int, end_ts: int) -> None:
        self.seed = seed
        self.end_ts = end_ts
        self.counters: dict[str, int] = defaultdict(int)
        self.seq = 0

    def make(self, stream: list, kind: str, ts: int, payload: dict) -> None:
        if ts > self.end_ts:
            return  # happens after the end of the history: not a fact yet
        n = self.counters[kind]
        self.counters[kind] = n + 1
        self.seq += 1
        occurred_at = _EPOCH_TIME + timedelta(seconds=ts)
        eid = event_id(f"{self.seed}:{kind}:{n}")
        stream.append((ts, self.seq, envelope(kind, payload, SOURCE, occurred_at=occurred_at, event_id=eid)))


def finish(stream: list) -> list[dict]:
    """The events of a stream in time order (ties in the order they were made)."""
    stream.sort(key=lambda x: (x[0], x[1]))
    return [e for _, _, e in stream]
