// Ketaflow's only script. Five small jobs, each optional: the page works without it.
// 1. Live panels: an element with data-live-stream (a server-sent-event URL) and data-live-src (a
//    URL of server-rendered HTML) is re-fetched whenever the stream reports a change. The HTML is
//    rendered by the server, so the page never shows anything the server would not.
// 2. Confirmation before irreversible actions: forms with data-confirm.
// 3. Running timers: elements with data-elapsed (seconds on the clinic clock when the server
//    rendered them; data-speed is the clinic clock's rate, 1 except in a demo) keep counting.
// 4. Where to get help: on a questionnaire, an answer to a risk item (data-risk-from: the lowest
//    score that counts, or "yes") shows #crisis-now before the answers are sent. Without the script
//    the page after sending shows it.
// 5. Alarm sound on the board, off unless this browser turned it on (data-sound-toggle): while a
//    tile has an unacknowledged alarm (data-unacknowledged), or the live connection is lost, a tone
//    pattern for the highest priority repeats. Made with the Web Audio API; no sound files. It is a
//    convenience at the desk, never the alarm system of record: the monitors at the chair are.
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
  alarmSound.update();
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
        alarmSound.update();
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

// Tone patterns after IEC 60601-1-8's auditory alarm signals as commonly summarised: a high-priority
// burst of 10 pulses (3 + 2, a pause, 3 + 2), medium 3 pulses, low 2; pulse fundamentals between
// 150 and 1000 Hz, with harmonics (a triangle wave). UNVERIFIED against the purchased standard's
// Table 3 timings.
const PATTERNS = {
  high: { hz: 880, at: [0, 0.2, 0.4, 0.8, 1.0, 1.8, 2.0, 2.2, 2.6, 2.8] },
  medium: { hz: 660, at: [0, 0.3, 0.6] },
  low: { hz: 440, at: [0, 0.4] },
};
const PULSE_S = 0.15;
const REPEAT_MS = 10000;
const RANK = { low: 1, medium: 2, high: 3 };
const SOUND_KEY = "ketaflow.board.sound";

const alarmSound = {
  context: null,
  timer: null,
  toggle: null,
  playing: "",
  pulses: 0,
  on() { try { return localStorage.getItem(SOUND_KEY) === "on"; } catch (_) { return false; } },
  set(on) {
    try { localStorage.setItem(SOUND_KEY, on ? "on" : "off"); } catch (_) { /* private mode: this page only */ }
    this.label();
    this.update();
  },
  label() {
    if (!this.toggle) return;
    const on = this.on();
    const blocked = on && (!this.context || this.context.state !== "running");
    this.toggle.setAttribute("aria-pressed", String(on));
    this.toggle.textContent = !on ? "Alarm sound: off" : blocked ? "Alarm sound: on (tap to allow)" : "Alarm sound: on (tap to mute)";
  },
  // Browsers start audio only after a tap or click on the page.
  wake() {
    if (!this.on()) return;
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    if (!this.context) this.context = new Context();
    if (this.context.state === "suspended") this.context.resume().then(() => { this.label(); this.update(); });
    this.label();
  },
  // The highest priority now calling for sound: unacknowledged alarms, and a lost connection
  // (a technical alarm, medium).
  wanted() {
    let best = "";
    for (const tile of document.querySelectorAll("[data-unacknowledged]")) {
      const p = tile.dataset.unacknowledged;
      if ((RANK[p] || 0) > (RANK[best] || 0)) best = p;
    }
    if (document.body.classList.contains("disconnected") && (RANK[best] || 0) < RANK.medium) best = "medium";
    return best;
  },
  play(priority) {
    const pattern = PATTERNS[priority];
    const ctx = this.context;
    if (!pattern || !ctx || ctx.state !== "running") return;
    const t0 = ctx.currentTime + 0.05;
    for (const offset of pattern.at) {
      const osc = ctx.createOscillator(), gain = ctx.createGain();
      osc.type = "triangle";
      osc.frequency.value = pattern.hz;
      // Soft edges (no clicks): 20 ms rise and fall.
      gain.gain.setValueAtTime(0, t0 + offset);
      gain.gain.linearRampToValueAtTime(0.3, t0 + offset + 0.02);
      gain.gain.setValueAtTime(0.3, t0 + offset + PULSE_S - 0.02);
      gain.gain.linearRampToValueAtTime(0, t0 + offset + PULSE_S);
      osc.connect(gain).connect(ctx.destination);
      osc.start(t0 + offset);
      osc.stop(t0 + offset + PULSE_S);
      this.pulses += 1;
    }
  },
  // Called after every board refresh and status change: sound now if something new calls for it,
  // and keep repeating while it does.
  update() {
    if (!this.toggle) return;
    const priority = this.on() ? this.wanted() : "";
    document.body.dataset.sounding = priority;
    if (!priority) { clearInterval(this.timer); this.timer = null; this.playing = ""; return; }
    if (this.playing === priority && this.timer) return;
    clearInterval(this.timer);
    this.playing = priority;
    this.play(priority);
    this.timer = setInterval(() => this.play(this.playing), REPEAT_MS);
  },
  start(toggle) {
    this.toggle = toggle;
    toggle.hidden = false;
    toggle.addEventListener("click", () => {
      this.set(!this.on());
      this.wake();
    });
    document.addEventListener("pointerdown", () => this.wake());
    document.addEventListener("keydown", () => this.wake());
    this.wake();
    this.label();
    this.update();
  },
};

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
  const toggle = document.querySelector("[data-sound-toggle]");
  if (toggle) alarmSound.start(toggle);
  for (const panel of document.querySelectorAll("[data-live-stream][data-live-src]")) livePanel(panel);
  startTimers(document);
  showHelpIfAtRisk();
});
