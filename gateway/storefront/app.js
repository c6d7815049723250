// ShopAI demo storefront: plain JavaScript over the gateway's REST API (docs/api.md, "Storefront").
//
// Every text that comes from the API is put into the page with textContent / text nodes (the h()
// helper below), never parsed as HTML. The Content-Security-Policy of the page allows scripts and
// styles from this origin only, and images from this origin, data: and blob: URLs.
"use strict";

// Every REST route this page calls. tests/unit/test_gateway_storefront.py checks that each one exists
// in the gateway with this method: call the API only through these entries.
const API = Object.freeze({
  recommendations: { method: "GET", path: "/v1/users/{user_id}/recommendations" },
  visitorRecommendations: { method: "GET", path: "/v1/recommendations" },
  devSession: { method: "POST", path: "/v1/auth/dev-session" },
  similar: { method: "GET", path: "/v1/products/{product_id}/similar" },
  productImage: { method: "GET", path: "/v1/products/{product_id}/image" },
  categories: { method: "GET", path: "/v1/products/categories" },
  productProfile: { method: "GET", path: "/v1/products/{product_id}/profile" },
  forecastChartPng: { method: "GET", path: "/v1/forecasts/{product_id}/chart.png" },
  inventoryPlan: { method: "GET", path: "/v1/inventory/{product_id}/plan" },
  pricing: { method: "GET", path: "/v1/pricing/{product_id}" },
  chat: { method: "POST", path: "/v1/chat" },
  chatMessages: { method: "GET", path: "/v1/chat/conversations/{session_id}/messages" },
  identify: { method: "POST", path: "/v1/vision/identify" },
  search: { method: "POST", path: "/v1/vision/search" },
  verify: { method: "POST", path: "/v1/vision/verify" },
});

// The catalog's categories (API.categories): name -> { products, zh }, filled at start.
const CATEGORY = new Map();
const TILE_COLOURS = 10; // style.css .tile-0 … .tile-9: a product without a picture gets its category's colour

const SHOP_PAGE = 24;
const FOR_YOU_COUNT = 12;
const FORECAST_HORIZON = 28;
const MAX_IMAGE_BYTES = 8 * 1024 * 1024; // the gateway's limit (docs/api.md, Vision)
const TABS = ["shop", "foryou", "assistant", "photo"];
// "unchecked": the gateway's degraded answer while the vision service is away (no verdict is claimed).
const VERDICTS = new Set(["authentic", "counterfeit", "suspicious", "unreadable", "unchecked"]);
const HANDOFF_POLL_MS = 3000; // while a person owns the conversation, their replies are fetched this often
// The assistant's hand-off projection takes a moment to have a hand-off just requested: until then its feed is a
// 404, which means "not yet" for this long after the chat said it handed over, and "no hand-off" after.
const HANDOFF_FEED_GRACE_MS = 30000;

// The conversation id survives a reload of the tab (session storage; unavailable in some private modes).
const SESSION_KEY = "shopai.chat.session";
function storedSession(value = undefined) {
  try {
    if (value === undefined) return sessionStorage.getItem(SESSION_KEY) || "";
    if (value) sessionStorage.setItem(SESSION_KEY, value);
    else sessionStorage.removeItem(SESSION_KEY);
  } catch {
    // no storage: the conversation lasts as long as the page
  }
  return value || "";
}

const state = {
  shopSeq: 0, shopLoaded: false,
  forYouSeq: 0, forYouLoaded: false,
  detailSeq: 0, detailId: "", chartUrl: "",
  chatSession: storedSession(), chatBusy: false,
  // A hand-off's feed (API.chatMessages, docs/api.md): the cursor, the
  // pending poll, and the conversation it belongs to (a new conversation stops it).
  chatCursor: 0, chatPoll: 0, chatPollSession: "", chatPollSince: 0,
  // The signed-in shopper's token (memory only): make run's gateway hands the demo shopper one at
  // the devSession route; a real shop's backend signs its shoppers in and gives the page their token.
  token: "", tokenUser: "", devSignIn: true,
  photoFile: null, photoUrl: "", photoBusy: false,
};

// ------------------------------------------------------------------ small helpers

function money(amount, currency) {
  if (typeof amount !== "number" || !Number.isFinite(amount)) return "—";
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency: currency || "CNY" }).format(amount);
  } catch {
    return `${amount.toFixed(2)} ${currency || ""}`.trim();
  }
}

const percent = (value) =>
  typeof value === "number" && Number.isFinite(value) ? `${(value * 100).toFixed(value < 0.1 ? 1 : 0)}%` : "—";

