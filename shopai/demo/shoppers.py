"""Live shoppers for the running demo shop: they ask the gateway for recommendations and react to them.

Each session picks a demo shopper, asks ``GET /v1/users/{id}/recommendations`` (with the shopper's own token, as
the storefront does) and looks down the list: the item at rank r (0-based) is looked at with probability
1/(r+1) (shoppers look at the top first), clicked with the simulation's own P(click | view) = 0.12 + 0.35 m,
where m is the shopper's hidden match with the product (``truth.hidden_match``), then added to the cart and
bought with the simulation's P(cart | click) and P(purchase | cart) (shopai/demo/model.py). The clicks,
add-to-carts and purchases go to ``POST /v1/events`` with the answer's ``recommendation_id``. So a strategy that
finds what shoppers like gets more clicks, and ``GET /v1/analytics/recommendations`` and an experiment's report
show it live.

``react`` is the pure part; ``LiveShoppers`` runs sessions against any ``Shop`` (``RestShop``: a gateway over
HTTP; the benchmark passes its in-process client). ``shopai demo`` runs them after seeding, at
``SHOPAI_DEMO_LIVE_SESSIONS_PER_SECOND`` (0: off).
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from shopai.demo.model import BUY_P, CART_P, CLICK_P
from shopai.demo.truth import hidden_match

K = 10


def react(matches: Sequence[float], rng: random.Random) -> list[tuple[int, str]]:
    """What one shopper does with one answer: ``(rank, action)`` pairs, action click, add_to_cart or purchase,
    given the shopper's hidden match with each item shown (best first)."""
    out: list[tuple[int, str]] = []
    for rank, m in enumerate(matches):
        if rng.random() >= 1.0 / (rank + 1):
            continue  # not looked at
        if rng.random() >= CLICK_P[0] + CLICK_P[1] * m:
            continue
        out.append((rank, "click"))
        if rng.random() < min(0.95, CART_P[0] + CART_P[1] * m):
            out.append((rank, "add_to_cart"))
            if rng.random() < min(0.95, BUY_P[0] + BUY_P[1] * m):
                out.append((rank, "purchase"))
    return out


class Shop(Protocol):
    def recommendations(self, user: str, k: int) -> dict[str, Any]: ...

    def send(self, events: list[dict[str, Any]]) -> None: ...


@dataclass
class Tally:
    sessions: int = 0
    clicked: int = 0
    failed: int = 0
    by_strategy: dict[str, list[int]] = field(default_factory=dict)  # strategy -> [answers, clicked]


class LiveShoppers:
    def __init__(self, shop: Shop, truth: Mapping[str, Any], seed: int = 1) -> None:
        self.shop = shop
        self.truth = truth
        self.users = sorted(truth["users"])
        self.rng = random.Random(seed)
        self.tally = Tally()

    def session(self, user: str | None = None) -> dict[str, Any]:
        """One shopper's visit; returns the answer they got."""
        user = user or self.rng.choice(self.users)
        answer = self.shop.recommendations(user, K)
        pids = [item["product_id"] for item in answer["items"]]
        known = [p for p in pids if p in self.truth["products"]]
        matches = dict(zip(known, hidden_match(self.truth, [user], known)[0], strict=True)) if known else {}
        actions = react([float(matches.get(p, 0.0)) for p in pids], self.rng)
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        events = [{"event_id": str(uuid.uuid4()), "type": f"interaction.{action}", "occurred_at": now,
                   "source": "demo-shoppers",
                   "payload": {"user_id": user, "product_id": pids[rank],
                               "recommendation_id": answer["recommendation_id"],
                               **({"quantity": 1} if action in ("add_to_cart", "purchase") else {})}}
                  for rank, action in actions]
        if events:
            self.shop.send(events)
        clicked = any(action == "click" for _, action in actions)
        self.tally.sessions += 1
        self.tally.clicked += clicked
        row = self.tally.by_strategy.setdefault(answer.get("strategy", ""), [0, 0])
        row[0] += 1
        row[1] += clicked
        return answer

    def run(self, stop: threading.Event, per_second: float) -> None:
        """Sessions at ``per_second`` until ``stop``; a failed session (the gateway restarting) is counted and
        the next one tried a moment later."""
        interval = 1.0 / per_second
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.session()
            except Exception as exc:  # noqa: BLE001 - a live demo keeps going through a service's restart
                self.tally.failed += 1
                if self.tally.failed in (1, 10) or self.tally.failed % 100 == 0:
                    print(f"demo shoppers: a session failed ({exc}); {self.tally.failed} so far", flush=True)
            stop.wait(max(0.0, interval - (time.monotonic() - started)))


