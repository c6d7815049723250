"""Forecasts asked for that nothing kept: computed by one background worker, never by the request.

The refresher keeps every target's forecast at the default horizon and level (refresher.py); what it has
not kept yet (just after a start, a retraining or a new day, or a horizon or level of its own) is asked
here. The request waits at most ``wait`` seconds for the worker, which computes one forecast at a time, in
the order asked (so many first requests never fit many models at once, each on a request thread); past the
wait, :class:`ForecastPending` says when to ask again, and the computation goes on: its result is kept, and
the next request reads it. The same pattern as the analytics reports (services/common/precomputed.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.common.logging import get_logger

log = get_logger(__name__)

MAX_ASKED = 1000  # forecasts waiting at once; past it a request is told to come back without queueing


class ForecastPending(Exception):
    """The forecast is being computed; ask again in ``retry_after`` seconds."""

    def __init__(self, target: str, retry_after: float) -> None:
        self.retry_after = max(1, round(retry_after))
        super().__init__(f"the forecast of {target!r} is being computed; ask again in {self.retry_after} s")


@dataclass(eq=False)
class _Asked:
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


Spec = tuple[str, str, int, float]  # kind, target, horizon, level


class OnDemand:
    def __init__(self, compute: Callable[[str, str, int, float], Any],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.compute = compute
        self.clock = clock
        self.took = 1.0  # seconds one forecast takes, smoothed (the Retry-After hint)
        self.computations = 0  # for tests
        self._asked: dict[Spec, _Asked] = {}  # in the order asked
        self._lock = threading.Lock()
        self._wake = threading.Event()

    def get(self, kind: str, target: str, horizon: int, level: float, wait: float) -> Any:
        """``compute(kind, target, horizon, level)`` from the worker, waiting at most ``wait`` seconds; its
        error is raised here. :class:`ForecastPending` when it is not done by then."""
        spec = (kind, target, horizon, round(level, 4))
        with self._lock:
            asked = self._asked.get(spec)
            if asked is None:
                if len(self._asked) >= MAX_ASKED:
                    raise ForecastPending(target, len(self._asked) * self.took)
                asked = self._asked[spec] = _Asked()
                self._wake.set()
            ahead = list(self._asked).index(spec)
        if not asked.done.wait(max(0.0, wait)):
            raise ForecastPending(target, (ahead + 1) * self.took)
        if asked.error is not None:
            raise asked.error
        return asked.result

    def run(self, stop: threading.Event) -> None:
        """Compute what was asked, oldest first, until ``stop`` is set (a ServiceRunner worker)."""
        while not stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            while not stop.is_set() and self.step():
                pass

    def step(self) -> bool:
        """Compute the oldest asked forecast; False when nothing is asked."""
        with self._lock:
            spec, asked = next(iter(self._asked.items()), (None, None))
        if spec is None:
            return False
        started = self.clock()
        try:
            asked.result = self.compute(*spec)
        except Exception as exc:  # noqa: BLE001 - raised again to every request that waits for it
            asked.error = exc
        self.took = 0.7 * self.took + 0.3 * max(0.05, self.clock() - started)
        self.computations += 1
        with self._lock:
            del self._asked[spec]
        asked.done.set()
        return True