/** A category's name as a person reads it: "ankle-boots" -> "Ankle boots", "t-shirts" -> "T-shirts" (a hyphen
 * after a single letter stays). */
function categoryLabel(slug) {
  if (!slug) return "uncategorised";
  const words = String(slug).replace(/([^\W_]{2,})[-_]+/g, "$1 ").replace(/_+/g, " ").trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** A class name for a category's colour: a number from the name, so API text never becomes a class. */
function categoryClass(slug) {
  let hash = 0;
  for (const char of String(slug || "")) hash = (hash * 31 + char.codePointAt(0)) >>> 0;
  return `tile-${hash % TILE_COLOURS}`;
}

/** The product's own picture (API.productImage); where it has none, the picture goes and the tile shows. */
function productPicture(productId, title, testid) {
  return h("img", {
    src: apiUrl(API.productImage, { product_id: productId }), alt: title || productId, testid,
    loading: "lazy", decoding: "async", onerror: (event) => event.target.remove(),
  });
}

function currentUser() {
  return $("#user-id").value.trim();
}

// ------------------------------------------------------------------ the REST API

/** Signs the page in as the shopper in the user box (development gateways only); "" signs out. */
async function signIn() {
  const user = currentUser();
  state.token = "";
  state.tokenUser = user;
  if (!user || !state.devSignIn) return;
  try {
    const body = await call(API.devSession, { json: { user_id: user }, anonymous: true });
    if (currentUser() === user) state.token = body.token;
  } catch (err) {
    if (err.status === 404) state.devSignIn = false; // not a development gateway: browse as a visitor
    else throw err;
  }
}

async function ensureSignedIn() {
  if (state.tokenUser !== currentUser()) await signIn();
}

/** Calls one API route; answers the JSON body (or a Blob), throws ApiError with the problem's detail.
 * Sends the shopper's token, and signs in again once when it has expired. */
async function call(route, { params, query, json, form, blob = false, anonymous = false } = {}, retried = false) {
  const init = { method: route.method, headers: { Accept: blob ? "image/png" : "application/json" } };
  if (state.token && !anonymous) init.headers.Authorization = `Bearer ${state.token}`;
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = form; // the browser sets multipart/form-data with its boundary
  }
  let response;
  try {
    response = await fetch(apiUrl(route, params, query), init);
  } catch (err) {
    throw new ApiError(0, "Network error", `the gateway did not answer (${err.message})`);
  }
  if (response.status === 401 && init.headers.Authorization && !retried) {
    await signIn(); // the token expired (they are short-lived): a new one, and the call once more
    return call(route, { params, query, json, form, blob, anonymous }, true);
  }
  if (!response.ok) throw await problemOf(response);
  return blob ? response.blob() : response.json();
}

// ------------------------------------------------------------------ tabs

function showTab(name, focus = false) {
  const active = TABS.includes(name) ? name : "shop";
  for (const tab of TABS) {
    const button = $(`#tab-${tab}`);
    button.setAttribute("aria-selected", String(tab === active));
    button.tabIndex = tab === active ? 0 : -1;
    $(`#panel-${tab}`).hidden = tab !== active;
  }
  if (focus) $(`#tab-${active}`).focus();
  if (location.hash !== `#${active}`) history.replaceState(null, "", `#${active}`);
  if (active === "shop" && !state.shopLoaded) loadShop();
  if (active === "foryou" && !state.forYouLoaded) loadForYou();
  if (active === "assistant") $("#chat-input").focus();
}

function setUpTabs() {
  const tablist = $(".tabs");
  tablist.addEventListener("click", (event) => {
    const button = event.target.closest("[data-tab]");
    if (button) showTab(button.dataset.tab);
  });
  tablist.addEventListener("keydown", (event) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (!step) return;
    const current = TABS.indexOf(document.activeElement.dataset.tab);
    if (current < 0) return;
    event.preventDefault();
    showTab(TABS[(current + step + TABS.length) % TABS.length], true);
  });
  window.addEventListener("hashchange", () => showTab(location.hash.slice(1)));
}

// ------------------------------------------------------------------ shop

