// Engineer view: a strip per sensor of what its people did (five colours, a lane per person)
// over 5 min, 1 h or 24 h, with its alerts marked (a red line where one was raised, the fall's
// span shaded). Drawn on canvas; refreshed while the engineer view is shown.
import { $, el, api, fmtTime, actionGroup, normAlert } from "./common.js";

const LANES = 4; // people drawn per sensor (the most recent tracks)
const REFRESH_MS = { 300: 5000, 3600: 10000, 86400: 60000 };

export class Timelines {
  constructor(ctx) {
    this.ctx = ctx;
    this.seconds = 3600;
    this.rows = new Map(); // sensor id -> {canvas, label, items, fetched}
    this.alerts = new Map(); // sensor id -> [normAlert] of the range (all states)
    this.visible = false;
    this.timer = null;
    for (const b of document.querySelectorAll("#range button")) {
      b.addEventListener("click", () => this.setRange(Number(b.dataset.seconds)));
    }
    window.addEventListener("resize", () => this.drawAll());
    this.drawAxis();
  }

  add(s) {
    const canvas = el("canvas", { class: "strip", "data-sensor-id": s.id, "data-items": "0", role: "img",
      "aria-label": "actions of sensor " + s.id + ": none yet" });
    const label = el("span", { class: "timeline-label", text: s.id, title: "sensor " + s.id });
    const row = el("div", { class: "timeline-row", "data-sensor-id": s.id }, label, canvas);
    const parent = $("timelines");
    const after = Array.from(parent.children).find((r) => r.dataset.sensorId > s.id);
    parent.insertBefore(row, after || null);
    this.rows.set(s.id, { canvas, label, items: null, fetched: 0 });
    if (this.visible) this.fetch(s.id);
  }

  rename(s) {
    const r = this.rows.get(s.id);
    const name = (s.status && s.status.room) || s.id;
    if (r && r.label.textContent !== name) r.label.textContent = name;
  }

  alertsChanged(sensorId) {
    if (this.visible) this.draw(sensorId);
  }

  setVisible(on) {
    this.visible = on;
    clearInterval(this.timer);
    this.timer = null;
    if (on) {
      this.refresh();
      this.timer = setInterval(() => this.refresh(), REFRESH_MS[this.seconds] || 10000);
    }
  }

  setRange(seconds) {
    this.seconds = seconds;
    for (const b of document.querySelectorAll("#range button")) {
      b.setAttribute("aria-pressed", String(Number(b.dataset.seconds) === seconds));
    }
    $("timelines").dataset.seconds = String(seconds);
    this.drawAxis();
    for (const r of this.rows.values()) r.items = null;
    this.drawAll();
    this.setVisible(this.visible);
  }

  async refresh() {
    await this.fetchAlerts();
    await Promise.all(Array.from(this.rows.keys()).map((id) => this.fetch(id)));
  }

  async fetchAlerts() {
    try {
      const data = await api("/api/alerts?state=all&limit=1000");
      const since = Date.now() - this.seconds * 1000;
      this.alerts.clear();
      for (const raw of data.alerts) {
        const a = normAlert(raw);
        if ((a.ended ?? Date.now()) < since) continue;
        if (!this.alerts.has(a.sensorId)) this.alerts.set(a.sensorId, []);
        this.alerts.get(a.sensorId).push(a);
      }
    } catch (e) { /* marks from the page's own alerts */ }
  }

  async fetch(id) {
    const r = this.rows.get(id);
    r.fetched = Date.now();
    const seconds = this.seconds;
    try {
      const data = await api(`/api/sensors/${encodeURIComponent(id)}/timeline?seconds=${seconds}`);
      if (seconds !== this.seconds) return;
      r.items = data.items;
      this.draw(id);
    } catch (e) {
      r.canvas.setAttribute("aria-label", "timeline of sensor " + id + " could not be loaded: " + e.message);
    }
  }

  drawAll() {
    if (!this.visible) return;
    for (const id of this.rows.keys()) this.draw(id);
  }

  drawAxis() {
    const ticks = {
      300: ["−5 min", "−4", "−3", "−2", "−1", "now"],
      3600: ["−60 min", "−45", "−30", "−15", "now"],
      86400: ["−24 h", "−18", "−12", "−6", "now"],
    }[this.seconds] || [];
    $("axis").replaceChildren(...ticks.map((t) => el("span", { text: t })));
  }

