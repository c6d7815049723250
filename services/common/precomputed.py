"""Answers too slow to compute on request, kept ready by a background worker (issue #21, item 3).

An analytics report over every order (RFM segments, cohorts, a funnel) costs half a second on an idle
machine at the demo shop's size and several seconds under load, past the gateway's deadline. A
:class:`Precomputed` keeps the last answer of each (report, parameters) that was asked for, and one worker
thread recomputes an answer when the data it was computed from has changed (``version()``, e.g. the count
of applied events), at most every ``refresh_seconds``. A request is answered from what is kept, however
old (its age travels with it); only the first request of a new parameter set waits for the worker, and at
most ``wait`` seconds: :class:`NotReady` then says when to ask again, and the computation goes on.

``defaults`` name each report's parameters as the common caller asks them (resolved anew at every round:
"the last 30 days" moves with the date), so they are ready before anyone asks. Parameter sets not asked for
during ``idle_seconds`` are forgotten; at most ``keep`` are kept. One computation runs at a time, so the
reports never take more than one core from serving.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from services.common.logging import get_logger

log = get_logger(__name__)


class NotReady(Exception):
    """The answer is being computed; ask again in ``retry_after`` seconds."""

    def __init__(self, report: str, retry_after: float) -> None:
        super().__init__(f"the {report} report is being computed from the latest data; "
                         f"ask again in {max(1, round(retry_after))} s")
        self.retry_after = max(1, round(retry_after))


@dataclass(frozen=True)
class Answer:
    value: Any
    computed_at: float  # epoch seconds
    stale: bool  # events arrived since; a newer answer is on its way


@dataclass(eq=False)
class _Entry:
    report: str
    params: Hashable
    asked: float  # monotonic time of the last request
    value: Any = None
    error: BaseException | None = None
    version: Hashable = None
    computed: float | None = None  # monotonic time of the last computation
    computed_at: float = 0.0
    took: float = 1.0  # seconds the last computation took (the NotReady hint)
    done: threading.Event = field(default_factory=threading.Event)


class Precomputed:
    def __init__(self, version: Callable[[], Hashable], *, refresh_seconds: float = 10.0, keep: int = 64,
                 idle_seconds: float = 3600.0, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.version = version
        self.refresh_seconds = refresh_seconds
        self.keep = keep
        self.idle_seconds = idle_seconds
        self.clock = clock
        self.wall = wall
        self._reports: dict[str, Callable[[Any], Any]] = {}
        self._defaults: dict[str, Callable[[], Iterable[Hashable]]] = {}
        self._entries: dict[tuple[str, Hashable], _Entry] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.computations = 0  # for tests and metrics

    def register(self, report: str, compute: Callable[[Any], Any],
                 defaults: Callable[[], Iterable[Hashable]] = lambda: ()) -> None:
        """``compute(params)`` makes the answer; ``defaults()`` the parameter sets to keep ready."""
        self._reports[report] = compute
        self._defaults[report] = defaults

    # -- the request side ----------------------------------------------------------------------------
    def get(self, report: str, params: Hashable, wait: float) -> Answer:
        """The kept answer (computed errors are raised again), or, the first time, wait up to ``wait`` s
        for the worker; :class:`NotReady` when it has not finished by then."""
        if report not in self._reports:
            raise KeyError(report)
        with self._lock:
            entry = self._entries.get((report, params))
            if entry is None:
                entry = self._entries[(report, params)] = _Entry(report, params, self.clock())
                self._wake.set()
            entry.asked = self.clock()
        if not entry.done.wait(max(0.0, wait)):
            raise NotReady(report, entry.took)
        with self._lock:
            value, error, version, computed_at = entry.value, entry.error, entry.version, entry.computed_at
        if error is not None:
            raise error
        return Answer(value, computed_at, stale=self._stale(version))

    def _stale(self, version: Hashable) -> bool:
        try:
            return version != self.version()
        except Exception:  # noqa: BLE001 - staleness is a hint; the answer stands
            return False

    # -- the worker ----------------------------------------------------------------------------------
    def run(self, stop: threading.Event, poll_seconds: float = 1.0) -> None:
        """Compute what is missing or out of date until ``stop`` is set (a ServiceRunner worker)."""
        while not stop.is_set():
            self._wake.clear()
            try:
                self.round()
            except Exception:  # e.g. Redis away for a moment: try again next round
                log.exception("precompute_failed")
            self._wake.wait(poll_seconds)

    def round(self) -> int:
        """One pass: add today's defaults, forget idle entries, compute missing ones first, then those
        whose data changed (each at most every ``refresh_seconds``). Returns how many were computed."""
        now = self.clock()
        with self._lock:
            kept = {(report, params) for report, defaults in self._defaults.items() for params in defaults()}
            for report, params in kept:
                self._entries.setdefault((report, params), _Entry(report, params, now)).asked = now
            for key in [k for k, e in self._entries.items() if now - e.asked > self.idle_seconds]:
                del self._entries[key]
            if len(self._entries) > self.keep:  # the least recently asked go first, the defaults last
                by_age = sorted(self._entries.items(), key=lambda kv: (kv[0] in kept, kv[1].asked))
                for key, _ in by_age[:len(self._entries) - self.keep]:
                    del self._entries[key]
            entries = list(self._entries.values())
        version = self.version()
        missing = [e for e in entries if e.computed is None]
        changed = [e for e in entries if e.computed is not None and (e.version != version or e.error is not None)
                   and now - e.computed >= self.refresh_seconds]
        for entry in missing:
            self._compute(entry, version)
        n = len(missing)
        for entry in sorted(changed, key=lambda e: e.asked, reverse=True):  # the latest asked first
            if any(e.computed is None for e in self._snapshot()):
                break  # a new request waits: answer it before refreshing the rest (next round)
            self._compute(entry, version)
            n += 1
        return n

    def _snapshot(self) -> list[_Entry]:
        with self._lock:
            return list(self._entries.values())

    def _compute(self, entry: _Entry, version: Hashable) -> None:
        started = self.clock()
        try:
            value, error = self._reports[entry.report](entry.params), None
        except Exception as exc:  # noqa: BLE001 - kept and raised to the caller, who maps it
            value, error = None, exc
        finished = self.clock()
        self.computations += 1
        with self._lock:
            entry.value, entry.error, entry.version = value, error, version
            entry.computed, entry.computed_at = finished, self.wall()
            entry.took = max(0.5, finished - started)
        entry.done.set()
