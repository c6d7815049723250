"""The staff console at ``/console`` clicked through in a real headless Chromium (Debian's ``chromium`` driven by
Playwright, as tests/e2e/storefront.py), against the running dev stack and its demo shop: signing in with the
admin key `make run` made, then every section with real content, and a hand-off walked from the storefront's
chat to the console and back. A screenshot of each section is kept under ``ARTIFACTS`` (and one of the page
on failure). Called by tests/e2e/test_dev_stack.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Locator, Page, expect, sync_playwright

from services.common import topics
from services.common.bus import EventPublisher
from services.common.events import new_event
from services.common.settings import Settings
from tests.e2e.storefront import CHROMIUM_ARGS, TIMEOUT_MS

# The test artifacts: one screenshot per console section (console-<section>.png) and of the storefront's
# side of the hand-off; SHOPAI_TEST_ARTIFACTS moves them (the storefront's failure shots go to the temp dir).
ARTIFACTS = Path(os.environ.get("SHOPAI_TEST_ARTIFACTS") or Path(tempfile.gettempdir()) / "shopai-e2e")
WAIT_S = 180  # content the stack produces in the background: an alert, a re-dead-lettered event, a trained model
ASK_FOR_A_PERSON = "I need a human agent"  # services/chatbot/data/intents/human_agent.yaml
AGENT_REPLY = "Hello, this is Dana from the support team: I am looking at your order now."
SHOPPER_FOLLOW_UP = "Thank you, it is the blue coat"


def check_console(base_url: str, admin_key: str, *, product_id: str, forecast_product: str,
                  kafka_bootstrap: str) -> list[str]:
    """Drive the console like a staff member. Answers notes on sections that could not be checked: none since
    the experiments routes landed (every section is checked; a failure is an AssertionError naming screenshots)."""
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is not installed (make sysdeps installs it)"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    letter_event = _dead_letter(kafka_bootstrap)
    status, job = _api(base_url, admin_key, "POST", "/v1/admin/train/recommender", {})  # a second version to serve
    assert status == 202, job
    notes: list[str] = []
    expect.set_options(timeout=TIMEOUT_MS)  # every assertion below; the storefront's check names its own
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        console_log: list[str] = []
        pages: dict[str, Page] = {}
        try:
            for name, path in (("shop", "/#assistant"), ("staff", "/console")):
                page = browser.new_context(viewport={"width": 1360, "height": 960}).new_page()
                page.set_default_timeout(TIMEOUT_MS)
                page.on("pageerror", lambda error, name=name: console_log.append(f"{name} page error: {error}"))
                page.on("console", lambda message, name=name: console_log.append(
                    f"{name} console {message.type}: {message.text}"))
                page.goto(f"{base_url}{path}")
                pages[name] = page
            staff = pages["staff"]
            try:
                _sign_in(staff, admin_key)
                _hand_off(pages["shop"], staff)
                payload = _codes(staff, base_url, product_id)
                _alerts(staff, payload)
                _dead_letters(staff, letter_event)
                _models(staff)
                _experiments(staff, base_url, admin_key)
                _analytics(staff, forecast_product)
                problems = [line for line in console_log if " page error" in line or "Content Security Policy" in line]
                assert not problems, f"the pages reported errors: {problems}"
            except Exception as exc:
                stamp = time.strftime("%Y%m%d-%H%M%S")
                shots = []
                for name, page in pages.items():
                    shot = ARTIFACTS / f"console-failure-{name}-{stamp}.png"
                    page.screenshot(path=str(shot), full_page=True)
                    shots.append(str(shot))
                log = "\n".join(console_log[-40:])
                raise AssertionError(f"console check failed: {exc}\nscreenshots: {shots}\nbrowser console:\n{log}") from exc
        finally:
            browser.close()
            expect.set_options(timeout=5_000)  # Playwright's default
    return notes


# ------------------------------------------------------------------ helpers


def _api(base_url: str, key: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict | str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{base_url}{path}", data=data, method=method,
                                     headers={"X-API-Key": key, "Content-Type": "application/json"} if key else
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            text, status = reply.read().decode(), reply.status
    except urllib.error.HTTPError as err:
        text, status = err.read().decode(), err.code
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def _dead_letter(kafka_bootstrap: str) -> dict:
    """An interaction the recommender's consumer cannot read (a rating that is not a number), published
    straight to the broker as a broken shop system would: it is dead-lettered."""
    bad = new_event("interaction.view", {"user_id": "u1", "product_id": "p00001"}).to_dict()
    bad["payload"]["rating"] = "five"
    publisher = EventPublisher(Settings(kafka_bootstrap_servers=kafka_bootstrap), client_id="e2e-console")
    try:
        publisher.wait([(topics.INTERACTIONS, publisher.send(topics.INTERACTIONS, "u1", json.dumps(bad).encode()))])
    finally:
        publisher.close()
    return bad


def _shot(page: Page, section: str) -> None:
    page.evaluate("window.scrollTo(0, 0)")  # the sticky header at the top of the full-page picture
    page.screenshot(path=str(ARTIFACTS / f"console-{section}.png"), full_page=True)


def _tab(page: Page, section: str) -> Locator:
    page.get_by_test_id(f"tab-{section}").click()
    panel = page.get_by_test_id(f"panel-{section}")
    expect(panel).to_be_visible()
    return panel


def _no_error(panel: Locator, testid: str) -> None:
    status = panel.get_by_test_id(testid)
    expect(status).not_to_have_class(re.compile(r"\bloading\b"))
    if "error" in (status.get_attribute("class") or ""):
        raise AssertionError(f"the console shows an error: {status.inner_text()}")


def _until(what: str, refresh: Callable[[], None], done: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    """Refresh a section until ``done``: content the stack produces in the background."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(2)
        refresh()


