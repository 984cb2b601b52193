// Shared pieces of the dashboard: DOM building, the HTTP helper, formatting, the five action
// groups, and one normalised shape for alert rows (the API's rows changed shape over time).

export const $ = (id) => document.getElementById(id);

export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

export const SVG_NS = "http://www.w3.org/2000/svg";
export function svg(tag, attrs) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

// -- HTTP

export class ApiError extends Error {
  constructor(status, detail) {
    super(status + ": " + detail);
    this.status = status;
    this.detail = detail;
  }
  // FastAPI answers an unknown route with exactly this: the feature is not in this service.
  get routeMissing() {
    return this.status === 404 && this.detail === "Not Found";
  }
}

export async function api(path, options) {
  const opts = Object.assign({ credentials: "same-origin", cache: "no-store" }, options || {});
  if (opts.json !== undefined) {
    opts.body = JSON.stringify(opts.json);
    opts.headers = Object.assign({ "Content-Type": "application/json" }, opts.headers || {});
    delete opts.json;
  }
  const r = await fetch(path, opts);
  if (!r.ok) {
    let detail = r.statusText;
    try {
      const body = await r.json();
      if (body && body.detail != null) detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    } catch (e) { /* not JSON */ }
    throw new ApiError(r.status, detail);
  }
  return r.json();
}

// Whether the service has an endpoint: anything but the router's own 404 (a 405 means the path
// exists for another method, a 404 with a reason means "no such alert").
export async function hasRoute(path) {
  try {
    await api(path);
    return true;
  } catch (e) {
    return !(e instanceof ApiError && e.routeMissing) && e instanceof ApiError;
  }
}

// -- formatting

export function fmtTime(ms) {
  if (ms == null) return "–";
  const d = new Date(ms);
  const today = new Date().toDateString() === d.toDateString();
  const hm = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  return today ? hm : d.toLocaleDateString([], { month: "short", day: "numeric" }) + " " + hm;
}

// "3 min", "45 s", "2 h 5 min": how long ago, short enough for a row.
export function fmtElapsed(s) {
  if (s == null || !isFinite(s)) return "–";
  s = Math.max(0, s);
  if (s < 60) return Math.floor(s) + " s";
  if (s < 3600) return Math.floor(s / 60) + " min";
  if (s < 86400) {
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return h + " h" + (m ? " " + m + " min" : "");
  }
  return Math.floor(s / 86400) + " d";
}

export function fmtScore(v) {
  return v == null ? "–" : Number(v).toFixed(2);
}

// -- the 14 classes in five groups: what an operator needs to tell apart at a glance

export const GROUPS = [
  { key: "upright", label: "upright", colour: "#4e9be6" },
  { key: "sitting", label: "sitting", colour: "#53b86a" },
  { key: "bed", label: "lying in bed", colour: "#9a7fe0" },
  { key: "low", label: "low / other", colour: "#c9a04a" },
  { key: "fall", label: "FALL", colour: "#e5322d" },
];
const GROUP_BY_KEY = new Map(GROUPS.map((g) => [g.key, g]));

export function actionGroup(action, fallClass) {
  if (action == null) return GROUP_BY_KEY.get("low");
  const a = action.toLowerCase();
  if (action === fallClass || a.includes("with risk") || a.includes("fall")) return GROUP_BY_KEY.get("fall");
  if (a.includes("bed") || a.includes("couch")) return GROUP_BY_KEY.get("bed");
  if (a.includes("sitting") || a.includes("seated")) return GROUP_BY_KEY.get("sitting");
  if (a.includes("standing") || a.includes("walking") || a.includes("leaning") || a.includes("normal transition"))
    return GROUP_BY_KEY.get("upright");
  return GROUP_BY_KEY.get("low");
}

// "lower position-kneeling" -> "kneeling" (the part after the group), "lying down-lying on the bed/couch" -> "lying on the bed/couch".
export function shortAction(a) {
  if (a == null) return "…";
  const i = a.indexOf("-");
  const s = i > 0 && i < a.length - 1 ? a.slice(i + 1) : a;
  return (s === "other" ? a.replace("-", " ") : s).replace(/_/g, " ");
}

// -- alerts: one shape whatever the service version

export const FEEDBACK_TEXT = { real_fall: "real fall", false_alarm: "false alarm", not_sure: "not sure" };
export const REASON_TEXT = { in_bed: "in bed", sitting: "sitting", kneeling: "kneeling", other: "other" };

const STATUSES = ["open", "acknowledged", "resolved"];

// Rows of GET /api/alerts and of "alert" events, as the page uses them:
//   status: "open" | "acknowledged" | "resolved" (what people did)
//   ongoing: the sensor still sees the fall (the model's side, apart from the status)
//   raises: how many times it was raised (a fall again before anyone came is folded into it)
// Services before operators' alerts sent `state` for the status and `active` for ongoing.
export function normAlert(a) {
  const status = STATUSES.includes(a.status) ? a.status : STATUSES.includes(a.state) ? a.state
    : a.resolved_at != null ? "resolved" : a.acknowledged_at != null ? "acknowledged" : "open";
  const ongoing = a.state === "ongoing" || (a.state !== "ended" && a.active === true && a.ended_ms == null);
  const started = a.started_ms ?? a.start_timestamp ?? null;
  const raised = a.raised_ms ?? a.fired_timestamp ?? started;
  return {
    raw: a,
    id: a.id,
    sensorId: a.sensor_id,
    room: a.room || null,
    resident: a.resident || null,
    trackId: a.track_id,
    status: status,
    ongoing: ongoing,
    started: started,
    raised: raised,
    ended: a.ended_ms ?? a.end_timestamp ?? null,
    lastRaised: a.last_raised_ms ?? raised,
    peak: a.peak_score,
    raises: 1 + Math.max(0, Number(a.repeats) || 0),
    ackBy: a.acknowledged_by || null,
    ackAt: a.acknowledged_at ?? null,
    resolvedBy: a.resolved_by || null,
    resolvedAt: a.resolved_at ?? null,
    feedback: a.feedback || null,
    hasClip: a.has_clip,
  };
}

export function feedbackText(f) {
  if (!f) return "";
  if (typeof f === "string") return FEEDBACK_TEXT[f] || f;
  let t = FEEDBACK_TEXT[f.answer] || f.answer || "";
  if (f.reason) t += " (" + (REASON_TEXT[f.reason] || f.reason) + ")";
  if (f.who) t += " — " + f.who;
  return t;
}
