"""Benchmark of the support hand-off's delivery latency (issue #20) on this machine (writes results/handoff[-quick].json).

The chatbot service in its own process (the real broker and Redis) and the gateway, driven through REST as a
shop would (benchmarks/stack.py): a signed-in shopper (a shopper token) asks for a person, an agent (a key
with the support role) claims the hand-off, then

1. **shopper -> staff**: N shopper messages through ``POST /v1/chat`` (relayed, not answered by the bot); for
   each, the time from sending it until it is in ``GET /v1/support/handoffs/{id}`` (polled every 20 ms);
2. **agent -> shopper**: N replies through ``POST /v1/support/handoffs/{id}/messages``; for each, the time
   from sending it until it is in the shopper's ``GET /v1/chat/conversations/{session_id}/messages``
   (polled every 20 ms, with ``after``);
3. **baseline**: the same shopper's plain bot answers (``POST /v1/chat`` round trip, no hand-off), what a
   shopper waits for the assistant, so the relay's figures read against it.

One message at a time, each waited for before the next; 2 warm-up messages each way are not counted. The
20 ms polling adds up to 20 ms (10 ms on average) to what it measures. Goal (issue #20: a person sees a
shopper's message, and the shopper the person's reply, within about a second): p99 under 1 s both ways.

    python -m benchmarks.bench_handoff [--quick]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from pydantic import SecretStr

from benchmarks.machine import describe
from benchmarks.sections import print_table

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
# The intent model's training embeds the data set once (~2.5 minutes on two cores); with the vectors kept
# here (bench_chatbot's cache) the service is up in about 30 s.
CACHE = ROOT / ".data" / "cache"
REDIS_DB = 7  # bench_forecasting_daily uses 8, bench_alerts and bench_vision_rest 9, bench_recommender_service 10
KEY = "bench-handoff-agent-key-0123456789"  # ingest + admin + support: the agent is this key
TOKEN_SECRET = "bench-handoff-shopper-token-secret-0123456789abcdef"
SHOPPER = "bench-shopper-1"
POLL_SECONDS = 0.02
WARM_UP = 2
TIMEOUT = 30.0
GOAL_P99_S = 1.0
BOT_QUESTIONS = ("What is your return policy?", "How long does shipping take?", "Can I pay with a credit card?",
                 "Do you have running shoes?", "运费怎么算？", "我想退货")


def percentiles(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000
    return {"n": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1), "p99_ms": round(float(np.percentile(ms, 99)), 1),
            "max_ms": round(float(ms.max()), 1), "mean_ms": round(float(ms.mean()), 1)}


def poll(seen: Callable[[], bool], what: str) -> tuple[float, int]:
    """Call ``seen`` every POLL_SECONDS until it is true: (the monotonic time it was, polls made)."""
    deadline = time.perf_counter() + TIMEOUT
    polls = 0
    while True:
        polls += 1
        if seen():
            return time.perf_counter(), polls
        if time.perf_counter() > deadline:
            raise SystemExit(f"{what} not visible after {TIMEOUT:g} s")
        time.sleep(POLL_SECONDS)


def ok(reply, status: int = 200) -> dict:
    if reply.status_code != status:
        raise SystemExit(f"{reply.request.method} {reply.request.path} answered {reply.status_code}: {reply.json}")
    return reply.json


def run(quick: bool) -> dict:
    from benchmarks.stack import ServiceStack
    from gateway.identity import ShopperTokens

    count = 20 if quick else 200
    CACHE.mkdir(parents=True, exist_ok=True)
    unlimited = "1000000000"  # the limiter still counts each request in Redis, it never refuses one
    stack = ServiceStack("chatbot", REDIS_DB, KEY, serving_timeout=900, SHOPAI_EMBEDDING_CACHE_DIR=str(CACHE),
                         gateway={"gateway_shopper_token_secrets": SecretStr(TOKEN_SECRET),
                                  "gateway_rate_limit_per_minute": int(unlimited),
                                  "gateway_key_rate_limit_per_minute": int(unlimited)})
    try:
        staff = stack.client  # sends the stack's key (support): the agent
        storefront = stack.app.test_client()  # no key: the shopper's own requests, with their token
        token = ShopperTokens(stack.settings).mint(SHOPPER, ttl_seconds=3 * 3600).token
        shopper = {"Authorization": f"Bearer {token}"}

        def chat(message: str, session_id: str = "") -> dict:
            return ok(storefront.post("/v1/chat", json={"message": message, "session_id": session_id},
                                      headers=shopper))

        # 3. baseline: the bot's answers, before any hand-off
        bot: list[float] = []
        session = ""
        for i in range(WARM_UP + count):
            started = time.perf_counter()
            turn = chat(BOT_QUESTIONS[i % len(BOT_QUESTIONS)], session)
            took = time.perf_counter() - started
            if turn["handoff"] or turn["relayed_to_agent"] or not turn["reply"]:
                raise SystemExit(f"the baseline question {BOT_QUESTIONS[i % len(BOT_QUESTIONS)]!r} was handed over")
            session = turn["session_id"] if (i + 1) % 10 else ""  # a fresh conversation every 10 turns
            if i >= WARM_UP:
                bot.append(took)

        # the hand-off: asked for, in the inbox, claimed
        asked = chat("I need to talk to a human agent please")
        if not asked["handoff"]:
            raise SystemExit(f"asking for a person did not hand over: {asked}")
        session, handoff_id = asked["session_id"], asked["handoff_id"]
        route = f"/v1/support/handoffs/{handoff_id}"
        poll(lambda: staff.get(route).status_code == 200, "the hand-off")
        ok(staff.post(f"{route}/claim"))

        # 1. shopper -> staff
        relay_post: list[float] = []
        to_staff: list[float] = []
        staff_polls: list[int] = []
        for i in range(WARM_UP + count):
            text = f"shopper message {i}: is the parcel coming this week?"
            started = time.perf_counter()
            turn = chat(text, session)
            posted = time.perf_counter()
            if not turn["relayed_to_agent"]:
                raise SystemExit(f"message {i} was not relayed: {turn}")
            seen_at, polls = poll(lambda text=text: any(m["text"] == text for m in ok(staff.get(route))["messages"]), f"shopper message {i}")
            if i >= WARM_UP:
                relay_post.append(posted - started)
                to_staff.append(seen_at - started)
                staff_polls.append(polls)

        # 2. agent -> shopper
        feed = f"/v1/chat/conversations/{session}/messages"
        after = ok(storefront.get(feed, headers=shopper))["next"]
        reply_post: list[float] = []
        to_shopper: list[float] = []
        shopper_polls: list[int] = []
        for i in range(WARM_UP + count):
            text = f"agent reply {i}: let me look at that for you."
            state = {"after": after}

            def arrived(text: str = text, state: dict = state) -> bool:
                got = ok(storefront.get(f"{feed}?after={state['after']}", headers=shopper))
                state["after"] = got["next"]
                return any(e["role"] == "agent" and e["text"] == text for e in got["entries"])

            started = time.perf_counter()
            ok(staff.post(f"{route}/messages", json={"text": text}), 201)
            posted = time.perf_counter()
            seen_at, polls = poll(arrived, f"agent reply {i}")
            after = state["after"]
            if i >= WARM_UP:
                reply_post.append(posted - started)
                to_shopper.append(seen_at - started)
                shopper_polls.append(polls)
        ok(staff.post(f"{route}/close"))
    finally:
        stack.stop()

    rows = [
        {"path": "shopper message -> in the support hand-off (GET /v1/support/handoffs/{id})",
         **percentiles(to_staff), "polls_mean": round(float(np.mean(staff_polls)), 1)},
        {"path": "agent reply -> in the shopper's feed (GET /v1/chat/conversations/{session_id}/messages)",
         **percentiles(to_shopper), "polls_mean": round(float(np.mean(shopper_polls)), 1)},
        {"path": "baseline: the bot's answer (POST /v1/chat round trip, no hand-off)", **percentiles(bot)},
        {"path": "the relayed POST /v1/chat alone (answered before it is delivered)", **percentiles(relay_post)},
        {"path": "the agent's POST /v1/support/handoffs/{id}/messages alone (waits until applied)",
         **percentiles(reply_post)},
    ]
    met = rows[0]["p99_ms"] < GOAL_P99_S * 1000 and rows[1]["p99_ms"] < GOAL_P99_S * 1000
    return {
        "setup": f"chatbot service (own process), real broker and Redis, the gateway in process (Flask test client); "
                 f"one signed-in shopper (shopper token), one agent (support key); {count} messages each way, "
                 f"one at a time, {WARM_UP} warm-up messages each way not counted; visibility polled every "
                 f"{POLL_SECONDS * 1000:g} ms from when the message is sent",
        "latency": rows,
        "goal": f"a person sees the shopper's message, and the shopper the person's reply, within "
                f"{GOAL_P99_S:g} s at p99",
        "goal_met": met,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20 messages each way")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = run(args.quick)
    result.update(machine=describe(), quick=args.quick, seconds=round(time.perf_counter() - started),
                  finished_at=datetime.now(UTC).isoformat(timespec="seconds"))
    print_table("hand-off delivery latency", result["latency"])
    print(f"goal: {result['goal']}: {'met' if result['goal_met'] else 'NOT met'}")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"handoff{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    main()
