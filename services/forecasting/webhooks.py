"""The webhook worker: delivers each queued alert (alerts.py queues one delivery per alert and webhook) to
its URL, signed, with retries; never in the consumer's way.

The queue is a schedule in Redis per webhook (``alerts:deliveries:<url hash>``, a sorted set of delivery
ids by when each is due, and a hash per delivery), not retries in memory (tenacity's, say): a delivery
waiting half an hour for its receiver survives a restart of the service, holds no thread while it waits,
and any replica may take it. Each webhook has its own thread, so a receiver that hangs until the timeout
delays only its own deliveries. It claims what is due by moving it a lease ahead in one script (a replica
that dies mid-attempt leaves it to be claimed again when the lease ends), posts a few at a time, each with
a timeout, then:

- 2xx: delivered, removed;
- no answer (refused connection, timeout), 408, 425, 429 or 5xx: tried again after ``retry_delay``
  (exponential back-off with jitter, a receiver's ``Retry-After`` honoured up to the cap);
- any other answer, or the last attempt failed: a dead letter on ``alerts.v1.dlq`` (``shopai dlq list``)
  with the reason, the webhook (its number and host: a URL may hold a token) and the original alert.
  The alert's exactly-once marker is forgotten then, so a replay of the letter (``shopai dlq replay``)
  queues the alert again for the webhooks that did not get it, and only those.

Receivers get each alert at least once: a receiver that stores an alert but answers too late gets it
again, with the same ``X-ShopAI-Alert-Id`` to recognise it by.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from types import SimpleNamespace
from urllib.parse import urlsplit

import redis

from services.common import metrics, topics
from services.common.bus import dead_letter_value
from services.common.logging import get_logger
from services.common.projection import forget
from services.common.settings import Settings
from services.forecasting.alerts import GROUP as ALERTS_GROUP
from services.forecasting.alerts import AlertKeys as K
from services.forecasting.alerts import pending
from services.forecasting.core.alerts import DELIVERED, RETRY, delivery_headers, next_step, retry_delay

log = get_logger(__name__)

WORKER_GROUP = "forecasting-alert-webhooks"  # names the worker in its dead letters
LEASE_MARGIN_SECONDS = 30.0
CLAIM_BATCH = 4  # per webhook and round, posted in parallel: a round lasts at most one timeout
POLL_SECONDS = 0.25

# Move the due deliveries (score <= now) a lease ahead and return them: claimed, atomically.
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return due
"""

Poster = Callable[[str, bytes, Mapping[str, str], float], tuple[int | None, str, float | None]]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a 3xx is the receiver's answer, not a place to go
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def http_post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> tuple[int | None, str, float | None]:
    """POST ``body``: (status or None when nothing answered, what went wrong, Retry-After seconds)."""
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(65536)
            return response.status, "", None
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, f"HTTP {exc.code}", _retry_after(exc.headers.get("Retry-After"))
    except urllib.error.URLError as exc:
        return None, f"no answer: {exc.reason}", None
    except (OSError, http.client.HTTPException) as exc:
        return None, f"no answer: {type(exc).__name__}: {exc}", None


def webhook_label(index: int, url: str) -> str:
    """How logs, metrics and dead letters name a webhook: its number in SHOPAI_ALERT_WEBHOOKS and its host
    (never the whole URL, which may carry a token)."""
    return f"{index}:{urlsplit(url).hostname or '?'}"


