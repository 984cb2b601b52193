// thermal-action dashboard: rooms (live image, people, zones, delay), fall alerts grouped per
// room, an alert's clip and audit trail, and, in the engineer view, figures and timelines.
//
// Data: GET /api/info, /api/sensors, /api/alerts once, then live events over WS /ws/dashboard
// ("sensors" each second, "live" per frame, "alert" and "zones" on changes); /api/stats every
// few seconds. Auth is the ta_token cookie that GET /?token=... set. Plain ES modules, no
// dependencies. Features whose endpoint this service lacks (a 404 from the router) are hidden.
//
// The alert list never moves under the pointer: rows are keyed by alert id and updated in
// place; while the pointer (or a finger) is on the list no row is added, removed or moved:
// new alerts are announced ("2 new alerts — show") and come in when the pointer leaves or on
// "show".
import { $, el, svg, api, hasRoute, fmtElapsed, fmtScore, fmtTime, GROUPS, actionGroup, shortAction, normAlert, feedbackText } from "./common.js";
import { openDetail, refreshDetail, confirmAction, askName } from "./detail.js";
import { openSetup, drawZones } from "./zones.js";
import { Timelines } from "./timeline.js";

const NAME_KEY = "thermal-action.operator";
const SOUND_KEY = "thermal-action.sound";
const VIEW_KEY = "thermal-action.view";
const STALE_MS = 10000; // no event for this long (the server sends one a second): reconnect
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15000;
const STATS_EVERY_MS = 5000;
const BEHIND_S = 3; // a sensor whose predictions come this late is "behind", not "live"
const DROP_FRESH_MS = 15000; // dropped frames counted in the last 15 s are shown as new
const TOUCH_HOLD_MS = 4000; // a touch on the list holds it still this long
// Sound: a beep every SOUND_EVERY_S while an alert is open (not acknowledged); after
// ESCALATE_AFTER_S without acknowledgement, louder, higher and every SOUND_ESCALATED_EVERY_S.
const SOUND_EVERY_S = 10;
const ESCALATE_AFTER_S = 60;
const SOUND_ESCALATED_EVERY_S = 4;

const state = {
  info: null,
  view: "operator",
  sensors: new Map(), // sensor id -> tile entry
  alerts: new Map(), // alert id -> normAlert
  rows: new Map(), // alert id -> row element in the list
  groups: new Map(), // room key -> group element
  seenAlerts: new Set(),
  alertsLoaded: false,
  pointerOnList: false,
  touchUntil: 0,
  ws: null,
  backoff: BACKOFF_MIN_MS,
  lastEvent: 0,
  connected: false,
  pendingLive: new Map(),
  frameRequested: false,
  audio: null,
  lastBeep: 0,
  beeps: [], // {at, level}: what the sound did (tests, debugging)
  stats: null,
  // What this service has (probed at start): operators' alerts (status, who, summary), sensor
  // info, clips, strips, the audit trail, feedback. false: the page leaves the part out.
  features: {},
};

// -- names: a room's name and resident when the service knows them, else the sensor id

function sensorInfo(id) {
  const s = state.sensors.get(id);
  return (s && s.status) || {};
}

export function roomOf(a) {
  return a.room || sensorInfo(a.sensorId).room || a.sensorId;
}

export function residentOf(a) {
  return a.resident || sensorInfo(a.sensorId).resident || null;
}

export function placeOf(a) {
  const r = residentOf(a);
  return roomOf(a) + (r ? " (" + r + ")" : "");
}

export function operatorName() {
  return (localStorage.getItem(NAME_KEY) || "").trim();
}

export function setOperatorName(name) {
  name = (name || "").trim();
  if (name) localStorage.setItem(NAME_KEY, name);
  $("operator-label").textContent = name || "set your name";
}

// -- sound (WebAudio; the context is made on a user gesture, as browsers require)

function soundOn() {
  return $("sound").checked;
}

function ensureAudio() {
  if (!state.audio && (window.AudioContext || window.webkitAudioContext)) {
    state.audio = new (window.AudioContext || window.webkitAudioContext)();
  }
  if (state.audio && state.audio.state === "suspended") state.audio.resume();
}

function beep(level) {
  state.beeps.push({ at: Date.now(), level: level });
  if (state.beeps.length > 50) state.beeps.shift();
  const ctx = state.audio;
  if (!ctx) return;
  const loud = level > 0;
  const t = ctx.currentTime;
  const pips = loud ? 5 : 3;
  for (let i = 0; i < pips; i++) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = "square";
    osc.frequency.value = loud ? (i % 2 ? 1320 : 990) : 880;
    const at = t + i * (loud ? 0.18 : 0.25);
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(loud ? 0.5 : 0.15, at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.15);
    osc.connect(gain).connect(ctx.destination);
    osc.start(at);
    osc.stop(at + 0.16);
  }
}

