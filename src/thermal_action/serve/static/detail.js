// One alert opened: its clip (the PNG frames played in a loop, the frame that raised it
// marked), its strip, its audit trail, feedback, Acknowledge / Resolve. And the dialogs that
// confirm an action naming the room and ask for the operator's name.
import { $, el, api, fmtElapsed, fmtScore, fmtTime, feedbackText, FEEDBACK_TEXT, REASON_TEXT } from "./common.js";

const CLIP_FPS_RANGE = [2, 15];

const detail = {
  id: null,
  ctx: null,
  frames: [],
  index: 0,
  timer: null,
  clip: null,
};

function closeOnBackdrop(dialog) {
  dialog.addEventListener("click", (e) => { if (e.target === dialog) dialog.close("cancel"); });
  for (const b of dialog.querySelectorAll("[data-close]")) b.addEventListener("click", () => dialog.close("cancel"));
}

// -- confirmation (and the operator's name, remembered by the page)

let confirmResolve = null;

/**
 * Asks to confirm an action, naming where. Resolves to {name, note, confirmOngoing} or null.
 * @param {{title: string, okText: string, name: string, warning?: string, needOngoing?: boolean, nameOnly?: boolean}} o
 */
export function confirmAction(o) {
  const d = $("confirm");
  if (d.open) d.close("cancel");
  $("confirm-title").textContent = o.title;
  $("confirm-warning").hidden = !o.warning;
  $("confirm-warning").textContent = o.warning || "";
  $("confirm-ongoing-label").hidden = !o.needOngoing;
  $("confirm-ongoing").checked = false;
  $("confirm-name").value = o.name || "";
  $("confirm-note").value = "";
  $("confirm-note").hidden = Boolean(o.nameOnly);
  d.querySelector("label[for='confirm-note']").hidden = Boolean(o.nameOnly);
  $("confirm-error").textContent = "";
  $("confirm-ok").textContent = o.okText || "OK";
  d.dataset.needOngoing = String(Boolean(o.needOngoing));
  return new Promise((resolve) => {
    confirmResolve = resolve;
    d.showModal();
    (o.name ? (o.needOngoing ? $("confirm-ongoing") : $("confirm-ok")) : $("confirm-name")).focus();
  });
}

export async function askName(current) {
  const r = await confirmAction({ title: "Your name", okText: "Save", name: current, nameOnly: true });
  return r && r.name;
}

function setupConfirm() {
  const d = $("confirm");
  closeOnBackdrop(d);
  $("confirm-form").addEventListener("submit", (e) => {
    const name = $("confirm-name").value.trim();
    const needOngoing = d.dataset.needOngoing === "true";
    let problem = "";
    if (!name) problem = "Type your name: it is recorded with the alert.";
    else if (needOngoing && !$("confirm-ongoing").checked) problem = "Tick the box to resolve a fall that is still going on.";
    if (problem) {
      e.preventDefault();
      $("confirm-error").textContent = problem;
      (name ? $("confirm-ongoing") : $("confirm-name")).focus();
      return;
    }
    d.dataset.result = JSON.stringify({ name, note: $("confirm-note").value.trim(), confirmOngoing: needOngoing });
  });
  d.addEventListener("close", () => {
    const r = d.returnValue === "ok" && d.dataset.result ? JSON.parse(d.dataset.result) : null;
    d.dataset.result = "";
    d.returnValue = "";
    if (confirmResolve) { const f = confirmResolve; confirmResolve = null; f(r); }
  });
}

// -- the alert opened

export async function openDetail(id, ctx) {
  detail.ctx = ctx;
  detail.id = id;
  const a = ctx.state.alerts.get(id);
  if (!a) return;
  const d = $("detail");
  d.dataset.alertId = String(id);
  renderFacts(a);
  stopClip();
  $("clip").hidden = true;
  $("clip-none").hidden = true;
  $("strip").hidden = true;
  $("audit").hidden = true;
  $("feedback").hidden = ctx.state.features.feedback === false;
  $("feedback-reasons").hidden = true;
  if (!d.open) d.showModal();
  $("detail").querySelector(".close").focus();
  loadClip(a);
  loadStrip(a);
  loadAudit(a);
}

// An alert changed while it is open: facts, buttons and audit trail follow.
export function refreshDetail(a) {
  const d = $("detail");
  if (!d.open || detail.id !== a.id) return;
  renderFacts(a);
  loadAudit(a);
  if (a.hasClip && !detail.clip) { // its clip was saved after it opened (the "after" part)
    $("clip-none").hidden = true;
    loadClip(a);
    loadStrip(a);
  }
}

