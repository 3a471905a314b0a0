// Ketaflow's only script. Three small jobs, each optional: the page works without it.
// 1. Live panels: an element with data-live-stream (a server-sent-event URL) and data-live-src (a
//    URL of server-rendered HTML) is re-fetched whenever the stream reports a change. The HTML is
//    rendered by the server, so the page never shows anything the server would not.
// 2. Confirmation before irreversible actions: forms with data-confirm.
// 3. Running timers: elements with data-since (RFC 3339) show the minutes:seconds elapsed.
"use strict";

const EVENT_KINDS = ["session.created", "session.state", "session.rate", "session.side_effect",
  "session.assessment", "vitals", "alarm.raised", "alarm.acknowledged", "alarm.resolved",
  "risk.alert", "risk.followed_up"];

function livePanel(panel) {
  const status = document.querySelector("[data-live-status]");
  let inFlight = false, again = false;
  async function refresh() {
    if (inFlight) { again = true; return; }
    inFlight = true;
    try {
      const response = await fetch(panel.dataset.liveSrc, { credentials: "same-origin", cache: "no-store" });
      if (response.status === 401) { window.location.href = "/login"; return; }
      if (response.ok) {
        panel.innerHTML = await response.text();
        panel.dataset.refreshed = String(Number(panel.dataset.refreshed || 0) + 1);
        startTimers(panel);
      }
    } finally {
      inFlight = false;
      if (again) { again = false; refresh(); }
    }
  }
  // EventSource reconnects by itself and sends Last-Event-ID; the server fills any gap.
  const source = new EventSource(panel.dataset.liveStream, { withCredentials: true });
  source.onopen = () => { if (status) { status.dataset.state = "connected"; status.textContent = "live"; } };
  source.onerror = () => { if (status) { status.dataset.state = "reconnecting"; status.textContent = "reconnecting…"; } };
  for (const kind of EVENT_KINDS) source.addEventListener(kind, refresh);
}

function pad(n) { return String(n).padStart(2, "0"); }

function startTimers(root) {
  for (const el of root.querySelectorAll("[data-since]")) {
    const since = Date.parse(el.dataset.since);
    if (Number.isNaN(since) || el.dataset.ticking) continue;
    el.dataset.ticking = "1";
    const tick = () => {
      const s = Math.max(0, Math.floor((Date.now() - since) / 1000));
      el.textContent = `${Math.floor(s / 60)}:${pad(s % 60)}`;
    };
    tick();
    setInterval(tick, 1000);
  }
}

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

document.addEventListener("DOMContentLoaded", () => {
  for (const panel of document.querySelectorAll("[data-live-stream][data-live-src]")) livePanel(panel);
  startTimers(document);
});