// What the sound should do now: null (quiet) or {level, every_s}.
export function soundPlan(now) {
  let oldest = null;
  for (const a of state.alerts.values()) {
    if (a.status !== "open") continue;
    const t = a.lastRaised ?? a.raised;
    if (t != null && (oldest == null || t < oldest)) oldest = t;
  }
  if (oldest == null) return null;
  const waited = (now - oldest) / 1000;
  return waited >= ESCALATE_AFTER_S ? { level: 1, every_s: SOUND_ESCALATED_EVERY_S } : { level: 0, every_s: SOUND_EVERY_S };
}

function soundTick() {
  if (!soundOn()) return;
  const now = Date.now();
  const plan = soundPlan(now);
  if (plan && now - state.lastBeep >= plan.every_s * 1000 - 50) {
    state.lastBeep = now;
    ensureAudio();
    beep(plan.level);
  }
}

function soundNow() {
  state.lastBeep = 0;
  soundTick();
}

// -- connection

function setConnected(on, text) {
  state.connected = on;
  const c = $("connection");
  c.dataset.state = on ? "connected" : "disconnected";
  c.textContent = on ? "connected" : "disconnected";
  $("disconnected").hidden = on;
  if (text !== undefined) $("reconnect-info").textContent = text;
  document.body.dataset.connection = c.dataset.state;
}

// -- rooms (tiles)

function tileFor(id) {
  let s = state.sensors.get(id);
  if (s) return s;
  s = { id: id, status: null, live: null, zones: null, droppedSeen: null, droppedAt: 0, droppedNew: 0 };
  const name = el("h3", { class: "room-name", "data-field": "room", text: id });
  const resident = el("p", { class: "resident", "data-field": "resident", hidden: "" });
  const sensorId = el("p", { class: "sensor-id engineer-only", text: "sensor " + id });
  const fallLabel = el("span", { class: "fall-label", "data-field": "fall", hidden: "" });
  const statusLine = el("p", { class: "status-line", "data-field": "status", text: "…" });
  const setup = el("button", { type: "button", class: "setup-button", title: "room name, resident and zones",
    "aria-label": "set up sensor " + id, text: "set up" });
  setup.addEventListener("click", () => openSetup(s, ctx));
  const img = el("img", { class: "frame", alt: "thermal image of sensor " + id, hidden: "" });
  const zoneSvg = svg("svg", { class: "zones", viewBox: "0 0 1 1", preserveAspectRatio: "none", "aria-hidden": "true" });
  const zoneLabels = el("div", { class: "zone-labels" });
  const boxes = el("div", { class: "boxes" });
  const labels = el("div", { class: "labels" });
  const waiting = el("div", { class: "waiting", text: "waiting for frames" });
  const view = el("div", { class: "view" }, img, zoneSvg, zoneLabels, boxes, labels, waiting);
  const title = el("div", { class: "tile-title" }, name, resident, sensorId);
  const head = el("div", { class: "tile-head" }, title, fallLabel);
  const stats = el("dl", { class: "stats engineer-only" });
  const fields = {};
  for (const [key, label] of [["fps", "fps"], ["delay", "delay"], ["dropped", "dropped"], ["bad", "bad frames"],
    ["frames", "frames"], ["people", "people"], ["connected", "connected"], ["age", "last frame"]]) {
    const dd = el("dd", { "data-field": key, text: "–" });
    stats.append(el("div", {}, el("dt", { text: label }), dd));
    fields[key] = dd;
  }
  const error = el("p", { class: "last-error engineer-only", "data-field": "last_error", hidden: "" });
  const foot = el("div", { class: "tile-foot" }, statusLine, setup);
  const tile = el("article", { class: "tile", "data-sensor-id": id, "data-state": "unknown", "data-fallen": "false",
    "aria-label": "room of sensor " + id }, head, view, foot, stats, error);
  s.els = { tile, name, resident, fallLabel, statusLine, img, zoneSvg, zoneLabels, boxes, labels, waiting, view, fields, error };
  state.sensors.set(id, s);
  insertSorted($("sensors"), tile, id);
  $("no-sensors").hidden = true;
  timelines.add(s);
  loadZones(s);
  return s;
}

function insertSorted(parent, child, id) {
  for (const other of parent.children) {
    if (other.dataset.sensorId > id) {
      parent.insertBefore(child, other);
      return;
    }
  }
  parent.append(child);
}

async function loadZones(s) {
  if (state.features.zones === false) return;
  try {
    s.zones = await api(`/api/sensors/${encodeURIComponent(s.id)}/zones`);
    drawZones(s.els.zoneSvg, s.els.zoneLabels, s.zones.zones || []);
  } catch (e) {
    if (e.routeMissing) state.features.zones = false;
  }
}

function statusText(st, now) {
  const parts = [];
  let kind = st.status;
  const delay = st.delay_s;
  if (st.status === "live") {
    if (delay != null && delay >= BEHIND_S) {
      parts.push(Math.round(delay) + " s behind");
      kind = "behind";
    } else {
      parts.push("live");
    }
  } else if (st.status === "silent") {
    parts.push(st.last_frame_age_s == null ? "no frames yet" : "no frames for " + fmtElapsed(st.last_frame_age_s));
  } else if (st.status === "ended") {
    parts.push("no frames (" + (st.last_frame_age_s != null ? fmtElapsed(st.last_frame_age_s) + " ago" : "never") + ")");
  } else {
    parts.push(st.status || "…");
  }
  return { kind, parts };
}