function productCard(item, extra = null) {
  return h("li", { class: "card" },
    h("button", {
      type: "button", class: "card-button", testid: "product-card", "data-product-id": item.product_id,
      onclick: () => openDetail(item.product_id, item),
    },
    h("span", { class: `thumb ${categoryClass(item.category)}` },
      h("span", { class: "thumb-label", "aria-hidden": "true" },
        h("span", { text: categoryLabel(item.category) }),
        CATEGORY.get(item.category)?.zh
          ? h("span", { class: "zh", lang: "zh-CN", text: CATEGORY.get(item.category).zh }) : null),
      item.product_id ? productPicture(item.product_id, item.title, "product-image") : null),
    h("span", { class: "card-title", testid: "product-title", text: item.title || item.product_id }),
    h("span", { class: "card-meta" },
      Number.isFinite(item.price)
        ? h("span", { class: "price", testid: "product-price", text: money(item.price, item.currency) }) : null,
      h("span", { class: "tag", testid: "product-category", text: categoryLabel(item.category) })),
    extra));
}

async function loadShop() {
  const seq = ++state.shopSeq;
  state.shopLoaded = true;
  const category = $("#shop-category").value;
  const strategy = $("#shop-sort").value;
  const grid = $("#shop-grid");
  const note = $("#shop-status");
  grid.setAttribute("aria-busy", "true");
  note.className = "status loading";
  note.textContent = "Loading the catalog…";
  try {
    const body = await call(API.visitorRecommendations, { query: { strategy, k: SHOP_PAGE, category } });
    if (seq !== state.shopSeq) return;
    grid.replaceChildren(...body.items.map((item) => productCard(item)));
    note.className = "status";
    note.textContent = body.items.length
      ? `${body.items.length} products${category ? ` in ${categoryLabel(category)}` : ""}, ${
        strategy === "trending" ? "trending now" : "most popular first"}`
      : "No products here yet: the shop may still be loading its catalog.";
  } catch (err) {
    if (seq !== state.shopSeq) return;
    grid.replaceChildren();
    note.className = "status error";
    note.textContent = errorText(err);
  } finally {
    if (seq === state.shopSeq) grid.removeAttribute("aria-busy");
  }
}

// ------------------------------------------------------------------ for you

async function loadForYou() {
  state.forYouLoaded = true;
  const seq = ++state.forYouSeq;
  const user = currentUser();
  const list = $("#foryou-list");
  const meta = $("#foryou-meta");
  $("#foryou-user").textContent = user || "…";
  if (!user) {
    list.replaceChildren();
    meta.replaceChildren(status("Enter a user id at the top (e.g. u1) to see their recommendations.", "error"));
    return;
  }
  list.setAttribute("aria-busy", "true");
  meta.replaceChildren(status("Asking the recommender…", "loading"));
  try {
    await ensureSignedIn();
    if (!state.token) {
      list.replaceChildren();
      meta.replaceChildren(status("Sign in to the shop to see your own recommendations.", "notice"));
      return;
    }
    const body = await call(API.recommendations, {
      params: { user_id: user }, query: { k: FOR_YOU_COUNT, strategy: $("#foryou-strategy").value },
    });
    if (seq !== state.forYouSeq) return;
    meta.replaceChildren(
      h("span", { class: "pill", testid: "rec-strategy", text: `answered by: ${body.strategy}` }),
      h("span", { class: `pill ${body.cold_start ? "warn" : "ok"}`, testid: "rec-cold-start",
        text: body.cold_start ? "cold start: too little history, general picks" : "personalised" }),
      body.model_version ? h("span", { class: "pill muted", text: `model ${body.model_version}` }) : null,
    );
    if (!body.items.length) meta.append(status("No recommendations for this shopper right now.", "notice"));
    list.replaceChildren(...body.items.map((item, index) => h("li", { class: "rec-item", testid: "rec-item" },
      h("span", { class: "rank", "aria-hidden": "true", text: String(index + 1) }),
      h("span", { class: `thumb rec-thumb ${categoryClass(item.category)}` },
        productPicture(item.product_id, item.title, "rec-image")),
      h("div", { class: "rec-main" },
        h("button", {
          type: "button", class: "link", testid: "rec-title", text: item.title || item.product_id,
          onclick: () => openDetail(item.product_id, item),
        }),
        h("span", { class: "muted", text: ` ${categoryLabel(item.category)} · ${money(item.price, item.currency)}` }),
        h("p", { class: "reason", testid: "rec-reason", text: item.reason || "(no reason given)" })),
      h("span", { class: "score", title: "score", text: number(item.score, 3) }))));
  } catch (err) {
    if (seq !== state.forYouSeq) return;
    list.replaceChildren();
    meta.replaceChildren(status(errorText(err), "error", "rec-error"));
  } finally {
    if (seq === state.forYouSeq) list.removeAttribute("aria-busy");
  }
}

// ------------------------------------------------------------------ product detail

