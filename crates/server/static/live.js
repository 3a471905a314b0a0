// Ketaflow's only script. Four small jobs, each optional: the page works without it.
// 1. Live panels: an element with data-live-stream (a server-sent-event URL) and data-live-src (a
//    URL of server-rendered HTML) is re-fetched whenever the stream reports a change. The HTML is
//    rendered by the server, so the page never shows anything the server would not.
// 2. Confirmation before irreversible actions: forms with data-confirm.
// 3. Running timers: elements with data-elapsed (seconds on the clinic clock when the server
//    rendered them; data-speed is the clinic clock's rate, 1 except in a demo) keep counting.
// 4. Where to get help: on a questionnaire, an answer to a risk item (data-risk-from: the lowest
//    score that counts, or "yes") shows #crisis-now before the answers are sent. Without the script
//    the page after sending shows it.
"use strict";

const EVENT_KINDS = ["session.created", "session.state", "session.rate", "session.side_effect",
  "session.assessment", "vitals", "alarm.raised", "alarm.escalated", "alarm.updated", "alarm.acknowledged",
  "alarm.resolved",
  "risk.alert", "risk.followed_up"];

// The server sends a "heartbeat" event every 5 s on every stream. Without one for this long (two
// missed and a margin), or when the stream errors, the page says "disconnected" and greys what it
// shows: values on screen are no longer live.
const HEARTBEAT_MISSED_MS = 12000;

function setLiveStatus(status, state, text) {
  document.body.classList.toggle("disconnected", state === "disconnected");
  if (!status) return;
  status.dataset.state = state;
  status.textContent = text;
}

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
    } catch (_) {
      // The server is unreachable: the heartbeat watch already says so.
    } finally {
      inFlight = false;
      if (again) { again = false; refresh(); }
    }
  }
  let lastSign = Date.now(), down = false;
  function alive() {
    lastSign = Date.now();
    if (down) {
      // Back: catch up. The stream replays from Last-Event-ID; the panel is re-read as well.
      down = false;
      refresh();
    }
    setLiveStatus(status, "connected", "live");
  }
  function lost(why) {
    down = true;
    setLiveStatus(status, "disconnected", `disconnected: ${why}; what is shown may be out of date`);
  }
  // EventSource reconnects by itself and sends Last-Event-ID; the server fills any gap.
  const source = new EventSource(panel.dataset.liveStream, { withCredentials: true });
  source.onopen = alive;
  source.onerror = () => lost("the live connection to the server was lost");
  source.addEventListener("heartbeat", alive);
  for (const kind of EVENT_KINDS) source.addEventListener(kind, () => { alive(); refresh(); });
  setInterval(() => {
    if (!down && Date.now() - lastSign > HEARTBEAT_MISSED_MS) lost("no word from the server for 12 s");
  }, 1000);
}

function pad(n) { return String(n).padStart(2, "0"); }

function startTimers(root) {
  for (const el of root.querySelectorAll("[data-elapsed]")) {
    const elapsed = Number(el.dataset.elapsed), speed = Number(el.dataset.speed || 1);
    if (!Number.isFinite(elapsed) || el.dataset.ticking) continue;
    el.dataset.ticking = "1";
    const loaded = Date.now();
    const tick = () => {
      // A panel replaced by a live refresh drops its element; stop its timer with it.
      if (!el.isConnected) { clearInterval(timer); return; }
      const s = Math.max(0, Math.floor(elapsed + (Date.now() - loaded) / 1000 * speed));
      el.textContent = `${Math.floor(s / 60)}:${pad(s % 60)}`;
    };
    const timer = setInterval(tick, 1000);
    tick();
  }
}

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

function showHelpIfAtRisk() {
  const help = document.getElementById("crisis-now");
  if (!help) return;
  const atRisk = [...document.querySelectorAll("[data-risk-from]")].some((group) => {
    const chosen = group.querySelector("input:checked");
    if (!chosen) return false;
    const from = group.dataset.riskFrom;
    return from === "yes" ? chosen.value === "yes" : Number(chosen.value) >= Number(from);
  });
  if (atRisk && help.hidden) help.hidden = false;
}

document.addEventListener("change", (event) => {
  if (event.target.closest && event.target.closest("[data-risk-from]")) showHelpIfAtRisk();
});

document.addEventListener("DOMContentLoaded", () => {
  for (const panel of document.querySelectorAll("[data-live-stream][data-live-src]")) livePanel(panel);
  startTimers(document);
  showHelpIfAtRisk();
});