function updateStatus(st) {
  const s = tileFor(st.sensor_id);
  const now = Date.now();
  s.status = st;
  const { tile, name, resident, statusLine, fields, error } = s.els;
  tile.dataset.state = st.status;
  name.textContent = st.room || st.sensor_id;
  name.title = st.room || st.sensor_id;
  resident.hidden = !st.resident;
  resident.textContent = st.resident || "";
  tile.setAttribute("aria-label", "room " + (st.room || st.sensor_id));

  // Drops as they happen: the count since the page opened, new ones highlighted for a while.
  if (s.droppedSeen != null && st.dropped > s.droppedSeen) {
    s.droppedNew += st.dropped - s.droppedSeen;
    s.droppedAt = now;
  } else if (now - s.droppedAt > DROP_FRESH_MS) {
    s.droppedNew = 0;
  }
  s.droppedSeen = st.dropped;
  const { kind, parts } = statusText(st, now);
  if (st.dropped > 0) parts.push(st.dropped + " dropped" + (s.droppedNew ? " (+" + s.droppedNew + ")" : ""));
  statusLine.textContent = parts.join(" · ");
  statusLine.dataset.state = kind;
  statusLine.classList.toggle("dropping", s.droppedNew > 0);

  fields.fps.textContent = st.fps ? st.fps.toFixed(1) : "0";
  fields.delay.textContent = st.delay_s == null ? "–" : st.delay_s.toFixed(1) + " s";
  fields.delay.classList.toggle("warn", st.delay_s != null && st.delay_s >= BEHIND_S);
  fields.connected.textContent = st.connected > 0 ? ((st.transports || []).join(", ") || String(st.connected)) : "no";
  fields.age.textContent = st.last_frame_age_s == null ? "never" : fmtElapsed(st.last_frame_age_s) + " ago";
  fields.frames.textContent = String(st.frames);
  fields.dropped.textContent = String(st.dropped);
  fields.dropped.classList.toggle("warn", st.dropped > 0);
  const bad = (st.bad_shape || 0) + (st.bad_message || 0) + (st.invalid_frames || 0);
  fields.bad.textContent = String(bad);
  fields.bad.classList.toggle("warn", bad > 0);
  fields.bad.title = `wrong shape ${st.bad_shape}, undecodable ${st.bad_message}, no valid pixel ` +
    `${st.invalid_frames}; repaired pixels ${st.repaired_pixels}; new streams ${st.new_streams}`;
  error.hidden = !st.last_error;
  error.textContent = st.last_error ? "last error: " + st.last_error : "";
  updateAlarm(s);
  timelines.rename(s);
}

function openAlertsOf(id) {
  let n = 0;
  for (const a of state.alerts.values()) if (a.sensorId === id && a.status === "open") n++;
  return n;
}

function updateAlarm(s) {
  const fallen = Boolean((s.live && s.live.fallen) || (s.status && s.status.fallen));
  const open = Math.max(s.status ? s.status.open_alerts || 0 : 0, openAlertsOf(s.id));
  const { tile, fallLabel } = s.els;
  tile.dataset.fallen = String(fallen);
  tile.dataset.openAlerts = String(open);
  tile.classList.toggle("alarm", fallen);
  tile.classList.toggle("unacknowledged", !fallen && open > 0);
  const label = fallen ? "FALL" : open > 0 ? (open === 1 ? "alert open" : open + " alerts open") : "";
  fallLabel.hidden = !label;
  fallLabel.textContent = label;
}

// The label of a person: a fall in alarm shows its fall score, never the model's top class.
function personLabel(t) {
  const eng = state.view === "engineer";
  const g = actionGroup(t.action, state.info && state.info.fall_class);
  // In alarm: the fall score that raised the alert (its peak), not the argmax class nor the
  // score of this instant, which drops once the person lies still; the engineer sees both.
  if (t.fallen) {
    const peak = t.alert_peak != null ? t.alert_peak : t.fall_score;
    const text = eng ? "#" + t.track_id + " FALL " + fmtScore(peak) + " (now " + fmtScore(t.fall_score) + ")"
                     : "FALL " + fmtScore(peak);
    return { text, colour: g.colour, fall: true };
  }
  if (t.action == null) return { text: eng ? "#" + t.track_id : "…", colour: "#8a9bb0", fall: false };
  if (eng) return { text: `#${t.track_id} ${shortAction(t.action)} ${fmtScore(t.score)}`, colour: g.colour, fall: false };
  return { text: g.key === "fall" ? "fall?" : g.label, colour: g.colour, fall: false };
}

