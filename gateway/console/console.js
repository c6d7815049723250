// ShopAI staff console: plain JavaScript over the gateway's staff REST routes (docs/api.md, "Staff console").
//
// Staff sign in with an API key: it is kept in this tab's session storage only and sent as X-API-Key on every
// call; the gateway's route policy decides what the key's roles allow, and a refusal shows its problem detail.
// Every text that comes from the API is put into the page with textContent / text nodes (the h() and s()
// helpers below), never parsed as HTML. Charts are SVG elements drawn here (the Content-Security-Policy allows
// scripts and styles from this origin only).
"use strict";

// Every REST route this page calls. tests/unit/test_gateway_console.py checks that each one exists in the
// gateway with this method: call the API only through these entries.
const API = Object.freeze({
  handoffs: { method: "GET", path: "/v1/support/handoffs" },
  handoff: { method: "GET", path: "/v1/support/handoffs/{handoff_id}" },
  claimHandoff: { method: "POST", path: "/v1/support/handoffs/{handoff_id}/claim" },
  replyHandoff: { method: "POST", path: "/v1/support/handoffs/{handoff_id}/messages" },
  closeHandoff: { method: "POST", path: "/v1/support/handoffs/{handoff_id}/close" },
  alerts: { method: "GET", path: "/v1/admin/alerts" },
  acknowledgeAlert: { method: "POST", path: "/v1/admin/alerts/{alert_id}/acknowledge" },
  deadLetters: { method: "GET", path: "/v1/admin/dead-letters" },
  deadLetter: { method: "GET", path: "/v1/admin/dead-letters/{letter_id}" },
  replayDeadLetters: { method: "POST", path: "/v1/admin/dead-letters/replay" },
  models: { method: "GET", path: "/v1/admin/models" },
  serveModel: { method: "POST", path: "/v1/admin/models/{service}/{version}/serve" },
  experiments: { method: "GET", path: "/v1/admin/experiments" },
  experiment: { method: "GET", path: "/v1/admin/experiments/{experiment_id}" },
  createExperiment: { method: "POST", path: "/v1/admin/experiments" },
  stopExperiment: { method: "POST", path: "/v1/admin/experiments/{experiment_id}/stop" },
  recommendationAnalytics: { method: "GET", path: "/v1/analytics/recommendations" },
  issueCodes: { method: "POST", path: "/v1/vision/codes" },
  revokeCodes: { method: "POST", path: "/v1/vision/codes/revocations" },
  codeScans: { method: "GET", path: "/v1/vision/codes/{serial}/scans" },
  segments: { method: "GET", path: "/v1/analytics/segments" },
  funnel: { method: "GET", path: "/v1/analytics/funnel" },
  cohorts: { method: "GET", path: "/v1/analytics/cohorts" },
  forecastChart: { method: "GET", path: "/v1/forecasts/{product_id}/chart" },
  pricing: { method: "GET", path: "/v1/pricing/{product_id}" },
});

// The topics whose consumers dead-letter (services/common/deadletters.py DLQ_TOPICS, without ".dlq").
const DEAD_LETTER_TOPICS = [
  "catalog.products.v1", "shop.interactions.v1", "orders.v1", "inventory.v1", "vision.codes.v1", "privacy.v1",
  "handoffs.v1", "alerts.v1", "recommendations.served.v1",
];
// The recommender's strategies (services/common/recommendations.py STRATEGIES).
const STRATEGIES = ["hybrid", "popular", "trending", "user_knn", "item_knn", "als", "bpr", "content"];

const TABS = ["support", "alerts", "deadletters", "models", "experiments", "codes", "analytics"];
const SUPPORT_POLL_MS = 3000; // the inbox and the open conversation are read again this often
const KEY_STORAGE = "shopai.console.key";

const state = {
  key: storedKey(),
  tab: "",
  loaded: new Set(), // sections loaded since sign-in (a tab shown again is not reloaded; Refresh reloads)
  supportPoll: 0, supportSeq: 0, supportShown: "", handoffId: "", handoffSeq: 0, handoffBusy: false, handoffShown: "",
  alertsNext: "",
  modelsMetric: new Map(), // service -> the metric its chart shows
  experimentId: "",
};

function storedKey(value = undefined) {
  try {
    if (value === undefined) return sessionStorage.getItem(KEY_STORAGE) || "";
    if (value) sessionStorage.setItem(KEY_STORAGE, value);
    else sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    // no storage: the key lasts as long as the page
  }
  return value || "";
}

// ------------------------------------------------------------------ small helpers


const percent = (value, digits = 1) =>
  typeof value === "number" && Number.isFinite(value) ? `${(value * 100).toFixed(digits)}%` : "—";

function when(stamp) {
  if (!stamp) return "—";
  const date = new Date(stamp);
  return Number.isNaN(date.getTime()) ? String(stamp) : date.toLocaleString();
}

function setStatus(node, text, kind = "") {
  node.className = `status ${kind}`.trim();
  node.setAttribute("role", kind === "error" ? "alert" : "status");
  node.textContent = text;
}

/** A table: headers, and rows of cells (text or nodes); each row may carry props. */
function table(headers, rows, props = {}) {
  return h("table", { class: "data", ...props },
    h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col", text: name })))),
    h("tbody", {}, rows.map((row) => {
      const [cells, rowProps] = Array.isArray(row) ? [row, {}] : [row.cells, row.props || {}];
      return h("tr", rowProps, cells.map((cell) => h("td", {}, cell)));
    })));
}

const badge = (text, kind = "", testid = undefined) => h("span", { class: `badge ${kind}`.trim(), text, testid });

// ------------------------------------------------------------------ the REST API

/** Calls one API route with the staff key; answers the JSON body, throws ApiError with the problem's detail.
 * A 401 (the key is not valid any more) signs the page out. */
async function call(route, { params, query, json } = {}) {
  const init = { method: route.method, headers: { Accept: "application/json", "X-API-Key": state.key } };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(apiUrl(route, params, query), init);
  } catch (err) {
    throw new ApiError(0, "Network error", `the gateway did not answer (${err.message})`);
  }
  if (!response.ok) {
    const problem = await problemOf(response);
    if (response.status === 401) signOut(`Signed out: ${problem.text}`);
    throw problem;
  }
  return response.json();
}

