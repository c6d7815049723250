/* The storefront's notice when part of the shop is down (issue #21): /readyz names what is down
 * ("degraded", with `down`); a banner above the panels says so, and goes away when all is back.
 * Checked on load and every 15 s. A style of its own is set through the CSSOM (the page's CSP allows no
 * inline style attribute). */
"use strict";

(() => {
  const LABELS = {recommender: "recommendations", chatbot: "the assistant", vision: "photo search",
                  forecasting: "forecasts and stock", redis: "the shop's cache", broker: "the event log"};

  function banner() {
    let el = document.getElementById("readiness-banner");
    if (!el) {
      el = document.createElement("div");
      el.id = "readiness-banner";
      el.dataset.testid = "readiness-banner";
      el.setAttribute("role", "status");
      Object.assign(el.style, {background: "#fff4d6", color: "#5c4200", borderBottom: "1px solid #e0c36a",
                               padding: "0.5rem 1rem", textAlign: "center"});
      document.body.prepend(el);
    }
    return el;
  }

  async function check() {
    let body;
    try {
      body = await (await fetch("/readyz", {cache: "no-store"})).json();
    } catch (err) {
      body = {status: "degraded", down: ["gateway"]};
    }
    const down = body.status === "ready" ? [] : (body.down || []);
    const existing = document.getElementById("readiness-banner");
    if (!down.length) {
      if (existing) existing.remove();
      return;
    }
    const names = down.map((name) => LABELS[name] || name).join(", ");
    banner().textContent = `Part of the shop is unavailable right now (${names}); ` +
      "what depends on it shows a notice until it is back.";
  }

  document.addEventListener("DOMContentLoaded", () => {
    check();
    setInterval(check, 15000);
  });
})();