function renderLive(ev) {
  const s = tileFor(ev.sensor_id);
  s.live = ev;
  const { img, boxes, labels, waiting, view } = s.els;
  if (ev.frame_png) {
    img.src = "data:image/png;base64," + ev.frame_png;
    img.hidden = false;
    waiting.hidden = true;
  }
  view.style.aspectRatio = ev.width + " / " + ev.height;
  view.dataset.timestamp = String(ev.timestamp);
  boxes.replaceChildren();
  labels.replaceChildren();
  const placed = [];
  for (const t of ev.tracks) {
    const [x1, y1, x2, y2] = t.box;
    const lab = personLabel(t);
    const box = el("div", { class: "box" + (t.fallen ? " fallen" : ""), "data-track-id": String(t.track_id),
      "data-action": t.action == null ? "" : t.action, "data-fallen": String(Boolean(t.fallen)) });
    box.style.left = (100 * x1 / ev.width) + "%";
    box.style.top = (100 * y1 / ev.height) + "%";
    box.style.width = (100 * Math.max(0, x2 - x1) / ev.width) + "%";
    box.style.height = (100 * Math.max(0, y2 - y1) / ev.height) + "%";
    if (!t.fallen) box.style.borderColor = lab.colour;
    box.title = `track ${t.track_id}: ${t.action || "no action yet"} ${fmtScore(t.score)}` +
      (t.fall_score != null ? `, fall ${fmtScore(t.fall_score)}` : "");
    const label = el("span", { class: "box-label" + (lab.fall ? " fall" : ""), "data-track-id": String(t.track_id),
      text: lab.text });
    if (!lab.fall) label.style.borderLeftColor = lab.colour;
    boxes.append(box);
    labels.append(label);
    placed.push({ label, box: [x1 / ev.width, y1 / ev.height, x2 / ev.width, y2 / ev.height], fall: t.fallen });
  }
  placeLabels(view, placed);
  s.els.fields.people.textContent = String(ev.tracks.length);
  updateAlarm(s);
}

// Labels beside their box, none covering another: each label takes the first of above, below,
// right, left, inside that stays in the image and overlaps no placed label (else the least bad).
// Falls are placed first so they get the best spot.
function placeLabels(view, items) {
  const W = view.clientWidth, H = view.clientHeight;
  if (!W || !H) return;
  items.sort((a, b) => Number(b.fall) - Number(a.fall));
  const taken = [];
  const boxesPx = items.map((it) => [it.box[0] * W, it.box[1] * H, it.box[2] * W, it.box[3] * H]);
  const overlap = (a, b) => Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0])) *
    Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  items.forEach((it, i) => {
    const w = it.label.offsetWidth, h = it.label.offsetHeight;
    const [x1, y1, x2, y2] = boxesPx[i];
    const clampX = (x) => Math.max(0, Math.min(W - w, x));
    const clampY = (y) => Math.max(0, Math.min(H - h, y));
    const spots = [
      [clampX(x1 - 2), y1 - h - 1], [clampX(x1 - 2), y2 + 1], [x2 + 2, clampY(y1)], [x1 - w - 2, clampY(y1)],
      [clampX(x1), clampY(y1 + 1)],
    ];
    let best = null, bestCost = Infinity;
    for (const [x, y] of spots) {
      const r = [x, y, x + w, y + h];
      let cost = 0;
      if (x < 0 || y < 0 || x + w > W || y + h > H) cost += 1e6;
      for (const t of taken) cost += 1e3 * overlap(r, t);
      boxesPx.forEach((b, j) => { if (j !== i) cost += overlap(r, b); });
      if (cost < bestCost) { best = r; bestCost = cost; }
      if (cost === 0) break;
    }
    if (bestCost >= 1e6) best = [clampX(best[0]), clampY(best[1]), 0, 0];
    best[2] = best[0] + w;
    best[3] = best[1] + h;
    // Still covering one (a crowded corner): stack below what it covers.
    for (let tries = 0; tries < 6 && taken.some((t) => overlap(best, t) > 0); tries++) {
      const hit = taken.find((t) => overlap(best, t) > 0);
      const y = hit[3] + 1 + h <= H ? hit[3] + 1 : hit[1] - h - 1;
      best = [best[0], clampY(y), best[0] + w, clampY(y) + h];
    }
    taken.push(best);
    it.label.style.left = best[0] + "px";
    it.label.style.top = best[1] + "px";
  });
}

// Live events can come faster than the screen refreshes: draw the newest once per frame.
function queueLive(ev) {
  state.pendingLive.set(ev.sensor_id, ev);
  if (!state.frameRequested) {
    state.frameRequested = true;
    requestAnimationFrame(() => {
      state.frameRequested = false;
      const events = Array.from(state.pendingLive.values());
      state.pendingLive.clear();
      for (const e of events) renderLive(e);
    });
  }
}

// -- alerts

function showResolved() {
  return $("show-resolved").checked;
}

function listHeld() {
  return state.pointerOnList || Date.now() < state.touchUntil;
}

async function loadAlerts() {
  try {
    // Services before operators' alerts call the status `state`.
    const which = showResolved() ? "all" : "unresolved";
    const data = await api(`/api/alerts?limit=200&${state.features.operators ? "status" : "state"}=${which}`);
    const ids = new Set();
    let fresh = false;
    for (const raw of data.alerts) {
      const a = normAlert(raw);
      ids.add(a.id);
      state.alerts.set(a.id, a);
      // Alerts older than this page do not beep at once; ones raised while it was disconnected do.
      if (!state.seenAlerts.has(a.id) && state.alertsLoaded && a.status === "open") fresh = true;
      state.seenAlerts.add(a.id);
    }
    // What the list no longer returns was resolved meanwhile (or is beyond the limit).
    for (const id of Array.from(state.alerts.keys())) if (!ids.has(id)) state.alerts.delete(id);
    state.alertsLoaded = true;
    renderAlerts();
    for (const s of state.sensors.values()) updateAlarm(s);
    if (fresh) soundNow();
  } catch (e) {
    message("could not load alerts: " + e.message, true);
  }
}