/** Runs a section's loader: a "loading" note while it runs, the problem's text (role=alert) when it fails. */
async function load(note, work, loadingText = "Loading…") {
  setStatus(note, loadingText, "loading");
  try {
    const text = await work();
    setStatus(note, text || "");
  } catch (err) {
    setStatus(note, errorText(err), "error");
  }
}

// ------------------------------------------------------------------ charts (SVG)

/** A line chart: series of {label, class, points: [[x, y]]} (x numbers or Date), an optional band
 * {class, points: [[x, lo, hi]]}, axis labels; null values break the line. */
function lineChart({ series, band = null, xLabel = "", yLabel = "", xFormat = String, title = "", testid }) {
  const width = 640;
  const height = 240;
  const pad = { left: 48, right: 12, top: 14, bottom: 34 };
  const xs = [];
  const ys = [0];
  for (const line of series) for (const [x, y] of line.points) { xs.push(+x); if (y !== null) ys.push(y); }
  if (band) for (const [x, lo, hi] of band.points) { xs.push(+x); if (lo !== null) ys.push(lo); if (hi !== null) ys.push(hi); }
  if (!xs.length) return status("No data to draw yet.", "", testid ? `${testid}-empty` : undefined);
  const xMin = Math.min(...xs);
  const xMax = Math.max(...xs);
  const yMax = Math.max(...ys) || 1;
  const yMin = Math.min(...ys);
  const px = (x) => pad.left + (xMax === xMin ? 0.5 : (+x - xMin) / (xMax - xMin)) * (width - pad.left - pad.right);
  const py = (y) => height - pad.bottom - ((y - yMin) / (yMax - yMin || 1)) * (height - pad.top - pad.bottom);
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": title, testid },
    s("title", { text: title }));
  for (const tick of [yMin, (yMin + yMax) / 2, yMax]) {
    svg.append(s("line", { class: "grid", x1: pad.left, x2: width - pad.right, y1: py(tick), y2: py(tick) }),
      s("text", { class: "tick", x: pad.left - 6, y: py(tick) + 4, "text-anchor": "end", text: number(tick, 2) }));
  }
  if (xs.length) {
    for (const x of [xMin, xMax]) {
      svg.append(s("text", { class: "tick", x: px(x), y: height - pad.bottom + 16,
        "text-anchor": x === xMin ? "start" : "end", text: xFormat(x) }));
    }
  }
  if (band && band.points.length) {
    const good = band.points.filter(([, lo, hi]) => lo !== null && hi !== null);
    const upper = good.map(([x, , hi]) => `${px(x)},${py(hi)}`);
    const lower = good.slice().reverse().map(([x, lo]) => `${px(x)},${py(lo)}`);
    svg.append(s("polygon", { class: `band ${band.class || ""}`, points: [...upper, ...lower].join(" ") }));
  }
  for (const line of series) {
    let path = "";
    let pen = "M";
    for (const [x, y] of line.points) {
      if (y === null) { pen = "M"; continue; }
      path += `${pen}${px(x).toFixed(1)},${py(y).toFixed(1)} `;
      pen = "L";
    }
    svg.append(s("path", { class: `line ${line.class || ""}`, d: path.trim() }));
    for (const [x, y, mark] of line.points) {
      if (y !== null && (line.dots || mark)) {
        svg.append(s("circle", { class: `dot ${mark ? "marked" : ""} ${line.class || ""}`, cx: px(x), cy: py(y),
          r: mark ? 5 : 3.5 }, s("title", { text: `${xFormat(x)}: ${number(y, 4)}` })));
      }
    }
  }
  svg.append(s("text", { class: "axis", x: width / 2, y: height - 4, "text-anchor": "middle", text: xLabel }),
    s("text", { class: "axis", x: 12, y: height / 2, "text-anchor": "middle",
      transform: `rotate(-90 12 ${height / 2})`, text: yLabel }));
  const legend = h("ul", { class: "legend" }, series.map((line) => h("li", { class: line.class || "", text: line.label })),
    band ? h("li", { class: `band ${band.class || ""}`, text: band.label }) : null);
  return h("figure", { class: "chart-box" }, svg, legend);
}

/** Horizontal bars: [{label, value, note}] scaled to the largest value. */
function barChart(bars, { title, testid, format = (v) => number(v) }) {
  const width = 640;
  const row = 28;
  const left = 150;
  const height = bars.length * row + 8;
  const max = Math.max(...bars.map((bar) => bar.value), 0) || 1;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart bars", role: "img", "aria-label": title, testid },
    s("title", { text: title }));
  bars.forEach((bar, i) => {
    const y = 4 + i * row;
    const w = Math.max(1, (bar.value / max) * (width - left - 230)); // room for the note after the bar
    svg.append(s("text", { class: "tick", x: left - 8, y: y + 17, "text-anchor": "end", text: bar.label }),
      s("rect", { class: "bar", x: left, y: y + 3, width: w, height: row - 8, rx: 3 }),
      s("text", { class: "tick", x: left + w + 6, y: y + 17, text: bar.note || format(bar.value) }));
  });
  return h("figure", { class: "chart-box" }, svg);
}

// ------------------------------------------------------------------ sign-in and tabs

function signedIn() {
  return Boolean(state.key);
}

function showSignedIn() {
  const inside = signedIn();
  $("#signin").hidden = inside;
  $(".tabs").hidden = !inside;
  $("#who").hidden = !inside;
  $("#who-key").textContent = inside ? `Signed in with key …${state.key.slice(-4)}` : "";
  if (inside) showTab(location.hash.slice(1));
  else {
    for (const tab of TABS) $(`#panel-${tab}`).hidden = true;
    $("#signin-key").focus();
  }
}

async function signIn(key) {
  state.key = storedKey(key.trim());
  state.loaded.clear();
  const note = $("#signin-status");
  setStatus(note, "Checking the key…", "loading");
  try {
    // Every route answers 401 to a key that is not valid, before anything else; this one is cheap. Any other
    // answer means the gateway took the key: 403 (no support role) or a service that is down, say.
    await call(API.handoffs, { query: { limit: 1 } });
  } catch (err) {
    if (!signedIn()) return; // 401: signOut showed why
    if (!err.status) { setStatus(note, errorText(err), "error"); state.key = storedKey(""); return; }
  }
  setStatus(note, "");
  $("#signin-key").value = "";
  showSignedIn();
}

function signOut(reason = "") {
  state.key = storedKey("");
  state.loaded.clear();
  stopSupportPoll();
  showSignedIn();
  setStatus($("#signin-status"), reason, reason ? "error" : "");
}