function releaseChart() {
  if (state.chartUrl) URL.revokeObjectURL(state.chartUrl);
  state.chartUrl = "";
}

function openDetail(productId, known = {}) {
  const seq = ++state.detailSeq;
  state.detailId = productId;
  $("#detail-title").textContent = known.title || productId;
  $("#detail-picture").replaceChildren(productPicture(productId, known.title, "detail-image"));
  $("#detail-id").textContent = `${productId}${known.category ? ` · ${categoryLabel(known.category)}` : ""}`;
  const dialog = $("#detail");
  if (!dialog.open) dialog.showModal();
  dialog.querySelector(".detail-body").scrollTop = 0;
  loadProfile(productId, seq);
  loadForecast(productId, seq);
  loadInventory(productId, seq);
  loadPricing(productId, seq);
  loadSimilar(productId, seq);
}

/**
 * A panel's problem: a 400 is the service's FAILED_PRECONDITION (no sales yet, stock never counted, no
 * price model yet), an expected state shown as a notice with the service's reason; a 401 or 403 is the
 * shop's business data (forecasts, stock, prices: staff with an analyst key, docs/api.md "Access"), a notice
 * too; anything else is an error.
 */
function panelProblem(err, prefix = "Not available yet") {
  if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
    return status("Staff only: the shop's sales, stock and prices need an analyst's key.", "notice",
      "panel-message");
  }
  const expected = err instanceof ApiError && err.status === 400;
  return status(expected ? `${prefix}: ${err.message}` : errorText(err), expected ? "notice" : "error",
    "panel-message");
}

const PANEL_RETRIES = 3; // a 503 with Retry-After (an answer being computed in the background) is asked again

/** Runs one panel's request; shows its answer, or the problem detail, only if the panel is still current. */
async function panel(box, seq, loadingText, request, render, onError = panelProblem, attempt = 0) {
  box.replaceChildren(status(loadingText, "loading"));
  try {
    const body = await request();
    if (seq === state.detailSeq) box.replaceChildren(render(body));
  } catch (err) {
    if (seq !== state.detailSeq) return;
    if (err instanceof ApiError && err.status === 503 && err.retryAfter && attempt < PANEL_RETRIES) {
      box.replaceChildren(status(`${loadingText} (being computed: asking again in ${err.retryAfter} s)`, "loading"));
      setTimeout(() => {
        if (seq === state.detailSeq) panel(box, seq, loadingText, request, render, onError, attempt + 1);
      }, Math.min(err.retryAfter, 10) * 1000);
      return;
    }
    box.replaceChildren(onError(err));
  }
}

function loadProfile(productId, seq) {
  return panel($("#detail-profile"), seq, "Loading the product…",
    () => call(API.productProfile, { params: { product_id: productId } }),
    (p) => {
      $("#detail-title").textContent = p.title || productId;
      $("#detail-id").textContent = `${productId} · ${categoryLabel(p.category)}`;
      const bought = p.frequently_bought_with || [];
      return h("div", {},
        h("p", { class: "big-price", text: money(p.price, p.currency) }),
        facts([
          ["Brand", p.brand || "—"],
          ["Category", categoryLabel(p.category)],
          ["Stock", h("span", {
            class: `pill ${p.in_stock ? "ok" : "warn"}`, text: p.in_stock ? "in stock" : "out of stock",
          })],
          ["Rating", p.rating_count ? `${number(p.average_rating, 1)} / 5 (${p.rating_count})` : "no ratings yet"],
          ["Popularity", p.popularity_rank ? `#${p.popularity_rank}` : "no interactions yet"],
          ["Shoppers", number(p.unique_users, 0)],
          ["Conversion", percent(p.conversion_rate)],
        ]),
        p.tags && p.tags.length
          ? h("div", { class: "chips" }, p.tags.map((tag) => h("span", { class: "chip", text: tag }))) : null,
        bought.length ? h("p", { class: "muted small", text: "Often bought with:" }) : null,
        bought.length ? h("div", { class: "chips" }, bought.slice(0, 6).map((item) => h("button", {
          type: "button", class: "chip", text: item.title || item.product_id,
          onclick: () => openDetail(item.product_id, item),
        }))) : null);
    });
}