# ------------------------------------------------------------------ the sections


def _sign_in(page: Page, admin_key: str) -> None:
    expect(page).to_have_title(re.compile("staff console"))
    expect(page.get_by_test_id("console-tabs")).to_be_hidden()
    page.get_by_label("Staff API key").fill("not-a-key-of-this-shop")
    page.get_by_test_id("signin-submit").click()
    expect(page.get_by_test_id("signin-status")).to_contain_text("401")  # the gateway's problem, shown
    page.get_by_label("Staff API key").fill(admin_key)
    page.get_by_test_id("signin-submit").click()
    expect(page.get_by_test_id("console-tabs")).to_be_visible()
    expect(page.get_by_test_id("signed-in-as")).to_contain_text(admin_key[-4:])
    # The key lives in the tab's session storage only.
    assert page.evaluate("() => sessionStorage.getItem('shopai.console.key')") == admin_key
    assert page.evaluate("() => localStorage.length") == 0


def _hand_off(shop: Page, staff: Page) -> None:
    """A shopper asks for a person in the storefront chat; an agent claims, replies and closes in the console;
    the shopper sees the reply without reloading, and the assistant answers again after the close."""
    shop.get_by_test_id("chat-input").fill(ASK_FOR_A_PERSON)
    shop.get_by_test_id("chat-send").click()
    expect(shop.get_by_test_id("chat-handoff")).to_be_visible()
    expect(shop.get_by_test_id("chat-handoff-opened")).to_be_visible()

    panel = _tab(staff, "support")
    session = shop.evaluate("() => sessionStorage.getItem('shopai.chat.session')")  # the storefront's conversation
    item = panel.locator(f'[data-testid="handoff-item"][data-session-id="{session}"]')
    expect(item).to_have_count(1)  # the console's poll brought it in
    expect(item).to_contain_text(ASK_FOR_A_PERSON)
    expect(item.get_by_test_id("handoff-state")).to_have_text("open")
    expect(item).to_contain_text("human_agent")
    item.click()
    detail = panel.get_by_test_id("support-detail")
    expect(detail.get_by_test_id("handoff-transcript")).to_contain_text(ASK_FOR_A_PERSON)
    detail.get_by_test_id("handoff-claim").click()
    expect(detail.get_by_test_id("handoff-detail-state")).to_have_text("claimed")
    expect(shop.get_by_test_id("chat-handoff-claimed")).to_be_visible()

    detail.get_by_label("Reply to the shopper").fill(AGENT_REPLY)
    detail.get_by_test_id("handoff-send").click()
    expect(detail.get_by_test_id("turn-agent")).to_contain_text(AGENT_REPLY)
    expect(shop.get_by_test_id("chat-agent")).to_contain_text(AGENT_REPLY)  # no reload: the chat polls its feed

    shop.get_by_test_id("chat-input").fill(SHOPPER_FOLLOW_UP)
    shop.get_by_test_id("chat-send").click()
    expect(shop.get_by_test_id("chat-relayed")).to_be_visible()  # relayed to the person, no bot answer
    expect(detail.get_by_test_id("turn-user").filter(has_text=SHOPPER_FOLLOW_UP)).to_have_count(1)
    shop.screenshot(path=str(ARTIFACTS / "storefront-handoff.png"), full_page=True)
    _shot(staff, "support")

    detail.get_by_test_id("handoff-close").click()
    expect(detail.get_by_test_id("handoff-closed")).to_be_visible()
    expect(shop.get_by_test_id("chat-handoff-closed")).to_be_visible()
    bot_replies = shop.get_by_test_id("chat-reply").count()
    shop.get_by_test_id("chat-input").fill("where is my order?")
    shop.get_by_test_id("chat-send").click()
    expect(shop.get_by_test_id("chat-reply")).to_have_count(bot_replies + 1)  # the assistant answers again
    expect(item).to_have_count(0)  # closed: gone from "open and claimed"