const LOADERS = {
  support: () => loadHandoffs(),
  alerts: () => loadAlerts(),
  deadletters: () => loadDeadLetters(),
  models: () => loadModels(),
  experiments: () => { loadExperiments(); loadAttribution(); },
  codes: () => {},
  analytics: () => { loadSegments(); loadFunnel(); loadCohorts(); },
};

function showTab(name, focus = false) {
  const active = TABS.includes(name) ? name : "support";
  state.tab = active;
  for (const tab of TABS) {
    const button = $(`#tab-${tab}`);
    button.setAttribute("aria-selected", String(tab === active));
    button.tabIndex = tab === active ? 0 : -1;
    $(`#panel-${tab}`).hidden = tab !== active;
  }
  if (focus) $(`#tab-${active}`).focus();
  if (location.hash !== `#${active}`) history.replaceState(null, "", `#${active}`);
  if (active === "support") startSupportPoll(); else stopSupportPoll();
  if (!state.loaded.has(active)) {
    state.loaded.add(active);
    LOADERS[active]();
  }
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
  window.addEventListener("hashchange", () => { if (signedIn()) showTab(location.hash.slice(1)); });
  $("#signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("#signin-key").value;
    if (key.trim()) signIn(key);
  });
  $("#sign-out").addEventListener("click", () => signOut());
}

// ------------------------------------------------------------------ support

function startSupportPoll() {
  if (state.supportPoll) return;
  state.supportPoll = setTimeout(pollSupport, SUPPORT_POLL_MS);
}

function stopSupportPoll() {
  clearTimeout(state.supportPoll);
  state.supportPoll = 0;
}

async function pollSupport() {
  state.supportPoll = 0;
  if (!signedIn() || state.tab !== "support") return;
  await loadHandoffs(true);
  if (state.handoffId && !state.handoffBusy) await loadHandoff(state.handoffId, true);
  if (signedIn() && state.tab === "support" && !state.supportPoll) {
    state.supportPoll = setTimeout(pollSupport, SUPPORT_POLL_MS);
  }
}

function handoffSummary(item) {
  const said = (item.transcript || []).filter((turn) => turn.role === "user").map((turn) => turn.text);
  return said.length ? said[said.length - 1] : "(no message)";
}

async function loadHandoffs(quiet = false) {
  const seq = ++state.supportSeq;
  const note = $("#support-status");
  const list = $("#support-list");
  const choice = $("#support-state").value;
  if (!quiet) setStatus(note, "Loading the inbox…", "loading");
  try {
    const body = await call(API.handoffs, { query: { state: choice === "active" ? "" : choice, limit: 100 } });
    if (seq !== state.supportSeq) return;
    const items = body.handoffs.filter((item) => choice !== "active" || item.state !== "closed");
    const signature = JSON.stringify([state.handoffId, items.map((item) => [item.handoff_id, item.state, item.claimed_by])]);
    if (quiet && signature === state.supportShown) return; // nothing new: the list stays as it is
    state.supportShown = signature;
    list.replaceChildren(...items.map((item) => h("li", {},
      h("button", {
        type: "button", class: `row-button ${item.handoff_id === state.handoffId ? "current" : ""}`,
        testid: "handoff-item", "data-handoff-id": item.handoff_id, "data-session-id": item.session_id, "aria-current": item.handoff_id === state.handoffId ? "true" : null,
        onclick: () => openHandoff(item.handoff_id),
      },
      h("span", { class: "row-head" }, badge(item.state, `state-${item.state}`, "handoff-state"),
        h("span", { class: "muted", text: when(item.created_at) })),
      h("span", { class: "row-title", testid: "handoff-summary", text: handoffSummary(item) }),
      h("span", { class: "muted small",
        text: `${item.user_id ? `shopper ${item.user_id}` : "not signed in"} · ${item.reason || "handed over"}`
          + ` · last intent ${item.last_intent || "—"}${item.claimed_by ? ` · ${item.claimed_by}` : ""}` })))));
    setStatus(note, items.length ? `${items.length} conversation${items.length === 1 ? "" : "s"}, newest first`
      : "No conversations waiting for a person.");
  } catch (err) {
    if (seq !== state.supportSeq) return;
    setStatus(note, errorText(err), "error");
  }
}

function openHandoff(id) {
  state.handoffId = id;
  for (const button of document.querySelectorAll('[data-testid="handoff-item"]')) {
    const current = button.dataset.handoffId === id;
    button.classList.toggle("current", current);
    if (current) button.setAttribute("aria-current", "true"); else button.removeAttribute("aria-current");
  }
  loadHandoff(id);
}