function onAlert(raw) {
  const a = normAlert(raw);
  const isNew = !state.seenAlerts.has(a.id);
  state.seenAlerts.add(a.id);
  const before = state.alerts.get(a.id);
  state.alerts.set(a.id, a);
  renderAlerts();
  refreshDetail(a);
  const s = state.sensors.get(a.sensorId);
  if (s) updateAlarm(s);
  timelines.alertsChanged(a.sensorId);
  const repeated = before && a.raises > before.raises;
  if ((isNew || repeated) && a.status === "open") soundNow();
}

function message(text, isError) {
  const m = $("alerts-message");
  m.textContent = text;
  m.classList.toggle("error", Boolean(isError));
}

const STATUS_RANK = { open: 0, acknowledged: 1, resolved: 2 };

function visibleAlerts() {
  return Array.from(state.alerts.values()).filter((a) => showResolved() || a.status !== "resolved");
}

function byUrgency(a, b) {
  return (STATUS_RANK[a.status] - STATUS_RANK[b.status]) || ((b.lastRaised || 0) - (a.lastRaised || 0)) || (b.id - a.id);
}

function rowFor(a) {
  let row = state.rows.get(a.id);
  if (row) return row;
  const f = {
    room: el("span", { class: "row-room", "data-field": "room" }),
    resident: el("span", { class: "row-resident", "data-field": "resident" }),
    repeats: el("span", { class: "repeats", "data-field": "repeats", hidden: "" }),
    badge: el("span", { class: "badge", "data-field": "state" }),
    elapsed: el("span", { class: "row-elapsed", "data-field": "elapsed" }),
    ongoing: el("span", { class: "row-ongoing", "data-field": "ongoing" }),
    by: el("span", { class: "row-by", "data-field": "by" }),
  };
  const main = el("div", { class: "row-main", role: "button", tabindex: "0" },
    el("span", { class: "row-line" }, f.room, f.resident, f.repeats),
    el("span", { class: "row-line row-detail" }, f.elapsed, f.ongoing),
    el("span", { class: "row-line row-detail" }, f.badge, f.by));
  // One action slot of a fixed width: Acknowledge, then Resolve, then nothing (kept empty), so
  // a change of state never changes the row's size.
  const action = el("button", { type: "button", class: "row-action" });
  row = el("li", { class: "alert-row", "data-alert-id": String(a.id) }, main, action);
  row._f = f;
  const open = () => openDetail(a.id, ctx);
  main.addEventListener("click", open);
  main.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } });
  action.addEventListener("click", (e) => {
    e.stopPropagation();
    if (action.dataset.action === "acknowledge") acknowledge(a.id);
    else if (action.dataset.action === "resolve") resolve(a.id);
  });
  state.rows.set(a.id, row);
  fillRow(row, a);
  return row;
}

function fillRow(row, a) {
  const f = row._f;
  const set = (node, text) => { if (node.textContent !== text) node.textContent = text; };
  row.dataset.status = a.status;
  row.dataset.ongoing = String(a.ongoing);
  row.dataset.sensorId = a.sensorId;
  row.classList.toggle("gone", !showResolved() && a.status === "resolved");
  set(f.room, roomOf(a));
  const resident = residentOf(a);
  set(f.resident, resident || "person #" + a.trackId);
  f.repeats.hidden = !(a.raises > 1);
  set(f.repeats, "×" + a.raises);
  f.repeats.title = a.raises > 1 ? `raised ${a.raises} times, last at ${fmtTime(a.lastRaised)}` : "";
  set(f.badge, a.status === "open" ? "not acknowledged" : a.status);
  f.badge.dataset.state = a.status;
  set(f.elapsed, elapsedText(a));
  f.elapsed.title = "fall started " + fmtTime(a.started) + ", alert at " + fmtTime(a.raised);
  set(f.ongoing, a.ongoing ? "ongoing" : "ended");
  f.ongoing.dataset.ongoing = String(a.ongoing);
  const by = a.status === "resolved" ? a.resolvedBy : a.status === "acknowledged" ? a.ackBy : null;
  set(f.by, by ? "by " + by : "");
  const action = row.querySelector(".row-action");
  const kind = a.status === "open" ? "acknowledge" : a.status === "acknowledged" ? "resolve" : "";
  if (action.dataset.action !== kind) {
    action.dataset.action = kind;
    action.textContent = kind === "acknowledge" ? "Acknowledge" : kind === "resolve" ? "Resolve" : "";
    action.classList.toggle("ack", kind === "acknowledge");
    action.disabled = !kind;
  }
  action.setAttribute("aria-label", kind ? `${action.textContent} the fall in ${placeOf(a)}` : "");
  row.querySelector(".row-main").setAttribute("aria-label", `open alert ${a.id}: ${placeOf(a)}, ${elapsedText(a)}, ${a.status}`);
}