  alertsOf(id) {
    const byId = new Map();
    for (const a of this.alerts.get(id) || []) byId.set(a.id, a);
    for (const a of this.ctx.state.alerts.values()) if (a.sensorId === id) byId.set(a.id, a);
    return Array.from(byId.values());
  }

  draw(id) {
    const r = this.rows.get(id);
    if (!r) return;
    const canvas = r.canvas;
    const items = r.items || [];
    const ratio = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const h = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== w) canvas.width = w;
    if (canvas.height !== h) canvas.height = h;
    const g = canvas.getContext("2d");
    g.clearRect(0, 0, w, h);
    g.fillStyle = "#1b222c";
    g.fillRect(0, 0, w, h);
    const end = Date.now();
    const start = end - this.seconds * 1000;
    const x = (t) => ((t - start) / (end - start)) * w;
    const fallClass = this.ctx.state.info && this.ctx.state.info.fall_class;

    // Alerts first, under the actions: the fall's span shaded.
    const alerts = this.alertsOf(id).filter((a) => (a.ended ?? end) >= start && (a.raised ?? 0) <= end);
    g.fillStyle = "rgba(229, 50, 45, 0.28)";
    for (const a of alerts) {
      const x0 = x(Math.max(start, a.started ?? a.raised)), x1 = x(Math.min(end, a.ongoing ? end : (a.ended ?? a.raised)));
      g.fillRect(x0, 0, Math.max(ratio * 2, x1 - x0), h);
    }

    const byTrack = new Map();
    for (const it of items) {
      if (!byTrack.has(it.track_id)) byTrack.set(it.track_id, []);
      byTrack.get(it.track_id).push(it);
    }
    const tracks = Array.from(byTrack.keys()).sort((a, b) => {
      const la = byTrack.get(a), lb = byTrack.get(b);
      return lb[lb.length - 1].timestamp - la[la.length - 1].timestamp;
    }).slice(0, LANES).sort((a, b) => a - b);
    const lane = h / Math.max(1, tracks.length);
    const maxGap = Math.max(30000, this.seconds * 1000 / 300); // a longer pause is shown as a gap
    const counts = new Map();
    tracks.forEach((track, i) => {
      const list = byTrack.get(track);
      list.forEach((it, j) => {
        const next = j + 1 < list.length ? list[j + 1].timestamp : null;
        const until = next != null && next - it.timestamp <= maxGap ? next : it.timestamp + 6000;
        const x0 = x(it.timestamp);
        const x1 = Math.max(x0 + ratio, x(Math.min(until, end)));
        const grp = actionGroup(it.action, fallClass);
        g.fillStyle = grp.colour;
        g.fillRect(x0, i * lane + 2, x1 - x0, lane - 4);
        counts.set(grp.label, (counts.get(grp.label) || 0) + 1);
      });
    });
    g.fillStyle = "rgba(255,255,255,0.12)";
    const grid = this.seconds === 300 ? 5 : 4;
    for (let q = 1; q < grid; q++) g.fillRect(Math.round((q * w) / grid), 0, Math.max(1, ratio), h);

    // Alert marks on top: a red line with a notch where each was raised.
    g.fillStyle = "#ff4d47";
    for (const a of alerts) {
      if (a.raised == null || a.raised < start) continue;
      const xr = Math.round(x(a.raised));
      g.fillRect(xr - ratio, 0, 2 * ratio, h);
      g.beginPath();
      g.moveTo(xr - 5 * ratio, 0);
      g.lineTo(xr + 5 * ratio, 0);
      g.lineTo(xr, 7 * ratio);
      g.fill();
    }
    canvas.dataset.items = String(items.length);
    canvas.dataset.tracks = String(tracks.length);
    canvas.dataset.alerts = String(alerts.length);
    const parts = Array.from(counts.entries()).sort((a, b) => b[1] - a[1]).map(([a, n]) => `${a} ${n}`);
    const marks = alerts.map((a) => "alert " + fmtTime(a.raised));
    canvas.setAttribute("aria-label", `actions of sensor ${id}: ` + (parts.length ? parts.join(", ") : "none") +
      (marks.length ? "; " + marks.join(", ") : ""));
    canvas.title = (parts.length ? parts.join(", ") : "no predictions in this range") + (marks.length ? "\n" + marks.join("\n") : "");
  }
}