async function loadHandoff(id, quiet = false) {
  const seq = ++state.handoffSeq;
  const pane = $("#support-detail");
  if (!quiet) pane.replaceChildren(status("Loading the conversation…", "loading"));
  let item;
  try {
    item = await call(API.handoff, { params: { handoff_id: id } });
  } catch (err) {
    if (seq === state.handoffSeq && !quiet) pane.replaceChildren(status(errorText(err), "error", "handoff-error"));
    return;
  }
  if (seq !== state.handoffSeq || state.handoffId !== id) return;
  const signature = JSON.stringify([item.state, item.claimed_by, item.closed_by, item.message_count, (item.messages || []).length]);
  if (quiet && signature === state.handoffShown && $("#handoff-status")) return; // nothing new: keep what the agent types
  state.handoffShown = signature;
  const draft = $("#handoff-reply") ? $("#handoff-reply").value : "";
  const hadFocus = document.activeElement && document.activeElement.id === "handoff-reply";
  const closed = item.state === "closed";
  const turns = [
    ...(item.transcript || []).map((turn) => ({ role: turn.role === "user" ? "user" : "bot", text: turn.text, label: turn.role === "user" ? "Shopper" : "Assistant" })),
    { role: "note", text: `Handed over: ${item.reason || "asked for a person"} (intent ${item.last_intent || "—"})`, label: "" },
    ...(item.messages || []).map((m) => ({ role: m.role === "agent" ? "agent" : "user", text: m.text,
      label: m.role === "agent" ? `Agent ${m.agent}` : "Shopper", at: m.at })),
  ];
  pane.replaceChildren(
    h("div", { class: "toolbar" },
      h("h2", { text: item.user_id ? `Conversation with ${item.user_id}` : "Conversation with a guest" }),
      badge(item.state, `state-${item.state}`, "handoff-detail-state")),
    facts([
      ["Opened", when(item.created_at)],
      ["Language", item.language || "—"],
      item.claimed_by ? ["Claimed by", `${item.claimed_by} at ${when(item.claimed_at)}`] : null,
      item.closed_by ? ["Closed by", `${item.closed_by} at ${when(item.closed_at)}`] : null,
    ]),
    h("ol", { class: "transcript", testid: "handoff-transcript", "aria-label": "Transcript" },
      turns.map((turn) => h("li", { class: `bubble ${turn.role}`, testid: `turn-${turn.role}` },
        turn.label ? h("p", { class: "meta", text: turn.at ? `${turn.label} · ${when(turn.at)}` : turn.label }) : null,
        h("p", { class: "text", text: turn.text })))),
    closed ? status("Closed: the assistant answers this shopper again.", "", "handoff-closed") : h("div", {},
      h("form", { class: "reply-form", onsubmit: (event) => { event.preventDefault(); replyHandoff(id); } },
        h("label", { for: "handoff-reply", text: "Reply to the shopper" }),
        h("textarea", { id: "handoff-reply", rows: "3", maxlength: "2000", required: true, testid: "handoff-reply" }),
        h("div", { class: "actions" },
          item.state === "open" ? h("button", { type: "button", testid: "handoff-claim", onclick: () => handoffAction(API.claimHandoff, id, "Claimed.") , text: "Claim" }) : null,
          h("button", { type: "submit", testid: "handoff-send", text: "Send reply" }),
          h("button", { type: "button", class: "secondary", testid: "handoff-close",
            onclick: () => handoffAction(API.closeHandoff, id, "Closed: the assistant answers again."), text: "Close conversation" })))),
    h("p", { id: "handoff-status", class: "status", role: "status", testid: "handoff-status" }),
  );
  if (!closed && draft) $("#handoff-reply").value = draft;
  if (hadFocus && $("#handoff-reply")) $("#handoff-reply").focus();
}

async function handoffAction(route, id, done, json = undefined) {
  state.handoffBusy = true;
  const note = () => $("#handoff-status");
  if (note()) setStatus(note(), "Sending…", "loading");
  try {
    await call(route, { params: { handoff_id: id }, json });
    await loadHandoff(id, true);
    if (note()) setStatus(note(), done);
    loadHandoffs(true);
    return true;
  } catch (err) {
    if (note()) setStatus(note(), errorText(err), "error");
    return false;
  } finally {
    state.handoffBusy = false;
  }
}

async function replyHandoff(id) {
  const box = $("#handoff-reply");
  const text = box.value.trim();
  if (!text) return;
  box.value = "";
  if (!await handoffAction(API.replyHandoff, id, "Sent: the shopper's chat shows it.", { text })) {
    if ($("#handoff-reply") && !$("#handoff-reply").value) $("#handoff-reply").value = text;
  }
}

// ------------------------------------------------------------------ alerts

function alertFacts(alert) {
  const p = alert.payload || {};
  const parts = [];
  for (const key of ["product_id", "serial", "batch", "verdict", "on_hand", "reorder_point", "model_version", "reason"]) {
    if (p[key] !== undefined && p[key] !== "" && p[key] !== null) parts.push(`${key.replace(/_/g, " ")}: ${p[key]}`);
  }
  if (Array.isArray(p.reasons) && p.reasons.length) parts.push(p.reasons.join("; "));
  return parts.join(" · ") || JSON.stringify(p);
}

async function loadAlerts(more = false) {
  const note = $("#alerts-status");
  const box = $("#alerts-list");
  await load(note, async () => {
    const body = await call(API.alerts, { query: {
      state: $("#alerts-state").value, type: $("#alerts-type").value, limit: 50, before: more ? state.alertsNext : "",
    } });
    state.alertsNext = body.next || "";
    const rows = body.alerts.map((alert) => ({
      props: { testid: "alert-row", "data-alert-id": alert.alert_id, "data-type": alert.type },
      cells: [
        h("span", { testid: "alert-type", text: alert.type.replace(/^alert\./, "").replace(/_/g, " ") }),
        when(alert.occurred_at), alert.source, alert.subject || "—",
        h("span", { class: "small", text: alertFacts(alert) }),
        alert.state === "open"
          ? h("button", { type: "button", testid: "alert-acknowledge", onclick: (event) => acknowledge(alert, event.target),
            text: "Acknowledge" })
          : badge(`acknowledged ${when(alert.acknowledged_at)} by ${alert.acknowledged_by}`, "state-closed", "alert-acknowledged"),
      ],
    }));
    const older = state.alertsNext
      ? h("button", { type: "button", class: "secondary", testid: "alerts-more", onclick: () => loadAlerts(true), text: "Older alerts" })
      : null;
    box.replaceChildren(rows.length ? table(["Type", "When", "Source", "About", "Details", "State"], rows) : "", older || "");
    return rows.length ? `${rows.length} alert${rows.length === 1 ? "" : "s"}, newest first` : "No alerts here.";
  }, "Loading the alerts…");
}

async function acknowledge(alert, button) {
  button.disabled = true;
  const note = $("#alerts-status");
  try {
    const done = await call(API.acknowledgeAlert, { params: { alert_id: alert.alert_id } });
    button.replaceWith(badge(`acknowledged ${when(done.acknowledged_at)} by ${done.acknowledged_by}`, "state-closed", "alert-acknowledged"));
    setStatus(note, `Acknowledged: ${alert.type}.`);
  } catch (err) {
    button.disabled = false;
    setStatus(note, errorText(err), "error");
  }
}

// ------------------------------------------------------------------ dead letters

async function loadDeadLetters() {
  const note = $("#deadletters-status");
  const box = $("#deadletters-list");
  await load(note, async () => {
    const body = await call(API.deadLetters, { query: { topic: $("#deadletters-topic").value, limit: 100 } });
    const rows = body.dead_letters.map((letter) => ({
      props: { testid: "deadletter-row", "data-letter-id": letter.id },
      cells: [
        when(letter.failed_at), h("code", { text: letter.topic }), letter.consumer_group,
        letter.event_type || "—",
        h("span", { class: "small", testid: "deadletter-reason", text: `${letter.error_type}: ${letter.reason}` }),
        letter.replayed ? badge(`replayed ${when(letter.replayed.at)}`, "state-closed") : badge("waiting", "state-open"),
        h("button", { type: "button", class: "secondary", testid: "deadletter-show", onclick: () => showDeadLetter(letter.id),
          text: "Show" }),
      ],
    }));
    box.replaceChildren(rows.length ? table(["Failed", "Topic", "Consumer", "Event", "Reason", "Replay", ""], rows) : "");
    return `${body.total} dead letter${body.total === 1 ? "" : "s"}${rows.length < body.total ? ` (newest ${rows.length} shown)` : ""}`;
  }, "Loading the dead letters…");
}

