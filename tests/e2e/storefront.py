"""The storefront at ``/`` clicked through in a real headless Chromium (Debian's ``chromium`` driven by
Playwright; ``playwright install`` is not needed): the shop with the catalog's own pictures and categories,
recommendations with reasons, the assistant in English and Chinese, a photo identified, a product's forecast
panel. Called by tests/e2e/test_dev_stack.py against the running dev stack. Screenshots of the shop and of the
Chinese chat (Chinese drawn with Debian's fonts-noto-cjk, not boxes) are kept under ``ARTIFACTS``."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

TIMEOUT_MS = 30_000  # each step: the assistant and the vision model run on CPU, beside the other services
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-dev-shm-usage"]
NOT_BLANK = re.compile(r"\S")
CHINESE = re.compile(r"[\u4e00-\u9fff]")
# Screenshots kept as test artifacts (storefront-shop.png, storefront-chat-zh.png); SHOPAI_TEST_ARTIFACTS moves them.
ARTIFACTS = Path(os.environ.get("SHOPAI_TEST_ARTIFACTS") or Path(tempfile.gettempdir()) / "shopai-e2e")


def check_storefront(base_url: str, image_base64: str, expected_product_id: str) -> None:
    """Drive the storefront like a shopper; on failure the AssertionError names a screenshot of the page."""
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is not installed (make sysdeps installs it)"
    with tempfile.TemporaryDirectory(prefix="storefront-") as tmp, sync_playwright() as playwright:
        photo = Path(tmp) / "product.png"
        photo.write_bytes(base64.b64decode(image_base64))
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        console: list[str] = []
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            page.on("pageerror", lambda error: console.append(f"page error: {error}"))
            page.on("console", lambda message: console.append(f"console {message.type}: {message.text}"))
            try:
                _click_through(page, base_url, photo, expected_product_id)
                problems = [line for line in console
                            if line.startswith("page error") or "Content Security Policy" in line]
                assert not problems, f"the page reported errors: {problems}"
            except Exception as exc:
                stamp = time.strftime("%Y%m%d-%H%M%S")
                shot = Path(tempfile.gettempdir()) / f"storefront-failure-{stamp}.png"
                page.screenshot(path=str(shot), full_page=True)
                log = "\n".join(console[-30:])
                raise AssertionError(
                    f"storefront check failed: {exc}\nscreenshot: {shot}\nbrowser console:\n{log}") from exc
        finally:
            browser.close()


def _click_through(page: Page, base_url: str, photo: Path, expected_product_id: str) -> None:
    page.goto(f"{base_url}/")
    expect(page).to_have_title(re.compile("ShopAI"), timeout=TIMEOUT_MS)

    # Shop: the demo catalog, most popular first, each product with the catalog's own picture.
    expect(page.get_by_test_id("product-card").first).to_be_visible(timeout=TIMEOUT_MS)
    _shows_pictures(page)
    _categories_from_the_catalog(page, base_url)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "storefront-shop.png"))

    # For you: u1's recommendations, each with its reason.
    page.get_by_test_id("tab-foryou").click()
    expect(page.get_by_test_id("user-id")).to_have_value("u1", timeout=TIMEOUT_MS)
    _one_of(page, "rec-item", "rec-error")
    expect(page.get_by_test_id("rec-reason").first).to_have_text(NOT_BLANK, timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("rec-strategy")).to_have_text(re.compile(r"answered by: \w+"),
                                                             timeout=TIMEOUT_MS)

    # Assistant: an English and a Chinese message, in one conversation, each answered.
    page.get_by_test_id("tab-assistant").click()
    for turn, (message, language) in enumerate([("where is my order?", None), ("有白色的衬衫吗？", CHINESE)], start=1):
        page.get_by_test_id("chat-input").fill(message)
        page.get_by_test_id("chat-send").click()
        replies = page.locator('[data-testid="chat-reply"], [data-testid="chat-error"]')
        expect(replies).to_have_count(turn, timeout=TIMEOUT_MS)
        _no_error(page, "chat-error")
        reply = page.get_by_test_id("chat-reply").nth(turn - 1)
        expect(reply).to_have_text(language or NOT_BLANK, timeout=TIMEOUT_MS)
    page.screenshot(path=str(ARTIFACTS / "storefront-chat-zh.png"))  # 衬衫 drawn, not boxes

    # Photo: upload the product's picture; Identify names the product.
    page.get_by_test_id("tab-photo").click()
    page.get_by_test_id("photo-input").set_input_files(str(photo))
    expect(page.get_by_test_id("photo-preview")).to_be_visible(timeout=TIMEOUT_MS)
    page.get_by_test_id("photo-identify").click()
    _one_of(page, "identified-product", "photo-error")
    identified = page.get_by_test_id("identified-product")
    expect(identified).to_have_text(expected_product_id, timeout=TIMEOUT_MS)

    # The product's detail: each panel shows data or the API's reason; the forecast a chart or a message.
    page.get_by_test_id("identify-topk").get_by_role("button").first.click()
    detail = page.get_by_test_id("product-detail")
    expect(detail).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("detail-product-id")).to_contain_text(expected_product_id, timeout=TIMEOUT_MS)
    forecast = page.locator('[data-testid="forecast-chart"], [data-testid="forecast-message"]')
    expect(forecast).to_have_count(1, timeout=TIMEOUT_MS)
    chart = page.get_by_test_id("forecast-chart")
    if chart.count():
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=chart.element_handle())
    else:
        expect(page.get_by_test_id("forecast-message")).to_have_text(NOT_BLANK, timeout=TIMEOUT_MS)
    for name in ("profile-panel", "inventory-panel", "pricing-panel", "similar-panel"):
        content = page.get_by_test_id(name).locator(":scope > div")
        expect(content.locator(".status.loading")).to_have_count(0, timeout=TIMEOUT_MS)
        expect(content).to_have_text(NOT_BLANK, timeout=TIMEOUT_MS)  # the data or the API's reason
    page.get_by_test_id("detail-close").click()
    expect(detail).to_be_hidden(timeout=TIMEOUT_MS)


def _shows_pictures(page: Page) -> None:
    """The first cards show the product's own picture (GET /v1/products/{id}/image), loaded, not the tile."""
    for card in page.get_by_test_id("product-card").all()[:4]:
        image = card.get_by_test_id("product-image")
        expect(image).to_have_count(1, timeout=TIMEOUT_MS)  # a picture that failed to load is removed
        pid = card.get_attribute("data-product-id")
        assert image.get_attribute("src") == f"/v1/products/{pid}/image", image.get_attribute("src")
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
        assert image.get_attribute("alt"), "a picture needs its alt text"


