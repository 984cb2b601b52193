// thermal-action dashboard: sensor tiles (live image, people, status), fall alerts with
// acknowledge/resolve, and a one-hour action timeline per sensor.
//
// Data: GET /api/info, /api/sensors, /api/alerts, /api/sensors/{id}/timeline once, then live
// events over WS /ws/dashboard ("sensors" each second, "live" per frame, "alert" on changes).
// Auth is the ta_token cookie that GET /?token=... set. Plain JS, no dependencies.
"use strict";

(function () {
  const NAME_KEY = "thermal-action.operator";
  const SOUND_KEY = "thermal-action.sound";
  const TIMELINE_SECONDS = 3600;
  const TIMELINE_REFRESH_MS = 10000;
  const STALE_MS = 10000; // no event for this long (the server sends one a second): reconnect
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 15000;
  const FALL_COLOUR = "#e5322d";
  // Distinct colours for the other actions (no red: red means fall).
  const PALETTE = ["#4e9be6", "#53b86a", "#e0a532", "#9a7fe0", "#39b8b0", "#d472b8", "#a3a94a",
    "#8a9bb0", "#e07a3f", "#6fc3e8", "#b8875a", "#7fd18f", "#c9c2f0", "#f0d58a", "#5f7bd1", "#e8a0b4"];

  const state = {
    info: null, // /api/info
    colours: new Map(), // action -> colour
    sensors: new Map(), // sensor id -> {status, live, tile, els, timeline}
    alerts: new Map(), // alert id -> Alert
    seenAlerts: new Set(), // ids already beeped for
    alertsLoaded: false,
    ws: null,
    backoff: BACKOFF_MIN_MS,
    lastEvent: 0,
    connected: false,
    pendingLive: new Map(),
    frameRequested: false,
    audio: null,
  };

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  }

  // -- formatting

  function fmtTime(ms) {
    if (ms == null) return "–";
    const d = new Date(ms);
    const today = new Date().toDateString() === d.toDateString();
    const hms = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
    return today ? hms : d.toLocaleDateString([], { month: "short", day: "numeric" }) + " " + hms;
  }

  function fmtAge(s) {
    if (s == null) return "never";
    if (s < 1) return "now";
    if (s < 90) return Math.round(s) + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    return Math.round(s / 3600) + " h ago";
  }

  function fmtScore(v) {
    return v == null ? "–" : v.toFixed(2);
  }

  function actionColour(action) {
    if (state.info && action === state.info.fall_class) return FALL_COLOUR;
    if (!state.colours.has(action)) {
      state.colours.set(action, PALETTE[state.colours.size % PALETTE.length]);
    }
    return state.colours.get(action);
  }

  // -- HTTP

  async function api(path, options) {
    const r = await fetch(path, Object.assign({ credentials: "same-origin", cache: "no-store" }, options || {}));
    if (!r.ok) {
      let detail = r.status + " " + r.statusText;
      try {
        const body = await r.json();
        if (body && body.detail) detail = r.status + ": " + body.detail;
      } catch (e) { /* not JSON */ }
      const err = new Error(detail);
      err.status = r.status;
      throw err;
    }
    return r.json();
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

  function beep() {
    if (!soundOn()) return;
    ensureAudio();
    const ctx = state.audio;
    if (!ctx) return;
    const t = ctx.currentTime;
    for (let i = 0; i < 3; i++) { // three short 880 Hz pips
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = "square";
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.0001, t + i * 0.25);
      gain.gain.exponentialRampToValueAtTime(0.2, t + i * 0.25 + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + i * 0.25 + 0.18);
      osc.connect(gain).connect(ctx.destination);
      osc.start(t + i * 0.25);
      osc.stop(t + i * 0.25 + 0.2);
    }
  }

  // -- connection state

  function setConnected(on, text) {
    state.connected = on;
    const c = $("connection");
    c.dataset.state = on ? "connected" : "disconnected";
    c.textContent = on ? "connected" : "disconnected";
    $("disconnected").hidden = on;
    if (text !== undefined) $("reconnect-info").textContent = text;
    document.body.dataset.connection = c.dataset.state;
  }

  // -- sensor tiles

  function sensorEntry(id) {
    let s = state.sensors.get(id);
    if (s) return s;
    s = { id: id, status: null, live: null, timelineItems: null, timelineFetched: 0 };
    const img = el("img", { class: "frame", alt: "thermal image of sensor " + id, hidden: "" });
    const boxes = el("div", { class: "boxes" });
    const waiting = el("div", { class: "waiting", text: "waiting for frames" });
    const fallLabel = el("span", { class: "fall-label", role: "alert", hidden: "" });
    const view = el("div", { class: "view" }, img, boxes, waiting);
    const badge = el("span", { class: "badge", "data-field": "status", text: "…" });
    const head = el("div", { class: "tile-head" }, el("h3", { text: id }), fallLabel, badge);
    const stats = el("dl", { class: "stats" });
    const fields = {};
    for (const [key, label] of [["connected", "connected"], ["fps", "fps"], ["age", "last frame"],
      ["frames", "frames"], ["dropped", "dropped"], ["bad", "bad frames"], ["people", "people"]]) {
      const dd = el("dd", { "data-field": key, text: "–" });
      stats.append(el("div", {}, el("dt", { text: label }), dd));
      fields[key] = dd;
    }
    const error = el("p", { class: "last-error", "data-field": "last_error", hidden: "" });
    const tile = el("article", { class: "tile", "data-sensor-id": id, "data-state": "unknown", "data-fallen": "false",
      "aria-label": "sensor " + id }, head, view, stats, error);
    s.els = { tile, img, boxes, waiting, fallLabel, badge, fields, error, view };

    // The timeline row of this sensor.
    const canvas = el("canvas", { class: "strip", "data-sensor-id": id, "data-items": "0", role: "img",
      "aria-label": "actions of sensor " + id + " in the last hour: none yet" });
    const row = el("div", { class: "timeline-row", "data-sensor-id": id },
      el("span", { class: "timeline-label", text: id }), canvas);
    s.els.canvas = canvas;
    s.els.row = row;

    state.sensors.set(id, s);
    insertSorted($("sensors"), tile, id);
    insertSorted($("timelines"), row, id);
    $("no-sensors").hidden = true;
    fetchTimeline(s);
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

  function updateStatus(st) {
    const s = sensorEntry(st.sensor_id);
    s.status = st;
    const f = s.els.fields;
    s.els.tile.dataset.state = st.status;
    s.els.badge.textContent = st.status;
    s.els.badge.dataset.state = st.status;
    f.connected.textContent = st.connected > 0 ? (st.transports.join(", ") || String(st.connected)) : "no";
    f.connected.dataset.value = String(st.connected);
    f.fps.textContent = st.fps ? st.fps.toFixed(1) : "0";
    f.age.textContent = fmtAge(st.last_frame_age_s);
    f.frames.textContent = String(st.frames);
    f.dropped.textContent = String(st.dropped);
    f.dropped.classList.toggle("warn", st.dropped > 0);
    const bad = st.bad_shape + st.bad_message + st.invalid_frames;
    f.bad.textContent = String(bad);
    f.bad.classList.toggle("warn", bad > 0);
    f.bad.title = `wrong shape ${st.bad_shape}, undecodable ${st.bad_message}, no valid pixel ` +
      `${st.invalid_frames}; repaired pixels ${st.repaired_pixels}; new streams ${st.new_streams}`;
    s.els.error.hidden = !st.last_error;
    s.els.error.textContent = st.last_error ? "last error: " + st.last_error : "";
    updateAlarm(s);
    // First predictions of a sensor whose timeline is empty: show them without waiting 10 s.
    if (st.predictions > 0 && !s.timelineItems && Date.now() - s.timelineFetched > 2000) fetchTimeline(s);
  }

  function openAlertsOf(id) {
    let n = 0;
    for (const a of state.alerts.values()) if (a.sensor_id === id && a.state === "open") n++;
    return n;
  }

  function updateAlarm(s) {
    const fallen = Boolean((s.live && s.live.fallen) || (s.status && s.status.fallen));
    const open = Math.max(s.status ? s.status.open_alerts : 0, openAlertsOf(s.id));
    s.els.tile.dataset.fallen = String(fallen);
    s.els.tile.dataset.openAlerts = String(open);
    s.els.tile.classList.toggle("alarm", fallen);
    s.els.tile.classList.toggle("unacknowledged", !fallen && open > 0);
    let label = "";
    if (fallen) {
      const who = s.live ? s.live.tracks.filter((t) => t.fallen).map((t) => "#" + t.track_id) : [];
      label = "FALL" + (who.length ? " " + who.join(" ") : "");
    } else if (open > 0) {
      label = open === 1 ? "alert not acknowledged" : open + " alerts not acknowledged";
    }
    s.els.fallLabel.hidden = !label;
    s.els.fallLabel.textContent = label;
  }

  // "lower position-kneeling" -> "kneeling": the part after the group in the class list's names,
  // unless two classes would then read the same ("lower position-other" and "other").
  function shortAction(a) {
    if (a == null) return "…";
    if (!state.shortNames) {
      state.shortNames = new Map();
      const names = state.info ? state.info.class_names : [];
      const cut = (n) => { const i = n.indexOf("-"); return i > 0 && i < n.length - 1 ? n.slice(i + 1) : n; };
      const uses = new Map();
      for (const n of names) uses.set(cut(n), (uses.get(cut(n)) || 0) + 1);
      for (const n of names) state.shortNames.set(n, (uses.get(cut(n)) > 1 ? n.replace("-", " ") : cut(n)).replace(/_/g, " "));
      if (!state.info) return a;
    }
    return state.shortNames.get(a) || a.replace(/_/g, " ");
  }

  function renderLive(ev) {
    const s = sensorEntry(ev.sensor_id);
    s.live = ev;
    const { img, boxes, waiting, view } = s.els;
    if (ev.frame_png) {
      img.src = "data:image/png;base64," + ev.frame_png;
      img.hidden = false;
      waiting.hidden = true;
    }
    view.style.aspectRatio = ev.width + " / " + ev.height;
    view.dataset.timestamp = String(ev.timestamp);
    boxes.replaceChildren();
    for (const t of ev.tracks) {
      const [x1, y1, x2, y2] = t.box;
      const box = el("div", { class: "box" + (t.fallen ? " fallen" : ""), "data-track-id": String(t.track_id),
        "data-action": t.action == null ? "" : t.action, "data-fallen": String(Boolean(t.fallen)) });
      box.style.left = (100 * x1 / ev.width) + "%";
      box.style.top = (100 * y1 / ev.height) + "%";
      box.style.width = (100 * Math.max(0, x2 - x1) / ev.width) + "%";
      box.style.height = (100 * Math.max(0, y2 - y1) / ev.height) + "%";
      const label = el("span", { class: "box-label", text: "#" + t.track_id + " " + shortAction(t.action) });
      if (t.action != null && !t.fallen) label.style.borderLeftColor = actionColour(t.action);
      if (t.score != null) box.title = `track ${t.track_id}: ${t.action} ${fmtScore(t.score)}` +
        (t.fall_score != null ? `, fall ${fmtScore(t.fall_score)}` : "");
      box.append(label);
      boxes.append(box);
    }
    s.els.fields.people.textContent = String(ev.tracks.length);
    updateAlarm(s);
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

  async function loadAlerts() {
    try {
      const data = await api("/api/alerts?limit=200&state=" + (showResolved() ? "all" : "unresolved"));
      state.alerts.clear();
      let fresh = false;
      for (const a of data.alerts) {
        state.alerts.set(a.id, a);
        // Alerts older than this page do not beep; ones raised while it was disconnected do.
        if (!state.seenAlerts.has(a.id) && state.alertsLoaded && a.state === "open" && a.active) fresh = true;
        state.seenAlerts.add(a.id);
      }
      state.alertsLoaded = true;
      if (fresh) beep();
      renderAlerts();
    } catch (e) {
      message("could not load alerts: " + e.message, true);
    }
  }

  function onAlert(a) {
    const isNew = !state.seenAlerts.has(a.id);
    state.seenAlerts.add(a.id);
    state.alerts.set(a.id, a);
    if (isNew && a.state === "open" && a.active) beep();
    renderAlerts();
    const s = state.sensors.get(a.sensor_id);
    if (s) updateAlarm(s);
  }

  function message(text, isError) {
    const m = $("alerts-message");
    m.textContent = text;
    m.classList.toggle("error", Boolean(isError));
  }

  function operatorName() {
    return $("operator-name").value.trim();
  }

  async function setAlertState(id, action) {
    const name = operatorName();
    if (!name) {
      const input = $("operator-name");
      input.classList.add("invalid");
      input.focus();
      message("Type your name (top right) to " + action + " an alert.", true);
      return;
    }
    localStorage.setItem(NAME_KEY, name);
    try {
      const a = await api(`/api/alerts/${id}/${action}`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ by: name }),
      });
      onAlert(a);
      message(`Alert ${id} ${a.state} by ${name}.`, false);
    } catch (e) {
      message(`could not ${action} alert ${id}: ${e.message}`, true);
    }
  }

  function renderAlerts() {
    const body = $("alerts-body");
    const rows = Array.from(state.alerts.values())
      .filter((a) => showResolved() || a.state !== "resolved")
      .sort((a, b) => b.id - a.id)
      .slice(0, 200);
    body.replaceChildren();
    for (const a of rows) {
      const where = `sensor ${a.sensor_id}, track ${a.track_id}`;
      const stateCell = el("td", {}, el("span", { class: "badge", "data-state": a.state, text: a.state }));
      if (a.active) stateCell.append(el("span", { class: "ongoing", text: "ongoing" }));
      const by = a.state === "resolved" ? a.resolved_by : a.acknowledged_by;
      const byAt = a.state === "resolved" ? a.resolved_at : a.acknowledged_at;
      const buttons = el("td", { class: "actions" });
      if (a.state === "open") {
        const ack = el("button", { type: "button", class: "ack", "data-action": "acknowledge",
          "aria-label": `Acknowledge alert ${a.id} (${where})`, text: "Acknowledge" });
        ack.addEventListener("click", () => setAlertState(a.id, "acknowledge"));
        buttons.append(ack);
      }
      if (a.state !== "resolved") {
        const res = el("button", { type: "button", class: "resolve", "data-action": "resolve",
          "aria-label": `Resolve alert ${a.id} (${where})`, text: "Resolve" });
        res.addEventListener("click", () => setAlertState(a.id, "resolve"));
        buttons.append(res);
      }
      const tr = el("tr", { "data-alert-id": String(a.id), "data-state": a.state, "data-active": String(Boolean(a.active)),
        "data-sensor-id": a.sensor_id, "data-track-id": String(a.track_id), class: "alert-" + a.state },
        stateCell,
        el("td", {}, el("span", { class: "sensor", "data-field": "sensor", text: a.sensor_id }),
          el("span", { class: "detail" }, el("span", { "data-field": "track", text: "track #" + a.track_id }),
            " · peak ", el("span", { "data-field": "peak", text: fmtScore(a.peak_score) }))),
        el("td", {}, el("span", { "data-field": "time", text: fmtTime(a.fired_timestamp),
          title: "fall started " + fmtTime(a.start_timestamp) + (a.end_timestamp ? ", ended " + fmtTime(a.end_timestamp) : "") }),
          el("span", { class: "detail" + (by ? "" : " none") }, by ? (a.state === "resolved" ? "resolved by " : "ack. by ") : "",
            el("span", { "data-field": "by", text: by || "", title: byAt ? fmtTime(byAt) : "" }))),
        buttons);
      body.append(tr);
    }
    const open = rows.filter((a) => a.state === "open").length;
    $("no-alerts").hidden = rows.length > 0;
    $("no-alerts").textContent = showResolved() ? "No alerts." : "No open alerts.";
    document.title = (open ? `(${open}) FALL – ` : "") + "thermal-action";
    updateSummary();
  }

  function updateSummary() {
    const all = Array.from(state.sensors.values());
    const live = all.filter((s) => s.status && s.status.status === "live").length;
    const open = Array.from(state.alerts.values()).filter((a) => a.state === "open").length;
    $("summary").textContent = `${all.length} sensor${all.length === 1 ? "" : "s"} · ${live} live · ` +
      `${open} open alert${open === 1 ? "" : "s"}`;
    $("summary").classList.toggle("alarm", open > 0);
  }

  // -- timeline

  async function fetchTimeline(s) {
    s.timelineFetched = Date.now();
    try {
      const data = await api(`/api/sensors/${encodeURIComponent(s.id)}/timeline?seconds=${TIMELINE_SECONDS}`);
      s.timelineItems = data.items;
      drawTimeline(s);
    } catch (e) {
      s.els.canvas.setAttribute("aria-label", "timeline of sensor " + s.id + " could not be loaded: " + e.message);
    }
  }

  function refreshTimelines() {
    for (const s of state.sensors.values()) fetchTimeline(s);
  }

  function drawTimeline(s) {
    const canvas = s.els.canvas;
    const items = s.timelineItems || [];
    const ratio = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const h = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== w) canvas.width = w;
    if (canvas.height !== h) canvas.height = h;
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, w, h);
    ctx.fillStyle = "#1b222c";
    ctx.fillRect(0, 0, w, h);
    const end = Date.now();
    const start = end - TIMELINE_SECONDS * 1000;
    const x = (t) => ((t - start) / (end - start)) * w;
    // One lane per track (the newest tracks, at most 4), each item lasting until the track's next item.
    const byTrack = new Map();
    for (const it of items) {
      if (!byTrack.has(it.track_id)) byTrack.set(it.track_id, []);
      byTrack.get(it.track_id).push(it);
    }
    const tracks = Array.from(byTrack.keys()).sort((a, b) => {
      const la = byTrack.get(a), lb = byTrack.get(b);
      return lb[lb.length - 1].timestamp - la[la.length - 1].timestamp;
    }).slice(0, 4).sort((a, b) => a - b);
    const lane = h / Math.max(1, tracks.length);
    const maxGap = 30000; // a longer pause between a track's items is shown as a gap
    const counts = new Map();
    tracks.forEach((track, i) => {
      const list = byTrack.get(track);
      list.forEach((it, j) => {
        const next = j + 1 < list.length ? list[j + 1].timestamp : null;
        const until = next != null && next - it.timestamp <= maxGap ? next : it.timestamp + 6000;
        const x0 = x(it.timestamp);
        const x1 = Math.max(x0 + Math.max(2, ratio * 2), x(Math.min(until, end)));
        ctx.fillStyle = actionColour(it.action);
        ctx.fillRect(x0, i * lane + 1, x1 - x0, lane - 2);
        counts.set(it.action, (counts.get(it.action) || 0) + 1);
      });
    });
    // Quarter-hour grid lines.
    ctx.fillStyle = "rgba(255,255,255,0.12)";
    for (let q = 1; q < 4; q++) ctx.fillRect(Math.round((q * w) / 4), 0, Math.max(1, ratio), h);
    canvas.dataset.items = String(items.length);
    canvas.dataset.tracks = String(tracks.length);
    const parts = Array.from(counts.entries()).sort((a, b) => b[1] - a[1]).map(([a, n]) => `${a} ${n}`);
    canvas.setAttribute("aria-label", `actions of sensor ${s.id} in the last hour: ` +
      (parts.length ? parts.join(", ") : "none"));
    canvas.title = parts.length ? parts.join(", ") : "no predictions in the last hour";
  }

  function renderLegend() {
    const legend = $("legend");
    legend.replaceChildren();
    for (const name of state.info.class_names) {
      const swatch = el("span", { class: "swatch" });
      swatch.style.background = actionColour(name);
      legend.append(el("span", { class: "legend-item", "data-action": name, title: name }, swatch, shortAction(name)));
    }
  }

  async function loadInfo() {
    state.info = await api("/api/info");
    state.shortNames = null;
    renderLegend();
    for (const s of state.sensors.values()) drawTimeline(s);
  }

  // -- live events

  function onEvent(ev) {
    state.lastEvent = Date.now();
    if (ev.type === "sensors") {
      for (const st of ev.sensors) updateStatus(st);
      updateSummary();
    } else if (ev.type === "live") {
      queueLive(ev);
    } else if (ev.type === "alert") {
      onAlert(ev.alert);
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
      if (!state.info) loadInfo().catch(() => { /* the legend waits for the next connection */ });
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
    for (const s of state.sensors.values()) {
      // Between status events, keep the "last frame" age moving.
      if (s.status && s.status.last_frame_age_s != null && !state.connected) {
        s.els.fields.age.textContent = fmtAge(s.status.last_frame_age_s + (Date.now() - state.lastEvent) / 1000);
      }
    }
  }

  // -- start

  async function start() {
    // The cookie now carries the token: keep it out of the address bar (and of screenshots).
    if (new URLSearchParams(location.search).has("token")) history.replaceState(null, "", location.pathname);
    const name = localStorage.getItem(NAME_KEY);
    if (name) $("operator-name").value = name;
    $("operator-name").addEventListener("input", () => {
      $("operator-name").classList.remove("invalid");
      const v = operatorName();
      if (v) localStorage.setItem(NAME_KEY, v);
    });
    $("sound").checked = localStorage.getItem(SOUND_KEY) === "1";
    $("sound").addEventListener("change", () => {
      localStorage.setItem(SOUND_KEY, soundOn() ? "1" : "0");
      if (soundOn()) ensureAudio();
    });
    // A context restored from the stored setting may start suspended until the first gesture.
    document.addEventListener("pointerdown", () => { if (soundOn()) ensureAudio(); }, { once: true });
    $("show-resolved").addEventListener("change", loadAlerts);
    window.addEventListener("resize", () => { for (const s of state.sensors.values()) drawTimeline(s); });

    setConnected(false, "Connecting…");
    try {
      await loadInfo();
      const data = await api("/api/sensors");
      for (const st of data.sensors) updateStatus(st);
    } catch (e) {
      $("reconnect-info").textContent = e.status === 401
        ? "The token was refused: open the address serve printed (with ?token=)."
        : "Could not reach the service (" + e.message + "). Reload the page to try again.";
      $("connection").textContent = "error";
      if (e.status === 401) return;
    }
    connect();
    setInterval(refreshTimelines, TIMELINE_REFRESH_MS);
    setInterval(watchdog, 1000);
    document.body.dataset.ready = "true";
  }

  window.thermalDashboard = state; // for the browser test and for debugging from the console
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