async function showDeadLetter(id) {
  const pane = $("#deadletters-detail");
  pane.hidden = false;
  pane.replaceChildren(status("Loading the letter…", "loading"));
  let letter;
  try {
    letter = await call(API.deadLetter, { params: { letter_id: id } });
  } catch (err) {
    pane.replaceChildren(status(errorText(err), "error", "deadletter-error"));
    return;
  }
  const force = h("input", { type: "checkbox", id: "replay-force", testid: "replay-force" });
  const note = status("", "", "replay-status");
  pane.replaceChildren(
    h("h2", { text: `Dead letter ${letter.id}` }),
    facts([
      ["From", `${letter.topic} partition ${letter.partition}, offset ${letter.offset}`],
      ["Consumer", letter.consumer_group],
      ["Failed", when(letter.failed_at)],
      ["Reason", `${letter.error_type}: ${letter.reason}`],
      ["Event", `${letter.event_type || "—"} ${letter.event_id || ""}`],
      letter.replayed ? ["Replayed", `${when(letter.replayed.at)} by ${letter.replayed.by} to offset ${letter.replayed.offset}`] : null,
    ]),
    h("pre", { class: "json", testid: "deadletter-event", tabindex: "0", "aria-label": "The original event",
      text: letter.event !== null && letter.event !== undefined ? JSON.stringify(letter.event, null, 2) : (letter.event_base64 || "") }),
    h("div", { class: "actions" },
      h("label", { class: "inline" }, force, "Replay again (replayed before, or older than the de-duplication window)"),
      h("button", { type: "button", testid: "deadletter-replay", onclick: () => replay(letter.id, force.checked, note), text: "Replay" })),
    note);
  pane.scrollIntoView({ block: "nearest" });
}

async function replay(id, force, note) {
  setStatus(note, "Replaying…", "loading");
  try {
    const body = await call(API.replayDeadLetters, { json: { ids: [id], force } });
    const done = body.replayed.map((r) => `${r.topic} offset ${r.offset}`).join(", ");
    setStatus(note, `Replayed to ${done}: a consumer that still cannot process it dead-letters it again with the new reason.`);
    loadDeadLetters();
  } catch (err) {
    setStatus(note, errorText(err), "error");
  }
}

// ------------------------------------------------------------------ models

function modelChart(service, versions) {
  const names = [...new Set(versions.flatMap((v) => Object.keys(v.metrics || {})))].sort();
  if (!names.length) return status("No metrics recorded for these versions.", "muted");
  const metric = names.includes(state.modelsMetric.get(service)) ? state.modelsMetric.get(service) : names[0];
  const ordered = versions.slice().reverse(); // oldest first
  const points = ordered.map((v, i) => [i, typeof v.metrics[metric] === "number" ? v.metrics[metric] : null, v.serving]);
  const select = h("select", { testid: "model-metric", "aria-label": `${service} metric` },
    names.map((name) => h("option", { value: name, text: name, selected: name === metric })));
  const box = h("div", { class: "model-chart", testid: "model-chart" },
    h("label", { class: "inline" }, "Metric ", select),
    lineChart({
      series: [{ label: `${metric} per version (serving one circled)`, class: "metric", points, dots: true }],
      xLabel: "version, oldest → newest", yLabel: metric, title: `${service}: ${metric} across versions`,
      xFormat: (i) => ordered[Math.round(i)] ? ordered[Math.round(i)].model_version : "", testid: "model-chart-svg",
    }));
  select.addEventListener("change", () => {
    state.modelsMetric.set(service, select.value);
    box.replaceWith(modelChart(service, versions));
  });
  return box;
}

async function loadModels() {
  const note = $("#models-status");
  const box = $("#models-list");
  await load(note, async () => {
    const body = await call(API.models);
    const services = [...new Set(body.models.map((m) => m.service))];
    box.replaceChildren(
      ...services.map((service) => {
        const versions = body.models.filter((m) => m.service === service);
        return h("section", { class: "card-panel", testid: "model-service", "data-service": service },
          h("h2", { text: service }),
          table(["Version", "Trained", "Metrics", "Quality gate", ""], versions.map((v) => ({
            props: { testid: "model-row", "data-version": v.model_version, class: v.serving ? "serving" : "" },
            cells: [
              h("code", { text: v.model_version }), when(v.trained_at),
              h("span", { class: "small", text: Object.entries(v.metrics || {}).map(([k, x]) => `${k} ${number(x, 4)}`).join(" · ") || "—" }),
              h("span", { class: "small", text: v.gate_reason || v.gate || "—" }),
              v.serving
                ? badge("serving", "state-ok", "model-serving")
                : v.stored
                  ? h("button", { type: "button", testid: "model-serve", onclick: (event) => serve(v, event.target),
                    text: "Serve this version" })
                  : badge("not stored", ""),
            ],
          }))),
          modelChart(service, versions));
      }),
      ...body.unavailable.map((u) => status(`${u.service} could not be asked: ${u.detail}`, "error", "model-unavailable")));
    return `${body.models.length} version${body.models.length === 1 ? "" : "s"} in ${services.length} service${services.length === 1 ? "" : "s"}`;
  }, "Loading the models…");
}

async function serve(version, button) {
  button.disabled = true;
  const note = $("#models-status");
  try {
    await call(API.serveModel, { params: { service: version.service, version: version.model_version } });
    await loadModels();
    setStatus(note, `${version.service} now serves ${version.model_version}.`);
  } catch (err) {
    button.disabled = false;
    setStatus(note, errorText(err), "error");
  }
}

// ------------------------------------------------------------------ experiments

function armText(arm) {
  return `${arm.name}: ${arm.strategy}${arm.model_version ? ` ${arm.model_version}` : ""}`;
}