def _codes(page: Page, base_url: str, product_id: str) -> str:
    """Issue a batch of two, revoke one code, verify it (counterfeit), read its scan history; its payload."""
    panel = _tab(page, "codes")
    batch = f"CONSOLE-{int(time.time())}"
    panel.get_by_label("Product id", exact=True).fill(product_id)
    panel.get_by_label("Batch", exact=True).fill(batch)
    panel.get_by_label("How many").fill("2")
    panel.get_by_test_id("issue-submit").click()
    codes = panel.get_by_test_id("issued-code")
    expect(codes).to_have_count(2)
    expect(panel.get_by_test_id("codes-result")).to_contain_text(f"batch {batch}")
    expect(codes.first.locator("img.qr")).to_be_visible()
    serial = codes.first.get_by_test_id("issued-serial").inner_text()
    payload = codes.first.get_by_test_id("issued-payload").inner_text()
    _shot(page, "codes-issued")

    codes.first.get_by_test_id("issued-revoke").click()
    expect(panel.get_by_test_id("revoke-target")).to_have_value(serial)
    panel.get_by_label("Reason").fill("label printed twice")
    panel.get_by_test_id("revoke-submit").click()
    expect(panel.get_by_test_id("revocation-title")).to_have_text("Revoked")
    expect(panel.get_by_test_id("revocation-codes")).to_have_text("1")

    status, verdict = _api(base_url, "", "POST", "/v1/vision/verify", {"payload": payload})  # a shopper's scan
    assert status == 200 and verdict["verdict"] == "counterfeit", verdict

    panel.get_by_label("Serial", exact=True).fill(serial)
    panel.get_by_test_id("scans-submit").click()
    expect(panel.get_by_test_id("scans-revoked")).to_contain_text("label printed twice")
    expect(panel.get_by_test_id("scan-row")).to_have_count(1)
    expect(panel.get_by_test_id("scans-count")).to_contain_text("1")
    _shot(page, "codes")
    return payload


def _alerts(page: Page, payload: str) -> None:
    """The revoked code's scan raised a counterfeit alert: it is listed open, and acknowledged here."""
    panel = _tab(page, "alerts")
    rows = panel.get_by_test_id("alert-row").filter(has_text="counterfeit detected")
    _until("the counterfeit alert", lambda: panel.get_by_test_id("alerts-refresh").click(),
           lambda: (_no_error(panel, "alerts-status"), rows.count() > 0)[1])
    row = rows.first
    expect(row).to_contain_text("label printed twice")  # the revocation, in the verdict's reasons
    _shot(page, "alerts")
    row.get_by_test_id("alert-acknowledge").click()
    expect(row.get_by_test_id("alert-acknowledged")).to_be_visible()
    panel.get_by_label("State").select_option("acknowledged")
    panel.get_by_test_id("alerts-refresh").click()
    expect(panel.get_by_test_id("alert-row").filter(has_text="counterfeit detected").first).to_be_visible()