function loadForecast(productId, seq) {
  const box = $("#detail-forecast");
  return panel(box, seq, "Drawing the forecast…",
    () => call(API.forecastChartPng, {
      params: { product_id: productId }, query: { horizon: FORECAST_HORIZON }, blob: true,
    }),
    (png) => {
      releaseChart();
      state.chartUrl = URL.createObjectURL(png);
      return h("img", {
        src: state.chartUrl, width: 800, height: 400, testid: "forecast-chart",
        alt: `Daily demand for ${productId}: recent sales, the forecast for the next ${FORECAST_HORIZON} days `
          + "and its interval",
      });
    },
    // A product without sales has no forecast yet: a 400 whose detail says so.
    (err) => {
      const message = panelProblem(err, "No forecast yet");
      message.dataset.testid = "forecast-message";
      return message;
    });
}

function loadInventory(productId, seq) {
  return panel($("#detail-inventory"), seq, "Planning the stock…",
    () => call(API.inventoryPlan, { params: { product_id: productId } }),
    (plan) => h("div", {},
      h("p", {},
        h("span", { class: `pill ${plan.reorder_now ? "warn" : "ok"}`, testid: "reorder-now",
          text: plan.reorder_now ? `reorder now: ${number(plan.order_quantity, 0)} units` : "stock is sufficient" })),
      facts([
        ["On hand", number(plan.on_hand, 0)],
        ["Reorder point", number(plan.reorder_point)],
        ["Safety stock", number(plan.safety_stock)],
        ["Order quantity", number(plan.order_quantity, 0)],
        ["Days of cover", number(plan.days_of_cover)],
        ["Stock-out risk", percent(plan.stockout_risk)],
        ["Demand / day", `${number(plan.mean_daily_demand, 2)} ± ${number(plan.daily_demand_std, 2)}`],
        ["Lead time", `${number(plan.lead_time_days, 0)} days at ${percent(plan.service_level)} service level`],
      ])));
}

function loadPricing(productId, seq) {
  const objective = $("#pricing-objective").value;
  return panel($("#detail-pricing"), seq, "Estimating the price elasticity…",
    () => call(API.pricing, { params: { product_id: productId }, query: { objective } }),
    (p) => {
      const change = p.current_price ? (p.recommended_price - p.current_price) / p.current_price : 0;
      const profit = p.objective === "profit";
      const cur = p.currency;
      return h("div", {},
        h("p", { class: "big-price" }, money(p.recommended_price, p.currency),
          h("span", { class: "muted small", text: ` (now ${money(p.current_price, p.currency)}, ${
            change >= 0 ? "+" : ""}${(change * 100).toFixed(1)}%)` })),
        facts([
          ["Elasticity",
            `${number(p.elasticity, 2)} (${number(p.elasticity_ci_low, 2)} … ${number(p.elasticity_ci_high, 2)})`],
          ["Demand / day", `${number(p.expected_demand_current, 2)} → ${number(p.expected_demand_recommended, 2)}`],
          profit
            ? ["Profit / day", `${money(p.expected_profit_current, cur)} → ${money(p.expected_profit_recommended, cur)}`]
            : ["Revenue / day", `${money(p.expected_revenue_current, cur)} → ${money(p.expected_revenue_recommended, cur)}`],
          ["Allowed range", `${money(p.lower_bound, p.currency)} … ${money(p.upper_bound, p.currency)}`],
          ["Fit", `R² ${number(p.r_squared, 2)} over ${number(p.observations, 0)} days`],
        ]),
        p.note ? h("p", { class: "muted small", text: p.note }) : null);
    });
}

function loadSimilar(productId, seq) {
  return panel($("#detail-similar"), seq, "Finding similar products…",
    () => call(API.similar, { params: { product_id: productId }, query: { k: 6 } }),
    (body) => body.items.length
      ? h("ul", { class: "grid compact" },
        body.items.map((item) => productCard(item, h("span", { class: "reason small", text: item.reason }))))
      : status("No similar products found.", "notice"));
}

function setUpDetail() {
  const dialog = $("#detail");
  $("#detail-close").addEventListener("click", () => dialog.close());
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) dialog.close(); // a click on the backdrop
  });
  dialog.addEventListener("close", () => {
    state.detailSeq += 1; // answers still on their way are dropped
    state.detailId = "";
    releaseChart();
  });
  $("#pricing-objective").addEventListener("change", () => {
    if (state.detailId) loadPricing(state.detailId, state.detailSeq);
  });
}

// ------------------------------------------------------------------ assistant

function chatBubble(kind, text, testid, lang = undefined) {
  const bubble = h("li", { class: `bubble ${kind}`, testid, lang }, h("p", { class: "text", text }));
  const log = $("#chat-log");
  log.append(bubble);
  log.scrollTop = log.scrollHeight;
  return bubble;
}