class RestShop:
    """The gateway over HTTP: each shopper with a token minted by a ``sessions`` key, events posted with an
    ``ingest`` key."""

    def __init__(self, base_url: str, sessions_key: str, ingest_key: str, timeout: float = 10.0) -> None:
        self.base = base_url.rstrip("/")
        self.sessions_key = sessions_key
        self.ingest_key = ingest_key
        self.timeout = timeout
        self._tokens: dict[str, tuple[str, float]] = {}

    def _call(self, method: str, path: str, headers: dict[str, str], body: Any = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={**headers, **({"Content-Type": "application/json"} if data else {})})
        with urllib.request.urlopen(request, timeout=self.timeout) as reply:
            return json.loads(reply.read() or b"{}")

    def _token(self, user: str) -> str:
        token, expires = self._tokens.get(user, ("", 0.0))
        if time.time() > expires - 60:
            minted = self._call("POST", "/v1/auth/shopper-tokens", {"X-API-Key": self.sessions_key},
                                {"user_id": user, "ttl_seconds": 3600})
            token, expires = minted["token"], float(minted["expires_at"])
            self._tokens[user] = (token, expires)
        return token

    def recommendations(self, user: str, k: int) -> dict[str, Any]:
        return self._call("GET", f"/v1/users/{user}/recommendations?k={k}",
                          {"Authorization": f"Bearer {self._token(user)}"})

    def send(self, events: list[dict[str, Any]]) -> None:
        self._call("POST", "/v1/events", {"X-API-Key": self.ingest_key}, {"events": events})


def keys_with_roles(text: str) -> dict[str, str]:
    """role -> a key holding it (``admin`` holds every role), from ``key:role[+role]`` lines."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip().startswith("#"):
            continue
        for entry in line.split(","):
            secret, sep, roles = entry.strip().rpartition(":")
            if sep and secret:
                for role in roles.split("+"):
                    found.setdefault(role.strip().lower(), secret.strip())
    return found


def start_live_shoppers(settings: Any, base_url: str, truth_path: Path, stop: threading.Event) -> threading.Thread | None:
    """``shopai demo``'s live traffic, in a thread; None (and why, printed) when it cannot run."""
    rate = float(settings.demo_live_sessions_per_second)
    if rate <= 0:
        return None
    text = ""
    if settings.gateway_api_keys is not None:
        text += settings.gateway_api_keys.get_secret_value() + "\n"
    if settings.gateway_api_keys_file is not None and Path(settings.gateway_api_keys_file).is_file():
        text += Path(settings.gateway_api_keys_file).read_text(encoding="utf-8")
    keys = keys_with_roles(text)
    sessions, ingest = keys.get("sessions") or keys.get("admin"), keys.get("ingest") or keys.get("admin")
    if not sessions or not ingest or not truth_path.is_file():
        print("demo shoppers: not started (they need a `sessions` and an `ingest` API key, and the demo's "
              "truth.json)", flush=True)
        return None
    truth = json.loads(truth_path.read_text(encoding="utf-8"))
    shoppers = LiveShoppers(RestShop(base_url, sessions, ingest), truth, seed=settings.demo_seed)
    thread = threading.Thread(target=shoppers.run, args=(stop, rate), name="demo-shoppers", daemon=True)
    thread.start()
    print(f"demo shoppers: {rate:g} sessions a second ask for recommendations and react to them "
          f"(GET /v1/analytics/recommendations)", flush=True)
    return thread