def _categories_from_the_catalog(page: Page, base_url: str) -> None:
    """The category picker holds the catalog's categories (GET /v1/products/categories), in its order, with
    their Chinese names; choosing one shows only its products."""
    with urllib.request.urlopen(f"{base_url}/v1/products/categories", timeout=10) as reply:
        categories = json.load(reply)["categories"]
    assert categories, "the catalog has no categories"
    options = page.get_by_test_id("category-select").get_by_test_id("category-option")
    expect(options).to_have_count(len(categories), timeout=TIMEOUT_MS)
    assert [option.get_attribute("value") for option in options.all()] == [c["name"] for c in categories]
    expect(options.first).to_have_text(CHINESE, timeout=TIMEOUT_MS)  # the demo gives attributes.category_zh
    chosen = categories[-1]["name"]
    label = re.sub(r"_+", " ", re.sub(r"([^\W_]{2,})[-_]+", r"\1 ", chosen)).strip()  # app.js categoryLabel
    label = label[:1].upper() + label[1:]
    page.get_by_test_id("category-select").select_option(chosen)
    expect(page.get_by_test_id("shop-status")).to_contain_text(f"in {label}", timeout=TIMEOUT_MS)
    tags = page.get_by_test_id("product-category")
    expect(tags.first).to_be_visible(timeout=TIMEOUT_MS)
    assert set(tags.all_inner_texts()) == {label}, tags.all_inner_texts()
    page.get_by_test_id("category-select").select_option("")
    expect(page.get_by_test_id("shop-status")).to_contain_text("most popular first", timeout=TIMEOUT_MS)


def _one_of(page: Page, wanted: str, error: str) -> None:
    """Wait until the element or its error shows; fail with the error's text when it is the error."""
    either = page.locator(f'[data-testid="{wanted}"], [data-testid="{error}"]').first
    expect(either).to_be_visible(timeout=TIMEOUT_MS)
    _no_error(page, error)


def _no_error(page: Page, error: str) -> None:
    errors = page.get_by_test_id(error)
    if errors.count():
        raise AssertionError(f"the page shows an error: {errors.last.inner_text()}")