function setChatBusy(busy) {
  state.chatBusy = busy;
  $("#chat-send").disabled = busy;
  $("#chat-input").setAttribute("aria-busy", String(busy));
}

// A new id for every message; the same id when the same message is sent again (the chat route answers a
// message it already took from memory instead of applying it twice).
function newMessageId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16)); // plain http off localhost has no randomUUID
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function sendChat(message, messageId = newMessageId()) {
  if (state.chatBusy || !message.trim()) return;
  setChatBusy(true);
  $("#chat-suggestions").replaceChildren();
  chatBubble("user", message, "chat-message");
  const typing = chatBubble("bot typing", "…", "chat-typing");
  typing.setAttribute("aria-label", "The assistant is typing");
  try {
    await ensureSignedIn(); // the assistant speaks of the signed-in shopper's orders only
    const reply = await call(API.chat, {
      json: { message, session_id: state.chatSession || undefined, message_id: messageId },
    });
    state.chatSession = storedSession(reply.session_id);
    typing.remove();
    if ((reply.intent || {}).name === "assistant_unavailable") { // restarting: offer to send the same message
      const bubble = chatBubble("bot", reply.reply, "chat-unavailable", reply.language === "zh" ? "zh-CN" : "en");
      bubble.append(h("div", { class: "chips" }, [h("button", {
        type: "button", class: "chip", testid: "chat-send-again", text: reply.language === "zh" ? "再发送" : "Send again",
        onclick: () => sendChat(message, reply.message_id || messageId),
      })]));
      return;
    }
    if (reply.relayed_to_agent) { // a person owns the conversation: no bot reply, theirs come by polling
      chatBubble("note", "Sent to the support team.", "chat-relayed");
      followHandoff(true);
      return;
    }
    const bubble = chatBubble("bot", reply.reply, "chat-reply", reply.language === "zh" ? "zh-CN" : "en");
    const intent = reply.intent || {};
    bubble.append(h("p", {
      class: "meta", text: `${intent.name || "?"} · ${percent(intent.confidence)} · ${reply.language}`,
    }));
    if (reply.handoff) {
      bubble.append(h("p", { class: "handoff", testid: "chat-handoff",
        text: `Handed over to a person${reply.handoff_reason ? `: ${reply.handoff_reason}` : ""}` }));
      followHandoff(true);
    }
    if (reply.product_ids && reply.product_ids.length) {
      bubble.append(h("div", { class: "chips" }, reply.product_ids.map((id) =>
        h("button", { type: "button", class: "chip", onclick: () => openDetail(id), text: id }))));
    }
    $("#chat-suggestions").replaceChildren(...(reply.suggestions || []).map((text) =>
      h("button", { type: "button", class: "chip", testid: "chat-suggestion", onclick: () => sendChat(text), text })));
    $("#chat-log").scrollTop = $("#chat-log").scrollHeight;
  } catch (err) {
    typing.remove();
    chatBubble("error", errorText(err), "chat-error");
  } finally {
    setChatBusy(false);
  }
}

/** Polls the conversation's hand-off feed while a person owns it: their replies as "Support" bubbles,
 * a note when they join and when they leave (then the assistant answers again and polling stops). */
function followHandoff(justHandedOver = false) {
  if (state.chatPoll && state.chatPollSession === state.chatSession) return; // already following
  stopFollowing();
  state.chatPollSession = state.chatSession;
  state.chatCursor = 0;
  state.chatPollSince = justHandedOver ? Date.now() : 0; // a 404 means "not yet" for a while after the hand-off
  state.chatPoll = setTimeout(pollHandoff, 0);
}

function stopFollowing() {
  clearTimeout(state.chatPoll);
  state.chatPoll = 0;
  state.chatPollSession = "";
}

const FEED_NOTES = {
  opened: "Waiting for a person from the support team…",
  claimed: "A person from the support team joined the conversation.",
  closed: "The support team closed the conversation: the assistant answers again.",
};