def _dead_letters(page: Page, event: dict) -> None:
    """The broken interaction is listed with its reason; shown; replayed, it is dead-lettered again."""
    panel = _tab(page, "deadletters")
    panel.get_by_label("Topic").select_option(topics.INTERACTIONS)
    rows = panel.get_by_test_id("deadletter-row")
    _until("the broken interaction's dead letter", lambda: panel.get_by_test_id("deadletters-refresh").click(),
           lambda: (_no_error(panel, "deadletters-status"), rows.count() > 0)[1])
    row = rows.first
    expect(row.get_by_test_id("deadletter-reason")).to_contain_text("rating")
    row.get_by_test_id("deadletter-show").click()
    detail = panel.get_by_test_id("deadletters-detail")
    expect(detail.get_by_test_id("deadletter-event")).to_contain_text(event["event_id"])
    _shot(page, "deadletters")
    _until("every consumer's letter of the event", lambda: panel.get_by_test_id("deadletters-refresh").click(),
           lambda: rows.filter(has_text="rating").count() >= 2, timeout_s=30)  # the recommender's, forecasting's
    before = rows.count()
    detail.get_by_test_id("deadletter-replay").click()
    expect(detail.get_by_test_id("replay-status")).to_contain_text("Replayed to")
    # Still invalid: the consumers dead-letter the replayed event again, with the new reason: new letters.
    _until("the replayed event to be dead-lettered again", lambda: panel.get_by_test_id("deadletters-refresh").click(),
           lambda: (_no_error(panel, "deadletters-status"), rows.count() > before)[1])
    expect(rows.filter(has_text="replayed").first).to_be_visible()  # the first letters, marked replayed
    detail.get_by_test_id("deadletter-replay").click()  # the first letter once more: refused without force
    expect(detail.get_by_test_id("replay-status")).to_contain_text("409")


def _models(page: Page) -> None:
    """Every service's versions with metrics and a chart; the recommender's two versions, one served by hand."""
    panel = _tab(page, "models")
    recommender = panel.locator('[data-testid="model-service"][data-service="recommender"]')
    versions = recommender.get_by_test_id("model-row")
    _until("the recommender's second version", lambda: panel.get_by_test_id("models-refresh").click(),
           lambda: (_no_error(panel, "models-status"), versions.count() >= 2)[1], timeout_s=300)
    expect(recommender.get_by_test_id("model-serving")).to_have_count(1)
    chart = recommender.get_by_test_id("model-chart-svg")
    expect(chart.locator("circle")).to_have_count(versions.count())
    expect(chart.locator("circle.marked")).to_have_count(1)
    other = versions.filter(has=page.get_by_test_id("model-serve")).first
    version = other.get_attribute("data-version")
    other.get_by_test_id("model-serve").click()
    expect(panel.get_by_test_id("models-status")).to_contain_text(f"now serves {version}")
    served = recommender.locator(f'[data-testid="model-row"][data-version="{version}"]')
    expect(served.get_by_test_id("model-serving")).to_be_visible()
    _shot(page, "models")