async function loadExperiments() {
  const note = $("#experiments-status");
  const box = $("#experiments-list");
  await load(note, async () => {
    const body = await call(API.experiments);
    const rows = body.experiments.map((x) => ({
      props: { testid: "experiment-row", "data-experiment-id": x.experiment_id },
      cells: [
        h("button", { type: "button", class: "link", testid: "experiment-open", onclick: () => openExperiment(x.experiment_id), text: x.name }),
        (x.arms || []).map(armText).join(" vs "), (x.split || []).join(" / "),
        badge(x.status, x.status === "running" ? "state-ok" : "state-closed", "experiment-status"), when(x.started_at),
      ],
    }));
    box.replaceChildren(rows.length ? table(["Name", "Arms", "Split (%)", "Status", "Started"], rows) : "");
    return rows.length ? `${rows.length} experiment${rows.length === 1 ? "" : "s"}, newest first` : "No experiments yet.";
  }, "Loading the experiments…");
}

async function createExperiment() {
  const note = $("#experiment-form-status");
  const arm = (name, side) => {
    const version = $(`#arm-${side}-version`).value.trim();
    return { name, strategy: $(`#arm-${side}-strategy`).value, ...(version ? { model_version: version } : {}) };
  };
  const share = Number($("#experiment-split").value);
  setStatus(note, "Starting…", "loading");
  try {
    const made = await call(API.createExperiment, { json: {
      name: $("#experiment-name").value.trim(), arms: [arm("A", "a"), arm("B", "b")], split: [share, 100 - share],
    } });
    setStatus(note, `Started ${made.name}.`);
    await loadExperiments();
    openExperiment(made.experiment_id);
  } catch (err) {
    setStatus(note, errorText(err), "error");
  }
}

/** The difference B − A with its 95% interval, drawn on an axis through zero. */
function intervalChart(report) {
  const [lo, hi] = report.ci95 || [null, null];
  if (typeof lo !== "number" || typeof hi !== "number") return status("No interval yet: too few impressions.", "muted");
  const width = 640;
  const height = 70;
  const reach = Math.max(Math.abs(lo), Math.abs(hi), Math.abs(report.difference || 0)) * 1.2 || 0.01;
  const px = (v) => 20 + ((v + reach) / (2 * reach)) * (width - 40);
  const title = `${report.metric} difference B − A: ${percent(report.difference, 2)} (95% interval ${percent(lo, 2)} to ${percent(hi, 2)})`;
  return h("figure", { class: "chart-box" }, s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart interval-chart", role: "img", "aria-label": title, testid: "experiment-ci" },
    s("title", { text: title }),
    s("line", { class: "grid", x1: 20, x2: width - 20, y1: 35, y2: 35 }),
    s("line", { class: "zero", x1: px(0), x2: px(0), y1: 10, y2: 60 }),
    s("text", { class: "tick", x: px(0), y: 68, "text-anchor": "middle", text: "0" }),
    s("line", { class: "interval", x1: px(lo), x2: px(hi), y1: 35, y2: 35 }),
    s("circle", { class: "dot marked", cx: px(report.difference || 0), cy: 35, r: 5 }),
    s("text", { class: "tick", x: px(lo), y: 25, "text-anchor": hi - lo < reach / 4 ? "end" : "middle", text: percent(lo, 2) }),
    hi > lo ? s("text", { class: "tick", x: px(hi), y: 25, "text-anchor": hi - lo < reach / 4 ? "start" : "middle", text: percent(hi, 2) }) : null),
  h("figcaption", { text: title }));
}

async function openExperiment(id) {
  state.experimentId = id;
  const pane = $("#experiment-report");
  pane.hidden = false;
  pane.replaceChildren(status("Loading the report…", "loading"));
  let x;
  try {
    x = await call(API.experiment, { params: { experiment_id: id } });
  } catch (err) {
    pane.replaceChildren(status(errorText(err), "error", "experiment-error"));
    return;
  }
  const report = x.report || { arms: [] };
  const verdict = report.better ? `Arm ${report.better} is better on ${report.metric}.`
    : `No arm is better on ${report.metric || "click-through"} yet (the interval holds 0).`;
  pane.replaceChildren(
    h("div", { class: "toolbar" }, h("h2", { text: x.name }), badge(x.status, x.status === "running" ? "state-ok" : "state-closed"),
      x.status === "running" ? h("button", { type: "button", class: "secondary", testid: "experiment-stop", onclick: () => stopExperiment(id), text: "Stop" }) : null),
    table(["Arm", "Users", "Impressions", "Clicks", "Purchases", "Click-through", "Conversion"], report.arms.map((arm) => ({
      props: { testid: "experiment-arm" },
      cells: [arm.name, number(arm.users, 0), number(arm.impressions, 0), number(arm.clicks, 0), number(arm.purchases, 0),
        percent(arm.click_through, 2), percent(arm.conversion, 2)],
    }))),
    h("p", { testid: "experiment-verdict", text: verdict }),
    intervalChart(report),
    h("p", { id: "experiment-action", class: "status", role: "status" }));
}

async function stopExperiment(id) {
  try {
    await call(API.stopExperiment, { params: { experiment_id: id } });
    await loadExperiments();
    await openExperiment(id);
  } catch (err) {
    setStatus($("#experiment-action") || $("#experiments-status"), errorText(err), "error");
  }
}

async function loadAttribution() {
  const note = $("#attribution-status");
  const box = $("#attribution");
  await load(note, async () => {
    const body = await call(API.recommendationAnalytics);
    box.replaceChildren(body.rows.length ? table(
      ["Strategy", "Model version", "Impressions", "Clicks", "Added to cart", "Purchases", "Click-through", "Add-to-cart rate", "Conversion"],
      body.rows.map((r) => ({ props: { testid: "attribution-row" }, cells: [r.strategy, r.model_version || "—",
        number(r.impressions, 0), number(r.clicks, 0), number(r.add_to_cart, 0), number(r.purchases, 0),
        percent(r.click_through, 2), percent(r.add_to_cart_rate, 2), percent(r.conversion, 2)] }))) : "");
    return `${when(body.since)} to ${when(body.until)}${body.rows.length ? "" : ": no recommendations served"}`;
  }, "Loading the figures…");
}

// ------------------------------------------------------------------ codes

function codesResult(...children) {
  $("#codes-result").replaceChildren(...children);
}

