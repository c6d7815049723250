"""The server interceptor: metrics by method and code, and calls past their deadline refused."""

from __future__ import annotations

import grpc
import pytest
import redis

from services.common import metrics
from services.common.grpc_server import MetricsInterceptor


class Aborted(Exception):
    pass


class FakeContext:
    def __init__(self, remaining: float) -> None:
        self.remaining = remaining
        self._code = None

    def time_remaining(self) -> float:
        return self.remaining

    def code(self):
        return self._code

    def abort(self, code, details):
        self._code = code
        raise Aborted(details)


class Details:
    def __init__(self, method: str) -> None:
        self.method = method


def wrapped(behaviour, method: str = "/shopai.test.v1.Test/Echo"):
    handler = grpc.unary_unary_rpc_method_handler(behaviour)
    return MetricsInterceptor().intercept_service(lambda _details: handler, Details(method)).unary_unary


def count(method: str, code: str) -> float:
    return metrics.GRPC_HANDLED.labels(method, code)._value.get()


def test_successful_calls_are_counted_by_method_and_code():
    before = count("Echo", "OK")
    assert wrapped(lambda request, context: request * 2)(21, FakeContext(5.0)) == 42
    assert count("Echo", "OK") == before + 1


def test_a_call_past_its_deadline_is_refused_without_running():
    ran = []
    before = count("Slow", "DEADLINE_EXCEEDED")
    with pytest.raises(Aborted, match="deadline"):
        wrapped(lambda request, context: ran.append(1), "/x/Slow")(1, FakeContext(0.0))
    assert not ran
    assert count("Slow", "DEADLINE_EXCEEDED") == before + 1


def test_an_aborted_call_is_counted_with_its_code():
    def refuse(request, context):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "k must be between 1 and 100")

    before = count("Refuse", "INVALID_ARGUMENT")
    with pytest.raises(Aborted):
        wrapped(refuse, "/x/Refuse")(1, FakeContext(5.0))
    assert count("Refuse", "INVALID_ARGUMENT") == before + 1


@pytest.mark.parametrize("error", [redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379."),
                                   redis.exceptions.TimeoutError("Timeout reading from socket"),
                                   redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory")])
def test_redis_away_is_unavailable_with_the_reason_not_an_unknown_failure(error):
    """Issue #21's chaos run: a handler that met a restarting Redis failed as UNKNOWN, the gateway's 502 "the
    service failed"; it is UNAVAILABLE (retry shortly, or the gateway's degraded answer)."""
    def reads_redis(request, context):
        raise error

    before = count("Reads", "UNAVAILABLE")
    context = FakeContext(5.0)
    with pytest.raises(Aborted, match="Redis is unreachable"):
        wrapped(reads_redis, "/x/Reads")(1, context)
    assert context.code() is grpc.StatusCode.UNAVAILABLE
    assert count("Reads", "UNAVAILABLE") == before + 1
