// ShopAI pages' shared helpers: the storefront (/) and the staff console (/console) load this file first
// (index.html, `defer`, in order), then their own script, which uses these names.
//
// Every text from the API is put into the page as text nodes or textContent (h() and s() below), never parsed
// as HTML; API paths are filled in with encodeURIComponent (apiUrl); a refused call becomes an ApiError with
// the problem's title and detail (application/problem+json) and its Retry-After.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

// ------------------------------------------------------------------ the page

const $ = (selector) => document.querySelector(selector);

function build(node, props, children) {
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.setAttribute("class", value);
    else if (key === "text") node.textContent = String(value);
    else if (key === "testid") node.dataset.testid = value;
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** An HTML element with properties and children; strings become text nodes (never HTML). */
const h = (tag, props = {}, ...children) => build(document.createElement(tag), props, children);
/** An SVG element, likewise. */
const s = (tag, props = {}, ...children) => build(document.createElementNS(SVG_NS, tag), props, children);

const number = (value, digits = 1) =>
  typeof value === "number" && Number.isFinite(value)
    ? value.toLocaleString(undefined, { maximumFractionDigits: digits }) : "—";

/** A definition list from [label, value] pairs; values are text or nodes. */
function facts(rows) {
  return h("dl", { class: "facts" },
    rows.filter(Boolean).map(([label, value]) => [h("dt", { text: label }), h("dd", {}, value)]));
}

function status(text, kind = "", testid = undefined) {
  return h("p", { class: `status ${kind}`.trim(), role: kind === "error" ? "alert" : "status", testid, text });
}

// ------------------------------------------------------------------ the REST API

class ApiError extends Error {
  constructor(status, title, detail, retryAfter = 0) {
    super(detail);
    this.status = status;
    this.title = title;
    this.retryAfter = retryAfter; // seconds, from a 503's Retry-After (an answer still being computed)
  }

  /** The problem's title and detail, as a person reads them. */
  get text() {
    return this.status ? `${this.title} (${this.status}): ${this.message}` : `${this.title}: ${this.message}`;
  }
}

function errorText(err) {
  return err instanceof ApiError ? err.text : `Something went wrong: ${err && err.message ? err.message : err}`;
}

function apiUrl(route, params = {}, query = {}) {
  const path = route.path.replace(/\{(\w+)\}/g, (_, name) => {
    const value = params[name];
    if (value === undefined || value === null || value === "") throw new ApiError(0, "Missing value", name);
    return encodeURIComponent(value);
  });
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `${path}?${text}` : path;
}

async function problemOf(response) {
  let title = response.statusText || "Error";
  let detail = "";
  try {
    const body = await response.json(); // application/problem+json
    if (body && typeof body.title === "string") title = body.title;
    if (body && typeof body.detail === "string") detail = body.detail;
  } catch {
    // not JSON: a proxy's error page, say
  }
  const retryAfter = Number(response.headers.get("Retry-After")) || 0;
  return new ApiError(response.status, title, detail || `the gateway answered ${response.status}`, retryAfter);
}
