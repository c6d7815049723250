"""services/common/precomputed.py: reports answered from what the background worker kept, never computed by
the request (issue #21, item 3)."""

from __future__ import annotations

import threading

import pytest

from services.common.precomputed import NotReady, Precomputed


class Data:
    """A version counter and a report whose computation can be held up."""

    def __init__(self) -> None:
        self.version = 0
        self.calls: list[tuple] = []
        self.release = threading.Event()
        self.release.set()

    def report(self, params: tuple) -> str:
        self.release.wait(10)
        self.calls.append(params)
        if params == ("bad",):
            raise ValueError("no such range")
        return f"{params}@v{self.version}"


def make(data: Data, **options) -> tuple[Precomputed, list[float]]:
    now = [0.0]
    pre = Precomputed(lambda: data.version, clock=lambda: now[0], wall=lambda: 1_000.0 + now[0], **options)
    pre.register("r", data.report, lambda: [("default",)])
    return pre, now


def test_defaults_are_ready_before_anyone_asks() -> None:
    data = Data()
    pre, _ = make(data)
    assert pre.round() == 1
    answer = pre.get("r", ("default",), wait=0)
    assert answer.value == "('default',)@v0" and not answer.stale and answer.computed_at == 1_000.0
    assert data.calls == [("default",)]


def test_answers_come_from_the_kept_value_and_are_refreshed_after_new_events_at_most_every_interval() -> None:
    data = Data()
    pre, now = make(data, refresh_seconds=10)
    pre.round()
    data.version = 1
    answer = pre.get("r", ("default",), wait=0)
    assert answer.value.endswith("@v0") and answer.stale  # the request did not compute
    now[0] = 5
    assert pre.round() == 0  # changed, but computed 5 s ago
    now[0] = 11
    assert pre.round() == 1
    answer = pre.get("r", ("default",), wait=0)
    assert answer.value.endswith("@v1") and not answer.stale
    assert pre.round() == 0  # nothing changed since
    assert len(data.calls) == 2


def test_a_new_parameter_set_waits_for_the_worker_and_then_is_kept() -> None:
    data = Data()
    pre, _ = make(data)
    stop = threading.Event()
    worker = threading.Thread(target=pre.run, args=(stop, 0.05), daemon=True)
    worker.start()
    try:
        assert pre.get("r", ("2024",), wait=5).value == "('2024',)@v0"
        assert pre.get("r", ("2024",), wait=0).value == "('2024',)@v0"
        assert data.calls.count(("2024",)) == 1
    finally:
        stop.set()
        worker.join(5)


def test_not_ready_within_the_wait_says_when_to_ask_again_and_the_computation_goes_on() -> None:
    data = Data()
    data.release.clear()
    pre, _ = make(data)
    stop = threading.Event()
    worker = threading.Thread(target=pre.run, args=(stop, 0.05), daemon=True)
    worker.start()
    try:
        with pytest.raises(NotReady) as caught:
            pre.get("r", ("slow",), wait=0.1)
        assert caught.value.retry_after >= 1 and "being computed" in str(caught.value)
        data.release.set()
        assert pre.get("r", ("slow",), wait=5).value == "('slow',)@v0"
    finally:
        stop.set()
        worker.join(5)


def test_an_error_is_raised_to_the_caller_and_tried_again_later() -> None:
    data = Data()
    pre, now = make(data, refresh_seconds=10)
    with pytest.raises(NotReady):
        pre.get("r", ("bad",), wait=0)
    pre.round()
    with pytest.raises(ValueError, match="no such range"):
        pre.get("r", ("bad",), wait=0)
    now[0] = 11
    pre.round()
    assert data.calls.count(("bad",)) == 2  # same data, but an error is retried after the interval


def test_entries_nobody_asked_for_are_forgotten_but_defaults_stay() -> None:
    data = Data()
    pre, now = make(data, idle_seconds=60, keep=3)
    for i in range(5):
        with pytest.raises(NotReady):
            pre.get("r", (i,), wait=0)
    pre.round()
    kept = {params for (_, params) in pre._entries}
    assert len(kept) == 3 and ("default",) in kept
    now[0] = 120
    pre.round()
    assert {params for (_, params) in pre._entries} == {("default",)}


def test_unknown_report_is_a_key_error() -> None:
    pre, _ = make(Data())
    with pytest.raises(KeyError):
        pre.get("nope", (), wait=0)