function elapsedText(a) {
  const t = a.started ?? a.raised;
  return t == null ? "" : "fell " + fmtElapsed((Date.now() - t) / 1000) + " ago";
}

function groupKey(a) {
  return roomOf(a);
}

function groupFor(key) {
  let g = state.groups.get(key);
  if (g) return g;
  const count = el("span", { class: "group-count", "data-field": "count" });
  const name = el("span", { class: "group-room", text: key });
  g = el("section", { class: "alert-group", "data-room": key }, el("h3", {}, name, count), el("ul", { class: "alert-rows" }));
  g._count = count;
  state.groups.set(key, g);
  return g;
}

function renderAlerts(force) {
  const visible = visibleAlerts();
  // In place: every row that exists shows its alert's newest state.
  for (const [id, row] of state.rows) {
    const a = state.alerts.get(id);
    if (a) fillRow(row, a);
    else row.classList.add("gone");
  }
  const missing = visible.filter((a) => !state.rows.has(a.id));
  const held = listHeld() && !force;
  const banner = $("new-alerts");
  if (held) {
    const n = missing.length;
    banner.hidden = n === 0;
    banner.textContent = n === 1 ? "1 new alert — show" : n + " new alerts — show";
    updateGroupCounts();
  } else {
    banner.hidden = true;
    rebuildOrder(visible);
  }
  const open = visible.filter((a) => a.status === "open").length;
  $("no-alerts").hidden = visible.length > 0;
  $("no-alerts").textContent = showResolved() ? "No alerts." : "No open alerts.";
  document.title = (open ? `(${open}) FALL – ` : "") + "thermal-action";
  updateSummary();
  updateUrgent();
}

// Puts groups and rows in order, moving only nodes that are out of place (keyed by id).
function rebuildOrder(visible) {
  const byGroup = new Map();
  for (const a of visible.sort(byUrgency)) {
    const k = groupKey(a);
    if (!byGroup.has(k)) byGroup.set(k, []);
    byGroup.get(k).push(a);
  }
  const container = $("alert-groups");
  const wantGroups = Array.from(byGroup.keys()); // the most urgent alert's group first
  wantGroups.forEach((k, i) => {
    const g = groupFor(k);
    if (container.children[i] !== g) container.insertBefore(g, container.children[i] || null);
    const ul = g.querySelector("ul");
    byGroup.get(k).forEach((a, j) => {
      const row = rowFor(a);
      if (ul.children[j] !== row) ul.insertBefore(row, ul.children[j] || null);
    });
    while (ul.children.length > byGroup.get(k).length) ul.lastChild.remove();
  });
  for (const [k, g] of state.groups) {
    if (!byGroup.has(k)) { g.remove(); state.groups.delete(k); }
  }
  const shown = new Set(visible.map((a) => a.id));
  for (const [id, row] of state.rows) {
    if (!shown.has(id)) { row.remove(); state.rows.delete(id); }
  }
  updateGroupCounts();
}

function updateGroupCounts() {
  for (const [k, g] of state.groups) {
    let open = 0, unresolved = 0;
    for (const row of g.querySelectorAll(".alert-row")) {
      const a = state.alerts.get(Number(row.dataset.alertId));
      if (!a) continue;
      if (a.status === "open") open++;
      if (a.status !== "resolved") unresolved++;
    }
    const text = String(unresolved);
    if (g._count.textContent !== text) g._count.textContent = text;
    g._count.title = `${unresolved} alert${unresolved === 1 ? "" : "s"} not resolved, ${open} not acknowledged`;
    g.dataset.open = String(open);
  }
}

function updateSummary() {
  const all = Array.from(state.sensors.values());
  const live = all.filter((s) => s.status && s.status.status === "live").length;
  const open = Array.from(state.alerts.values()).filter((a) => a.status === "open").length;
  $("summary").textContent = `${open} alert${open === 1 ? "" : "s"} not acknowledged · ` +
    `${all.length} room${all.length === 1 ? "" : "s"} · ${live} live`;
  $("summary").title = $("summary").textContent;
  $("summary").classList.toggle("alarm", open > 0);
}

// Phone: the most urgent open alert and its Acknowledge, fixed at the bottom of the screen.
function updateUrgent() {
  const open = Array.from(state.alerts.values()).filter((a) => a.status === "open").sort(byUrgency);
  const bar = $("urgent");
  bar.hidden = open.length === 0;
  document.body.classList.toggle("has-urgent", open.length > 0);
  if (!open.length) return;
  const a = open[0];
  bar.dataset.alertId = String(a.id);
  $("urgent-room").textContent = placeOf(a);
  $("urgent-detail").textContent = elapsedText(a) + (open.length > 1 ? ` · ${open.length - 1} more` : "");
  $("urgent-ack").setAttribute("aria-label", `Acknowledge the fall in ${placeOf(a)}`);
}