async function pollHandoff() {
  const session = state.chatPollSession;
  if (!session || session !== state.chatSession) return stopFollowing();
  let feed;
  try {
    await ensureSignedIn(); // a signed-in shopper's conversation is read with their token
    feed = await call(API.chatMessages, { params: { session_id: session }, query: { after: state.chatCursor } });
  } catch (err) {
    if (session !== state.chatPollSession) return;
    const early = err.status === 404 && !state.chatCursor && Date.now() - state.chatPollSince < HANDOFF_FEED_GRACE_MS;
    if (!early && (err.status === 404 || err.status === 400)) return stopFollowing(); // no hand-off here (any more)
    state.chatPoll = setTimeout(pollHandoff, HANDOFF_POLL_MS); // the gateway is busy or away: try again
    return;
  }
  if (session !== state.chatPollSession) return; // a new conversation began meanwhile
  for (const entry of feed.entries || []) {
    if (entry.kind === "message" && entry.role === "agent") {
      const bubble = chatBubble("agent", entry.text, "chat-agent");
      bubble.prepend(h("p", { class: "meta", text: "Support" }));
    } else if (FEED_NOTES[entry.kind]) {
      chatBubble("note", FEED_NOTES[entry.kind], `chat-handoff-${entry.kind}`);
    }
  }
  state.chatCursor = feed.next;
  if (feed.handoff_state === "closed") return stopFollowing();
  state.chatPoll = setTimeout(pollHandoff, HANDOFF_POLL_MS);
}

function resetChat(note) {
  stopFollowing();
  state.chatSession = storedSession("");
  $("#chat-suggestions").replaceChildren();
  chatBubble("note", note, "chat-note");
}

function setUpChat() {
  $("#chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("#chat-input");
    const message = input.value;
    if (!message.trim() || state.chatBusy) return;
    input.value = "";
    sendChat(message);
  });
  $("#chat-reset").addEventListener("click", () => resetChat("New conversation."));
  if (state.chatSession) followHandoff(); // a reload during a hand-off: its feed again (a 404 stops it)
}

// ------------------------------------------------------------------ photo

function choosePhoto(file) {
  const result = $("#photo-result");
  if (!file) return;
  if (!file.type.startsWith("image/")) {
    result.replaceChildren(status(`${file.name} is not an image: choose a JPEG, PNG, WebP, GIF or BMP file.`, "error"));
    return;
  }
  if (file.size > MAX_IMAGE_BYTES) {
    result.replaceChildren(status(`${file.name} is larger than 8 MiB: choose a smaller photo.`, "error"));
    return;
  }
  state.photoFile = file;
  if (state.photoUrl) URL.revokeObjectURL(state.photoUrl);
  state.photoUrl = URL.createObjectURL(file);
  const preview = $("#photo-preview");
  preview.src = state.photoUrl;
  preview.hidden = false;
  $("#photo-hint").textContent = `${file.name || "photo"}: drop or click to choose another`;
  result.replaceChildren(status("Ready: identify the product, search similar ones, or verify a code.", "notice"));
}

/** The gateway's degraded answer (docs/api.md, Vision): the service is away, so nothing was compared. */
function photoUnavailable(body) {
  return status(body.notice || "Photo recognition is unavailable right now: please try again in a moment.",
    "notice", "photo-degraded");
}

function renderIdentified(body) {
  if (body.degraded) return photoUnavailable(body);
  const best = body.known;
  return h("div", { class: "result" },
    h("p", { class: `pill ${best ? "ok" : "warn"}`, text: best ? "identified" : "no confident catalog match" }),
    h("h3", {}, h("span", { testid: "identified-label", text: body.label || "unknown" }), " ",
      h("code", { testid: "identified-product", text: body.product_id || "—" })),
    facts([
      ["Category", categoryLabel(body.category)],
      ["Confidence",
        h("span", {}, h("meter", { min: 0, max: 1, value: body.confidence }), ` ${percent(body.confidence)}`)],
    ]),
    h("p", { class: "muted small", text: "Best matches:" }),
    h("ol", { class: "matches", testid: "identify-topk" }, (body.top_k || []).map((c) => h("li", {},
      c.product_id
        ? h("button", {
          type: "button", class: "link", text: c.label || c.product_id,
          onclick: () => openDetail(c.product_id, { title: c.label, category: c.category }),
        })
        : h("span", { text: c.label }),
      h("span", { class: "muted", text: ` ${c.product_id} · ${categoryLabel(c.category)} · ${percent(c.score)}` })))));
}

function renderSearch(body) {
  if (body.degraded) return photoUnavailable(body);
  if (!body.results.length) return status("Nothing in the catalog looks like this photo.", "notice");
  return h("div", { class: "result" },
    h("p", { class: "muted small", text: `${body.results.length} products that look alike, most similar first:` }),
    h("ul", { class: "grid compact", testid: "search-results" }, body.results.map((r) => productCard(
      { product_id: r.product_id, title: r.label, category: r.category, price: NaN },
      h("span", { class: "reason small", text: `similarity ${percent(r.score)}` })))));
}