async function issueCodes() {
  codesResult(status("Issuing…", "loading"));
  try {
    const body = await call(API.issueCodes, { json: {
      product_id: $("#issue-product").value.trim(), batch: $("#issue-batch").value.trim(),
      count: Number($("#issue-count").value) || 1,
    } });
    codesResult(
      h("h2", { text: `Issued ${body.codes.length} code${body.codes.length === 1 ? "" : "s"} for ${body.product_id}, batch ${body.batch}` }),
      facts([["Signing key", body.key_id], ["Issued", when(body.issued_at)]]),
      table(["QR code", "Serial", "Payload (verify accepts it)", ""], body.codes.map((code) => ({
        props: { testid: "issued-code", "data-serial": code.serial },
        cells: [
          code.png_base64 ? h("img", { class: "qr", src: `data:image/png;base64,${code.png_base64}`, alt: `QR code ${code.serial}`, width: "72", height: "72" }) : "—",
          h("code", { testid: "issued-serial", text: code.serial }),
          h("code", { class: "small wrap", testid: "issued-payload", text: code.payload }),
          h("span", { class: "actions" },
            h("button", { type: "button", class: "secondary", testid: "issued-scans", onclick: () => { $("#scans-serial").value = code.serial; codeScans(code.serial); }, text: "Scans" }),
            h("button", { type: "button", class: "secondary", testid: "issued-revoke", onclick: () => prepareRevoke("serial", code.serial), text: "Revoke…" })),
        ],
      }))));
  } catch (err) {
    codesResult(status(errorText(err), "error", "codes-error"));
  }
}

function prepareRevoke(scope, target) {
  document.querySelector(`input[name="revoke-scope"][value="${scope}"]`).checked = true;
  $("#revoke-target").value = target;
  $("#revoke-reason").focus();
}

async function revokeCodes() {
  const scope = document.querySelector('input[name="revoke-scope"]:checked').value;
  const target = $("#revoke-target").value.trim();
  const product = $("#revoke-product").value.trim();
  const json = { [scope]: target, reason: $("#revoke-reason").value.trim() };
  if (scope === "batch" && product) json.product_id = product;
  codesResult(status("Revoking…", "loading"));
  try {
    const body = await call(API.revokeCodes, { json });
    const r = body.revocation;
    codesResult(
      h("h2", { testid: "revocation-title", text: body.already_revoked ? "Already revoked: nothing changed" : "Revoked" }),
      facts([
        ["What", r.scope === "batch" ? `batch ${r.batch} of ${r.product_id}` : `serial ${r.serial} (${r.product_id}, batch ${r.batch})`],
        ["Codes covered", h("span", { testid: "revocation-codes", text: String(body.codes) })],
        ["Reason", r.reason], ["By", r.revoked_by || "—"], ["When", when(r.revoked_at)],
      ]),
      h("p", { class: "muted", text: "Verifying these codes now answers counterfeit, with this revocation." }));
  } catch (err) {
    codesResult(status(errorText(err), "error", "codes-error"));
  }
}

async function codeScans(serial) {
  codesResult(status("Loading the scan history…", "loading"));
  try {
    const body = await call(API.codeScans, { params: { serial }, query: { limit: 100 } });
    codesResult(
      h("h2", { text: `Scans of ${body.serial}` }),
      facts([
        ["Product, batch", `${body.product_id}, ${body.batch}`],
        ["Issued", when(body.issued_at)],
        ["Scans", h("span", { testid: "scans-count", text: `${body.scan_count} (${body.counted_scans} counted, ${body.places} place${body.places === 1 ? "" : "s"})` })],
        ["First and last", `${when(body.first_scanned_at)} – ${when(body.last_scanned_at)}`],
        ["Revoked", h("span", { testid: "scans-revoked", text: body.revoked ? `yes: ${body.revocation.reason} (${when(body.revocation.revoked_at)})` : "no" })],
      ]),
      body.scans.length ? table(["When", "Place", "Scanned by", "Client", "Trusted", "Counted"], body.scans.map((scan) => ({
        props: { testid: "scan-row" },
        cells: [when(scan.scanned_at), scan.place || "unknown", scan.scanned_by || "—", scan.client_id,
          scan.trusted ? "yes" : "no", scan.counted ? "yes" : "no"],
      }))) : status("Never scanned.", "", "scans-none"));
  } catch (err) {
    codesResult(status(errorText(err), "error", "codes-error"));
  }
}

// ------------------------------------------------------------------ analytics

const ANALYTICS_RETRIES = 5;

/** Fills an analytics panel. The service computes these answers in the background: a 503 with Retry-After
 * (the first request of new parameters, computing) is asked again then, a few times, before it is shown. */
async function panelLoad(box, work, loadingText, attempt = 0) {
  box.replaceChildren(status(loadingText, "loading"));
  try {
    box.replaceChildren(...await work());
  } catch (err) {
    if (err.status === 503 && err.retryAfter && attempt < ANALYTICS_RETRIES) {
      box.replaceChildren(status(`${loadingText} (being computed: asking again in ${err.retryAfter} s)`, "loading"));
      setTimeout(() => panelLoad(box, work, loadingText, attempt + 1), Math.min(err.retryAfter, 10) * 1000);
      return;
    }
    box.replaceChildren(status(errorText(err), "error", "analytics-error"));
  }
}

function money(amount, currency) {
  if (typeof amount !== "number" || !Number.isFinite(amount)) return "—";
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency: currency || "CNY", maximumFractionDigits: 0 }).format(amount);
  } catch {
    return `${amount.toFixed(0)} ${currency || ""}`.trim();
  }
}

function loadSegments() {
  return panelLoad($("#segments"), async () => {
    const body = await call(API.segments);
    if (!body.segments.length) return [status("No customers with purchases yet.")];
    return [
      h("p", { class: "muted", text: `${number(body.total_customers, 0)} customers, ${money(body.total_revenue, body.currency)} revenue, as of ${body.as_of}` }),
      barChart(body.segments.map((seg) => ({ label: seg.name.replace(/_/g, " "), value: seg.revenue_share,
        note: `${percent(seg.revenue_share, 0)} of revenue · ${seg.customers} customers` })),
      { title: "Revenue share per segment", testid: "segments-chart" }),
      table(["Segment", "Customers", "Revenue", "Recency (days)", "Orders", "Spend"], body.segments.map((seg) => ({
        props: { testid: "segment-row", title: seg.description },
        cells: [seg.name.replace(/_/g, " "), `${seg.customers} (${percent(seg.customer_share, 0)})`, money(seg.revenue, body.currency),
          number(seg.avg_recency_days, 0), number(seg.avg_frequency, 1), money(seg.avg_monetary, body.currency)],
      }))),
    ];
  }, "Loading the segments…");
}