function renderFacts(a) {
  const ctx = detail.ctx;
  $("detail-title").textContent = (a.status === "resolved" ? "Fall (resolved) · " : "FALL · ") + ctx.placeOf(a);
  const parts = [
    "fell " + fmtElapsed((Date.now() - (a.started ?? a.raised)) / 1000) + " ago (" + fmtTime(a.started) + ")",
    a.ongoing ? "still on the floor" : "ended " + fmtTime(a.ended),
    "fall score " + fmtScore(a.peak),
  ];
  if (a.raises > 1) parts.push("raised ×" + a.raises + ", last " + fmtTime(a.lastRaised));
  parts.push(a.status === "open" ? "not acknowledged" : a.status === "acknowledged" ? "acknowledged by " + a.ackBy
    : "resolved by " + a.resolvedBy);
  $("detail-facts").textContent = parts.join(" · ");
  $("detail-ack").hidden = a.status !== "open";
  $("detail-resolve").hidden = a.status === "resolved";
  $("detail").dataset.status = a.status;
  $("feedback-given").textContent = a.feedback ? "Answered: " + feedbackText(a.feedback) : "";
  for (const b of $("feedback").querySelectorAll("button[data-answer]")) {
    const ans = a.feedback && (a.feedback.answer || a.feedback);
    b.setAttribute("aria-pressed", String(ans === b.dataset.answer));
  }
}

async function loadClip(a) {
  const ctx = detail.ctx;
  if (ctx.state.features.clip === false || a.hasClip === false) {
    if (a.hasClip === false) { $("clip-none").hidden = false; $("clip-none").textContent = "No clip yet (it is saved a few seconds after the alert) or none kept."; }
    return;
  }
  try {
    const clip = await api(`/api/alerts/${a.id}/clip`);
    if (detail.id !== a.id) return;
    showClip(clip);
  } catch (e) {
    if (e.routeMissing) ctx.state.features.clip = false;
    else if (detail.id === a.id) { $("clip-none").hidden = false; $("clip-none").textContent = "No clip: " + e.detail; }
  }
}

function showClip(clip) {
  detail.clip = clip;
  detail.frames = (clip.frames || []).map((b64) => "data:image/png;base64," + b64);
  if (!detail.frames.length) return;
  $("clip").hidden = false;
  const view = $("clip").querySelector(".clip-view");
  if (clip.width && clip.height) view.style.aspectRatio = clip.width + " / " + clip.height;
  const seek = $("clip-seek");
  seek.max = String(detail.frames.length - 1);
  // The frame that raised the alert, marked on the seek bar.
  const tick = $("fired-tick");
  tick.hidden = clip.fired_index == null || detail.frames.length < 2;
  if (!tick.hidden) tick.style.setProperty("--fired", String(clip.fired_index / (detail.frames.length - 1)));
  detail.index = 0;
  showFrame(0);
  playClip(true);
}

function showFrame(i) {
  const n = detail.frames.length;
  if (!n) return;
  detail.index = ((i % n) + n) % n;
  $("clip-frame").src = detail.frames[detail.index];
  $("clip-frame").dataset.index = String(detail.index);
  $("clip-seek").value = String(detail.index);
  const c = detail.clip;
  const fired = c.fired_index;
  $("clip-marker").hidden = fired == null || detail.index < fired;
  const ts = c.timestamps && c.timestamps[detail.index];
  const rel = c.timestamps && fired != null && c.timestamps[fired] != null && ts != null ? (ts - c.timestamps[fired]) / 1000 : null;
  $("clip-time").textContent = rel == null ? `${detail.index + 1}/${n}` : (rel >= 0 ? "+" : "−") + Math.abs(rel).toFixed(1) + " s";
}

function playClip(on) {
  clearInterval(detail.timer);
  detail.timer = null;
  const b = $("clip-play");
  if (on && detail.frames.length > 1) {
    const fps = Math.min(CLIP_FPS_RANGE[1], Math.max(CLIP_FPS_RANGE[0], (detail.clip && detail.clip.fps) || 6));
    detail.timer = setInterval(() => showFrame(detail.index + 1), 1000 / fps);
  }
  b.textContent = detail.timer ? "❚❚" : "▶";
  b.setAttribute("aria-label", detail.timer ? "pause" : "play");
  $("clip").dataset.playing = String(Boolean(detail.timer));
}