function renderVerdict(body) {
  const verdict = VERDICTS.has(body.verdict) ? body.verdict : "unreadable";
  const when = (value) => (value ? new Date(value).toLocaleString() : "—");
  return h("div", { class: "result" },
    h("p", { class: `verdict verdict-${verdict}`, testid: "verify-verdict",
      text: verdict === "unchecked" ? "not checked: try again shortly" : body.verdict }),
    h("ul", { class: "reasons", testid: "verify-reasons" }, (body.reasons || []).map((r) => h("li", { text: r }))),
    facts([
      ["Product", body.product_id || "—"],
      ["Batch / serial", `${body.batch || "—"} / ${body.serial || "—"}`],
      ["Scans", number(body.scan_count, 0)],
      ["First scanned", when(body.first_scanned_at)],
      ["Issued", when(body.issued_at)],
    ]));
}

async function runPhoto(action) {
  if (state.photoBusy) return;
  const result = $("#photo-result");
  const payload = $("#photo-payload").value.trim();
  if (!state.photoFile && !(action === "verify" && payload)) {
    result.replaceChildren(status(action === "verify"
      ? "Choose a photo of the authenticity code, or paste the code's text."
      : "Choose a photo first.", "error"));
    return;
  }
  const form = new FormData();
  if (state.photoFile) form.append("image", state.photoFile, state.photoFile.name || "photo");
  if (action === "verify") {
    if (payload) form.append("payload", payload);
    form.append("scanned_by", currentUser() || "storefront");
  } else {
    form.append("k", action === "identify" ? "5" : "8");
    const category = $("#photo-category").value;
    if (category) form.append("category", category);
  }
  const buttons = document.querySelectorAll(".actions button");
  state.photoBusy = true;
  buttons.forEach((button) => { button.disabled = true; });
  result.setAttribute("aria-busy", "true");
  const working = { identify: "Identifying…", search: "Searching the catalog…", verify: "Verifying…" };
  result.replaceChildren(status(working[action], "loading"));
  try {
    const body = await call(API[action], { form });
    result.replaceChildren({ identify: renderIdentified, search: renderSearch, verify: renderVerdict }[action](body));
  } catch (err) {
    result.replaceChildren(status(errorText(err), "error", "photo-error"));
  } finally {
    state.photoBusy = false;
    buttons.forEach((button) => { button.disabled = false; });
    result.removeAttribute("aria-busy");
  }
}

function setUpPhoto() {
  const input = $("#photo-input");
  const zone = $("#dropzone");
  input.addEventListener("change", () => choosePhoto(input.files[0]));
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("dragover");
    });
  }
  for (const type of ["dragleave", "drop"]) zone.addEventListener(type, () => zone.classList.remove("dragover"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    choosePhoto(event.dataTransfer.files[0]);
  });
  // A photo dropped beside the zone must not replace the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
  document.querySelector(".actions").addEventListener("click", (event) => {
    const button = event.target.closest("[data-action]");
    if (button) runPhoto(button.dataset.action);
  });
}

// ------------------------------------------------------------------ start

/** The catalog's categories into both pickers (the fullest first); without them only "All categories". */
async function loadCategories() {
  let body;
  try {
    body = await call(API.categories, { anonymous: true });
  } catch (err) {
    console.warn(`the categories could not be loaded: ${errorText(err)}`); // the shop still shows everything
    return;
  }
  for (const c of body.categories) CATEGORY.set(c.name, { products: c.products, zh: c.name_zh });
  for (const select of [$("#shop-category"), $("#photo-category")]) {
    const chosen = select.value;
    select.replaceChildren(select.options[0], ...body.categories.map((c) => h("option", {
      value: c.name, testid: "category-option",
      text: `${categoryLabel(c.name)}${c.name_zh ? ` · ${c.name_zh}` : ""} (${c.products})`,
    })));
    select.value = chosen;
  }
}

function start() {
  loadCategories();
  $("#shop-category").addEventListener("change", loadShop);
  $("#shop-sort").addEventListener("change", loadShop);
  $("#foryou-form").addEventListener("submit", (event) => {
    event.preventDefault();
    loadForYou();
  });
  $("#foryou-strategy").addEventListener("change", loadForYou);
  $("#user-id").addEventListener("change", () => {
    state.forYouLoaded = false;
    if (!$("#panel-foryou").hidden) loadForYou();
    if (state.chatSession) resetChat(`New conversation as ${currentUser() || "a guest"}.`);
  });
  $("#foryou-user").textContent = currentUser();
  setUpTabs();
  setUpDetail();
  setUpChat();
  setUpPhoto();
  showTab(location.hash.slice(1));
}

start();