def _experiments(page: Page, base_url: str, admin_key: str) -> None:
    """An experiment of two arms started here, its report with the interval, stopped; the attribution table."""
    panel = _tab(page, "experiments")
    _no_error(panel, "experiments-status")
    name = f"console e2e {int(time.time())}"
    panel.get_by_label("Name", exact=True).fill(name)
    panel.get_by_test_id("arm-a-strategy").select_option("hybrid")
    panel.get_by_test_id("arm-b-strategy").select_option("popular")
    panel.get_by_test_id("experiment-create").click()
    _no_error(panel, "experiment-form-status")
    expect(panel.get_by_test_id("experiment-row").filter(has_text=name)).to_have_count(1)
    report = panel.get_by_test_id("experiment-report")
    expect(report.get_by_test_id("experiment-arm")).to_have_count(2)
    expect(report.get_by_test_id("experiment-verdict")).to_contain_text("click")
    # Shoppers in the experiment: every answer of arm A clicked, half of arm B's; the report finds A better.
    arms = _experiment_traffic(base_url, admin_key)
    assert set(arms) == {"A", "B"}, arms
    verdict = report.get_by_test_id("experiment-verdict")
    _until("the experiment's report to find arm A better", lambda: panel.get_by_test_id("experiments-refresh").click(),
           lambda: "Arm A is better" in verdict.inner_text(), timeout_s=60)
    expect(report.get_by_test_id("experiment-ci").locator("line.interval")).to_have_count(1)
    expect(panel.get_by_test_id("attribution-row").first).to_be_visible()
    _no_error(panel, "attribution-status")
    _shot(page, "experiments")
    report.get_by_test_id("experiment-stop").click()
    expect(panel.get_by_test_id("experiment-row").filter(has_text=name).get_by_test_id("experiment-status")) \
        .to_have_text("stopped")


def _experiment_traffic(base_url: str, admin_key: str, shoppers: int = 40) -> dict[str, int]:
    """Demo shoppers signed in as the storefront does, each asking for their recommendations (no strategy: the
    experiment's arm answers); all of arm A's answers are clicked, half of arm B's. Answers how many shoppers each
    arm served."""
    served: dict[str, int] = {}
    clicks = []
    for n in range(1, shoppers + 1):
        user = f"u{n}"
        status, session = _api(base_url, "", "POST", "/v1/auth/dev-session", {"user_id": user})
        assert status == 201, session
        request = urllib.request.Request(f"{base_url}/v1/users/{user}/recommendations?k=5",
                                         headers={"Authorization": f"Bearer {session['token']}"})
        with urllib.request.urlopen(request, timeout=30) as reply:
            answer = json.loads(reply.read())
        arm = (answer.get("experiment") or {}).get("arm")
        if not arm or not answer["items"]:
            continue
        served[arm] = served.get(arm, 0) + 1
        if arm == "A" or served[arm] % 2:  # all of arm A's answers, every other one of arm B's
            clicks.append({"event_id": str(uuid.uuid4()), "type": "interaction.click",
                           "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "payload": {"user_id": user, "product_id": answer["items"][0]["product_id"],
                                       "recommendation_id": answer["recommendation_id"]}})
    status, body = _api(base_url, admin_key, "POST", "/v1/events", {"events": clicks})
    assert status in (200, 202), body
    return served


def _analytics(page: Page, forecast_product: str) -> None:
    """Segments, the funnel and cohorts of the demo shop, and a sold product's forecast chart and price advice."""
    panel = _tab(page, "analytics")
    for name in ("segments-panel", "funnel-panel", "cohorts-panel"):
        content = panel.get_by_test_id(name)
        expect(content.locator(".status.loading")).to_have_count(0)
        errors = content.get_by_test_id("analytics-error")
        if errors.count():
            raise AssertionError(f"{name} shows an error: {errors.inner_text()}")
    expect(panel.get_by_test_id("segment-row").first).to_be_visible()
    expect(panel.get_by_test_id("segments-chart").locator("rect").first).to_be_visible()
    expect(panel.get_by_test_id("funnel-row")).to_have_count(3)
    expect(panel.get_by_test_id("funnel-row").first).to_contain_text("view")
    expect(panel.get_by_test_id("cohort-row").first).to_be_visible()
    panel.get_by_label("Product id").fill(forecast_product)
    panel.get_by_test_id("forecast-submit").click()
    chart = panel.get_by_test_id("forecast-chart")
    expect(chart.locator("path.line.history")).to_have_count(1)
    expect(chart.locator("path.line.forecast")).to_have_count(1)
    expect(chart.locator("polygon.band")).to_have_count(1)
    expect(panel.get_by_test_id("forecast-title")).to_contain_text(forecast_product)
    # Beside it, the price advice, or the service's reason when it has none (this stack trains no forecasting
    # model on its own: "no pricing model yet").
    expect(panel.get_by_test_id("price-advice")).to_contain_text("Price advice")
    _shot(page, "analytics")