class WebhookWorker:
    def __init__(self, client: redis.Redis, settings: Settings,
                 dead_letter: Callable[[str, str, dict], None], post: Poster = http_post,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None) -> None:
        self.redis = client
        self.urls = settings.alert_webhook_urls
        self.labels = {url: webhook_label(i, url) for i, url in enumerate(self.urls, start=1)}
        secret = settings.alert_webhook_secret
        self.secret = secret.get_secret_value().encode() if secret and secret.get_secret_value() else None
        self.timeout = settings.alert_webhook_timeout_seconds
        self.max_attempts = settings.alert_webhook_attempts
        self.base = settings.alert_webhook_retry_base_seconds
        self.cap = settings.alert_webhook_retry_max_seconds
        self.dead_letter = dead_letter
        self.post = post
        self.clock = clock
        self.rng = rng or random.Random()
        self.lease = self.timeout + LEASE_MARGIN_SECONDS
        self._claim = client.register_script(_CLAIM)
        self._pools = {url: ThreadPoolExecutor(max_workers=CLAIM_BATCH, thread_name_prefix=f"alert-webhook-{i}")
                       for i, url in enumerate(self.urls, start=1)}

    def run(self, stop: threading.Event) -> None:
        """Deliver until ``stop`` is set, one thread per webhook; Redis or the broker being away only delays
        deliveries."""
        if not self.urls:
            log.info("alert_webhooks_off")
        try:
            self.drop_unconfigured()
        except redis.RedisError as exc:
            log.warning("alert_webhooks_redis_error", error=str(exc))
        threads = [threading.Thread(target=self._serve, args=(url, stop), name=f"alert-webhook-{i}", daemon=True)
                   for i, url in enumerate(self.urls, start=1)]
        for thread in threads:
            thread.start()
        while not stop.is_set():
            try:
                metrics.ALERT_WEBHOOK_PENDING.set(pending(self.redis, self.urls))
            except redis.RedisError:
                pass
            stop.wait(5.0)
        for thread in threads:
            thread.join()
        for pool in self._pools.values():
            pool.shutdown(wait=True)

    def drop_unconfigured(self) -> int:
        """Forget the deliveries queued for webhooks no longer in the settings; how many."""
        wanted = {K.queue(url) for url in self.urls}
        dropped = 0
        for queue in self.redis.scan_iter(match=K.queue("*").rsplit(":", 1)[0] + ":*", count=100):
            if queue in wanted:
                continue
            dids = self.redis.zrange(queue, 0, -1)
            pipe = self.redis.pipeline()
            for did in dids:
                pipe.delete(K.delivery(did))
            pipe.delete(queue)
            pipe.execute()
            dropped += len(dids)
        if dropped:
            log.info("alert_webhook_deliveries_dropped", deliveries=dropped, reason="webhook no longer configured")
        return dropped

    def _serve(self, url: str, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                claimed = self.tick_webhook(url)
            except (redis.RedisError, OSError) as exc:
                log.warning("alert_webhooks_redis_error", webhook=self.labels[url], error=str(exc))
                stop.wait(1.0)
                continue
            if not claimed:
                stop.wait(POLL_SECONDS)

    def tick_webhook(self, url: str) -> int:
        """Attempt the webhook's deliveries due now (a few, in parallel); how many were claimed."""
        now = self.clock()
        due = self._claim(keys=[K.queue(url)], args=[now, now + self.lease, CLAIM_BATCH])
        list(self._pools[url].map(lambda did: self._attempt_safely(url, did), due))
        return len(due)

    def tick(self) -> int:
        """One round for every webhook (the tests' step); how many deliveries were claimed."""
        return sum(self.tick_webhook(url) for url in self.urls)

    def _attempt_safely(self, queue_url: str, did: str) -> None:
        try:
            self.attempt(queue_url, did)
        except Exception:  # the lease brings it back; one bad delivery must not stop the others
            log.exception("alert_webhook_attempt_failed", delivery=did)

    def attempt(self, queue_url: str, did: str) -> str:
        """One attempt of delivery ``did`` (claimed from ``queue_url``'s schedule): its outcome (delivered,
        retry, dead_lettered, dropped)."""
        fields = self.redis.hgetall(K.delivery(did))
        url = fields.get("url", "")
        if not fields or url not in self.labels:  # gone, or the webhook is no longer configured
            self._forget(queue_url, did)
            return "dropped"
        label = self.labels[url]
        if fields.get("dead"):  # the last attempt failed but its dead letter was not sent yet
            return self._to_dead_letters(did, fields, label, fields["dead"])
        attempt = int(fields.get("attempts") or 0) + 1
        body = fields["body"].encode()
        headers = delivery_headers(self.secret, int(self.clock()), body, fields["alert_id"], attempt)
        status, error, retry_after = self.post(url, body, headers, self.timeout)
        step = next_step(status, attempt, self.max_attempts)
        if step == DELIVERED:
            self._forget(url, did)
            metrics.ALERT_WEBHOOK_DELIVERIES.labels(label, "delivered").inc()
            log.info("alert_webhook_delivered", alert_id=fields["alert_id"], webhook=label, attempt=attempt)
            return "delivered"
        error = error or f"HTTP {status}"
        if step == RETRY:
            delay = retry_delay(attempt, self.base, self.cap, self.rng, retry_after)
            pipe = self.redis.pipeline()
            pipe.hset(K.delivery(did), mapping={"attempts": attempt, "last_error": error})
            pipe.zadd(K.queue(url), {did: self.clock() + delay})
            pipe.execute()
            metrics.ALERT_WEBHOOK_DELIVERIES.labels(label, "retried").inc()
            log.info("alert_webhook_retry", alert_id=fields["alert_id"], webhook=label, attempt=attempt,
                     error=error, retry_in=round(delay, 2))
            return "retry"
        if status is not None and status < 500 and status not in (408, 425, 429):
            reason = f"webhook {label} refused the alert: {error}"
        else:
            reason = f"webhook {label} did not take the alert in {attempt} attempts: {error}"
        self.redis.hset(K.delivery(did), mapping={"attempts": attempt, "last_error": error, "dead": reason})
        return self._to_dead_letters(did, fields, label, reason)

    def _to_dead_letters(self, did: str, fields: dict[str, str], label: str, reason: str) -> str:
        record = SimpleNamespace(topic=topics.ALERTS, partition=int(fields.get("partition") or -1),
                                 offset=int(fields.get("offset") or -1), key=fields.get("key", "").encode(),
                                 value=fields.get("event", "").encode())
        letter = json.loads(dead_letter_value(record, WORKER_GROUP, reason, "WebhookDeliveryFailed"))
        self.dead_letter(topics.dlq(topics.ALERTS), fields.get("key", ""), letter)  # raises: the lease retries
        alert_id = fields["alert_id"]
        pipe = self.redis.pipeline()
        pipe.sadd(K.failed(alert_id), fields["url"])
        forget(pipe, ALERTS_GROUP, alert_id)  # a replay of the letter is applied again
        pipe.zrem(K.queue(fields["url"]), did)
        pipe.delete(K.delivery(did))
        pipe.execute()
        metrics.ALERT_WEBHOOK_DELIVERIES.labels(label, "dead_lettered").inc()
        log.warning("alert_webhook_dead_lettered", alert_id=alert_id, webhook=label, reason=reason)
        return "dead_lettered"

    def _forget(self, url: str, did: str) -> None:
        pipe = self.redis.pipeline()
        pipe.zrem(K.queue(url), did)
        pipe.delete(K.delivery(did))
        pipe.execute()