function tickElapsed() {
  for (const [id, row] of state.rows) {
    const a = state.alerts.get(id);
    if (!a) continue;
    const t = elapsedText(a);
    if (row._f.elapsed.textContent !== t) row._f.elapsed.textContent = t;
  }
  const u = $("urgent");
  if (!u.hidden) updateUrgent();
}

// -- acknowledge / resolve

async function acknowledge(id) {
  const a = state.alerts.get(id);
  if (!a) return;
  const answer = await confirmAction({
    title: `Acknowledge the fall in ${placeOf(a)}?`, okText: "Acknowledge", name: operatorName(),
  });
  if (!answer) return;
  await postState(a, "acknowledge", answer);
}

async function resolve(id) {
  const a = state.alerts.get(id);
  if (!a) return;
  const answer = await confirmAction({
    title: `Resolve the fall in ${placeOf(a)}?`, okText: "Resolve", name: operatorName(),
    warning: a.ongoing ? "The sensor still sees this person on the floor." : null, needOngoing: a.ongoing,
  });
  if (!answer) return;
  await postState(a, "resolve", answer);
}

async function postState(a, action, answer) {
  setOperatorName(answer.name);
  // The operators' API takes `who` (and refuses other fields); the one before it took `by`.
  const body = state.features.operators ? { who: answer.name, note: answer.note || "" } : { by: answer.name, note: answer.note || "" };
  if (action === "resolve" && answer.confirmOngoing && state.features.operators) body.confirm_ongoing = true;
  try {
    const row = await api(`/api/alerts/${a.id}/${action}`, { method: "POST", json: body });
    onAlert(row.alert || row);
    message(`${placeOf(a)}: ${action === "resolve" ? "resolved" : "acknowledged"} by ${answer.name}.`, false);
    return true;
  } catch (e) {
    if (e.status === 409 && action === "resolve" && !answer.confirmOngoing) {
      // The service knows the fall goes on though the page did not: ask again, explicitly.
      const again = await confirmAction({ title: `Resolve the fall in ${placeOf(a)}?`, okText: "Resolve",
        name: answer.name, warning: "The service says the fall is still going on.", needOngoing: true });
      if (again) return postState(a, action, again);
      return false;
    }
    message(`could not ${action} the alert in ${placeOf(a)}: ${e.detail || e.message}`, true);
    return false;
  }
}

// -- service figures (engineer) and the "behind" banner

function onStats(st) {
  state.stats = st;
  const delay = st.delay_p95_s ?? st.latency_s_p95;
  const behind = $("behind");
  behind.hidden = !st.behind;
  if (st.behind) {
    behind.textContent = "The service is behind: predictions come " +
      (delay != null ? Math.round(delay) + " s late (p95)" : "late") + ". Falls may be shown late.";
  }
  const parts = [];
  if (st.frames_per_second != null) parts.push(st.frames_per_second.toFixed(1) + " frames/s");
  if (delay != null) parts.push("delay p95 " + delay.toFixed(1) + " s");
  if (st.model_ms_p95 != null) parts.push("model p95 " + Math.round(st.model_ms_p95) + " ms");
  if (st.queue_depth) parts.push("queue " + st.queue_depth.join("/"));
  if (st.frames_dropped_total != null) parts.push(st.frames_dropped_total + " dropped");
  if (st.workers != null) parts.push("workers " + st.workers_alive + "/" + st.workers);
  if (st.worker_restarts_total) parts.push(st.worker_restarts_total + " restarts");
  $("service-stats").textContent = parts.join(" · ");
}

async function loadStats() {
  try {
    onStats(await api("/api/stats"));
  } catch (e) { /* the next round tries again */ }
}

// -- live events