function stopClip() {
  playClip(false);
  detail.frames = [];
  detail.clip = null;
  $("clip-frame").removeAttribute("src");
  $("fired-tick").hidden = true;
}

function loadStrip(a) {
  if (detail.ctx.state.features.strip === false || a.hasClip === false) return;
  const img = $("strip-img");
  img.onload = () => { if (detail.id === a.id) $("strip").hidden = false; };
  img.onerror = () => { $("strip").hidden = true; };
  img.src = `/api/alerts/${a.id}/strip.png`;
}

const ACTION_TEXT = { raised: "alert raised", acknowledge: "acknowledged", acknowledged: "acknowledged",
  resolve: "resolved", resolved: "resolved", feedback: "feedback", ended: "fall ended", repeat: "raised again",
  repeated: "raised again" };

// "false_alarm (in_bed)" -> "false alarm (in bed)"
function readable(note) {
  return note.replace(/\b(real_fall|false_alarm|not_sure|in_bed)\b/g, (m) => FEEDBACK_TEXT[m] || REASON_TEXT[m] || m);
}

async function loadAudit(a) {
  const ctx = detail.ctx;
  if (ctx.state.features.events === false) return;
  try {
    const data = await api(`/api/alerts/${a.id}/events`);
    if (detail.id !== a.id) return;
    const events = Array.isArray(data) ? data : data.events || [];
    const list = $("audit-list");
    list.replaceChildren();
    for (const ev of events) {
      const at = ev.at ?? ev.at_ms ?? ev.timestamp;
      let what = ACTION_TEXT[ev.action] || ev.action || "";
      if (ev.answer) what += ": " + (FEEDBACK_TEXT[ev.answer] || ev.answer) + (ev.reason ? " (" + (REASON_TEXT[ev.reason] || ev.reason) + ")" : "");
      const who = ev.who && ev.who !== "system" ? " by " + ev.who : "";
      list.append(el("li", { "data-action": ev.action || "" }, el("time", { text: fmtTime(at) }), " ",
        el("span", { text: what }), who, ev.note ? el("q", { text: readable(ev.note) }) : null));
    }
    $("audit").hidden = events.length === 0;
  } catch (e) {
    if (e.routeMissing) ctx.state.features.events = false;
  }
}

async function sendFeedback(answer, reason) {
  const ctx = detail.ctx;
  const a = ctx.state.alerts.get(detail.id);
  if (!a) return;
  let who = ctx.operatorName();
  if (!who) {
    who = await askName("");
    if (!who) return;
    ctx.setOperatorName(who);
  }
  try {
    const row = await api(`/api/alerts/${a.id}/feedback`, { method: "POST",
      json: reason ? { answer, reason, who } : { answer, who } });
    const raw = row && (row.alert || row);
    if (raw && raw.id === a.id) a.feedback = raw.feedback || { answer, reason, who };
    else a.feedback = { answer, reason, who };
    renderFacts(a);
    $("feedback-reasons").hidden = true;
    loadAudit(a);
  } catch (e) {
    if (e.routeMissing) {
      ctx.state.features.feedback = false;
      $("feedback").hidden = true;
    } else {
      $("feedback-given").textContent = "could not send: " + (e.detail || e.message);
    }
  }
}

function setupDetail() {
  const d = $("detail");
  closeOnBackdrop(d);
  d.addEventListener("close", () => { stopClip(); detail.id = null; });
  $("clip-play").addEventListener("click", () => playClip(!detail.timer));
  $("clip-seek").addEventListener("input", () => { playClip(false); showFrame(Number($("clip-seek").value)); });
  $("detail-ack").addEventListener("click", () => detail.ctx.acknowledge(detail.id));
  $("detail-resolve").addEventListener("click", () => detail.ctx.resolve(detail.id));
  for (const b of $("feedback").querySelectorAll("button[data-answer]")) {
    b.addEventListener("click", () => {
      if (b.dataset.answer === "false_alarm") $("feedback-reasons").hidden = false;
      else sendFeedback(b.dataset.answer, null);
    });
  }
  for (const b of $("feedback-reasons").querySelectorAll("button[data-reason]")) {
    b.addEventListener("click", () => sendFeedback("false_alarm", b.dataset.reason));
  }
}

setupConfirm();
setupDetail();