function loadFunnel() {
  return panelLoad($("#funnel"), async () => {
    const body = await call(API.funnel);
    return [
      h("p", { class: "muted", text: `${body.from_date} to ${body.to_date}` }),
      barChart(body.steps.map((step) => ({ label: step.name.replace(/_/g, " "), value: step.users,
        note: `${number(step.users, 0)} shoppers · ${percent(step.conversion_from_start, 1)} of viewers` })),
      { title: "Shoppers reaching each step", testid: "funnel-chart" }),
      table(["Step", "Shoppers", "Events", "From the previous step"], body.steps.map((step) => ({
        props: { testid: "funnel-row" },
        cells: [step.name.replace(/_/g, " "), number(step.users, 0), number(step.events, 0), percent(step.conversion, 1)],
      }))),
    ];
  }, "Loading the funnel…");
}

function loadCohorts() {
  return panelLoad($("#cohorts"), async () => {
    const body = await call(API.cohorts, { query: { period: $("#cohorts-period").value } });
    if (!body.cohorts.length) return [status("No cohorts yet: no purchases in the range.")];
    const width = Math.max(...body.cohorts.map((c) => c.retention.length));
    const heat = (value) => `heat-${Math.min(5, Math.max(0, Math.ceil((value || 0) * 5)))}`;
    return [h("table", { class: "data cohorts", testid: "cohorts-table" },
      h("caption", { class: "muted", text: `Share of each ${body.period}'s new customers who bought again n ${body.period}s later` }),
      h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "Cohort" }), h("th", { scope: "col", text: "Customers" }),
        Array.from({ length: width }, (_, i) => h("th", { scope: "col", text: `+${i}` })))),
      h("tbody", {}, body.cohorts.map((c) => h("tr", { "data-testid": "cohort-row" },
        h("th", { scope: "row", text: c.cohort }), h("td", { text: String(c.size) }),
        Array.from({ length: width }, (_, i) => (i < c.retention.length
          ? h("td", { class: `heat ${heat(c.retention[i])}`, title: `${c.active[i]} of ${c.size}`, text: percent(c.retention[i], 0) })
          : h("td", { class: "heat empty" })))))))];
  }, "Loading the cohorts…");
}

function loadForecast() {
  const product = $("#forecast-product").value.trim();
  if (!product) return undefined;
  return panelLoad($("#forecast"), async () => {
    const body = await call(API.forecastChart, { params: { product_id: product }, query: { horizon: Number($("#forecast-horizon").value) || 28 } });
    const day = (text) => new Date(`${text}T00:00:00Z`).getTime();
    const fmt = (t) => new Date(t).toISOString().slice(0, 10);
    const history = body.history.dates.map((d, i) => [day(d), body.history.y[i]]);
    const forecast = body.forecast.dates.map((d, i) => [day(d), body.forecast.yhat[i]]);
    const band = body.forecast.dates.map((d, i) => [day(d), body.forecast.lower[i], body.forecast.upper[i]]);
    return [lineChart({
      series: [{ label: "units sold per day", class: "history", points: history },
        { label: "forecast", class: "forecast", points: forecast }],
      band: { label: body.interval_label, class: "forecast", points: band },
      xLabel: body.x, yLabel: body.y, title: body.title, xFormat: fmt, testid: "forecast-chart",
    }), h("p", { class: "muted", testid: "forecast-title", text: body.title }), await priceAdvice(product)];
  }, "Loading the forecast…");
}

/** The product's price advice for profit beside its forecast; the service's reason when there is none yet. */
async function priceAdvice(product) {
  try {
    const p = await call(API.pricing, { params: { product_id: product }, query: { objective: "profit" } });
    const ci = `${p.elasticity_ci_low.toFixed(2)} to ${p.elasticity_ci_high.toFixed(2)}`;
    const text = `Price advice (profit): ${money(p.current_price, p.currency)} → ${money(p.recommended_price, p.currency)}; ` +
      `elasticity ${p.elasticity.toFixed(2)} (95% ${ci}, ${p.observations} days); expected profit a day ` +
      `${money(p.expected_profit_current, p.currency)} → ${money(p.expected_profit_recommended, p.currency)}` +
      (p.note ? `. ${p.note}` : "");
    return h("p", { testid: "price-advice", text });
  } catch (err) {
    if (err.status === 401) throw err;
    return h("p", { class: "muted", testid: "price-advice", text: `Price advice: ${errorText(err)}` });
  }
}

// ------------------------------------------------------------------ wiring

function setUpSections() {
  $("#support-state").addEventListener("change", () => loadHandoffs());
  $("#alerts-form").addEventListener("submit", (event) => { event.preventDefault(); loadAlerts(); });
  const topics = $("#deadletters-topic");
  for (const topic of DEAD_LETTER_TOPICS) topics.append(h("option", { value: topic, text: topic }));
  $("#deadletters-form").addEventListener("submit", (event) => { event.preventDefault(); loadDeadLetters(); });
  $("#models-form").addEventListener("submit", (event) => { event.preventDefault(); loadModels(); });
  for (const select of document.querySelectorAll("select.strategy")) {
    select.append(...STRATEGIES.map((name) => h("option", { value: name, text: name })));
  }
  $("#arm-b-strategy").value = "popular";
  $("#experiments-refresh").addEventListener("click", () => {
    loadExperiments();
    loadAttribution();
    if (state.experimentId) openExperiment(state.experimentId);
  });
  $("#experiment-form").addEventListener("submit", (event) => { event.preventDefault(); createExperiment(); });
  $("#issue-form").addEventListener("submit", (event) => { event.preventDefault(); issueCodes(); });
  $("#revoke-form").addEventListener("submit", (event) => { event.preventDefault(); revokeCodes(); });
  $("#scans-form").addEventListener("submit", (event) => { event.preventDefault(); codeScans($("#scans-serial").value.trim()); });
  $("#cohorts-period").addEventListener("change", () => loadCohorts());
  $("#forecast-form").addEventListener("submit", (event) => { event.preventDefault(); loadForecast(); });
}

setUpTabs();
setUpSections();
showSignedIn();