function onEvent(ev) {
  state.lastEvent = Date.now();
  if (ev.type === "sensors") {
    for (const st of ev.sensors) updateStatus(st);
    updateSummary();
  } else if (ev.type === "sensor") { // one sensor between the rounds (drops as they happen)
    updateStatus(ev.sensor);
  } else if (ev.type === "live") {
    queueLive(ev);
  } else if (ev.type === "alert") {
    onAlert(ev.alert);
  } else if (ev.type === "zones") {
    const s = state.sensors.get(ev.sensor_id);
    if (s) {
      s.zones = ev;
      drawZones(s.els.zoneSvg, s.els.zoneLabels, ev.zones || []);
    }
  } else if (ev.type === "stats") {
    onStats(ev.stats || ev);
  }
}

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/ws/dashboard`);
  state.ws = ws;
  ws.onopen = () => {
    state.backoff = BACKOFF_MIN_MS;
    state.lastEvent = Date.now();
    setConnected(true, "");
    loadAlerts(); // catch up on what changed while disconnected
  };
  ws.onmessage = (m) => {
    try {
      onEvent(JSON.parse(m.data));
    } catch (e) {
      console.error("dashboard event failed", e);
    }
  };
  ws.onclose = (e) => {
    if (state.ws !== ws) return;
    state.ws = null;
    const delay = state.backoff;
    state.backoff = Math.min(BACKOFF_MAX_MS, state.backoff * 2);
    const why = e.code === 4401 ? "The token was refused: open the address serve printed (with ?token=). " : "";
    setConnected(false, `${why}Reconnecting in ${Math.round(delay / 1000) || 1} s…`);
    setTimeout(connect, delay * (0.8 + 0.4 * Math.random()));
  };
  ws.onerror = () => { /* onclose follows */ };
}

// A socket that silently stops delivering (network change, sleeping laptop) counts as dropped.
function watchdog() {
  if (state.ws && state.connected && Date.now() - state.lastEvent > STALE_MS) state.ws.close();
}

// -- views

function setView(view) {
  state.view = view === "engineer" ? "engineer" : "operator";
  document.body.dataset.view = state.view;
  localStorage.setItem(VIEW_KEY, state.view);
  for (const b of document.querySelectorAll(".view-switch button")) {
    b.setAttribute("aria-pressed", String(b.dataset.view === state.view));
  }
  for (const s of state.sensors.values()) if (s.live) renderLive(s.live);
  timelines.setVisible(state.view === "engineer");
}

function renderLegend() {
  const legend = $("legend");
  legend.replaceChildren();
  const names = (state.info && state.info.class_names) || [];
  for (const g of GROUPS) {
    const members = names.filter((n) => actionGroup(n, state.info.fall_class).key === g.key);
    const swatch = el("span", { class: "swatch" });
    swatch.style.background = g.colour;
    legend.append(el("span", { class: "legend-item", "data-group": g.key, title: members.join(", ") }, swatch, g.label));
  }
}

async function probeFeatures() {
  const probes = {
    operators: "/api/alerts/summary", info: "/api/sensors/0/info", clip: "/api/alerts/0/clip",
    strip: "/api/alerts/0/strip.png", events: "/api/alerts/0/events", feedback: "/api/alerts/0/feedback",
  };
  const found = await Promise.all(Object.values(probes).map(hasRoute));
  Object.keys(probes).forEach((k, i) => { state.features[k] = found[i]; });
  document.body.dataset.features = Object.keys(probes).filter((k) => state.features[k]).join(" ");
}

// What the other modules need from this one.
const ctx = {
  state, api, acknowledge, resolve, roomOf, residentOf, placeOf, operatorName, setOperatorName,
  message, loadZones,
};
const timelines = new Timelines(ctx);

// -- start

async function start() {
  // The cookie now carries the token: keep it out of the address bar (and of screenshots).
  if (new URLSearchParams(location.search).has("token")) history.replaceState(null, "", location.pathname);
  setOperatorName(operatorName());
  $("operator").addEventListener("click", async () => {
    const name = await askName(operatorName());
    if (name) setOperatorName(name);
  });
  $("sound").checked = localStorage.getItem(SOUND_KEY) === "1";
  $("sound").addEventListener("change", () => {
    localStorage.setItem(SOUND_KEY, soundOn() ? "1" : "0");
    if (soundOn()) { ensureAudio(); soundNow(); }
  });
  // A context restored from the stored setting may start suspended until the first gesture.
  document.addEventListener("pointerdown", () => { if (soundOn()) ensureAudio(); }, { once: true });
  $("show-resolved").addEventListener("change", loadAlerts);
  for (const b of document.querySelectorAll(".view-switch button")) b.addEventListener("click", () => setView(b.dataset.view));
  $("urgent-ack").addEventListener("click", () => acknowledge(Number($("urgent").dataset.alertId)));

  // The list holds still under the pointer (and for a while after a touch); leaving it lets
  // what waited come in.
  const list = document.querySelector(".alerts-panel");
  list.addEventListener("pointerenter", (e) => { if (e.pointerType === "mouse" || e.pointerType === "pen") state.pointerOnList = true; });
  list.addEventListener("pointerleave", () => { state.pointerOnList = false; renderAlerts(); });
  const touched = () => { state.touchUntil = Date.now() + TOUCH_HOLD_MS; };
  list.addEventListener("touchstart", touched, { passive: true });
  list.addEventListener("scroll", touched, { passive: true });
  $("new-alerts").addEventListener("click", () => renderAlerts(true));
  window.addEventListener("resize", () => { for (const s of state.sensors.values()) if (s.live) renderLive(s.live); });

  setConnected(false, "Connecting…");
  try {
    await probeFeatures();
    state.info = await api("/api/info");
    renderLegend();
    const data = await api("/api/sensors");
    for (const st of data.sensors) updateStatus(st);
  } catch (e) {
    $("reconnect-info").textContent = e.status === 401
      ? "The token was refused: open the address serve printed (with ?token=)."
      : "Could not reach the service (" + e.message + "). Reload the page to try again.";
    $("connection").textContent = "error";
    if (e.status === 401) return;
  }
  setView(localStorage.getItem(VIEW_KEY) || "operator");
  connect();
  loadStats();
  setInterval(loadStats, STATS_EVERY_MS);
  setInterval(watchdog, 1000);
  setInterval(() => {
    tickElapsed();
    soundTick();
    if (!listHeld() && !$("new-alerts").hidden) renderAlerts(); // a touch's hold ran out
  }, 1000);
  document.body.dataset.ready = "true";
}

// For the browser tests and for debugging from the console.
window.thermalDashboard = { state, onEvent, onStats, soundPlan, renderAlerts };
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
