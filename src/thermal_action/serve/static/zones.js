// Zones (the furniture of a sensor's room) drawn on a tile, and the set-up dialog: the room's
// name and resident (PUT /api/sensors/{id}/info, when the service has it) and a zone editor
// (draw a rectangle, pick its kind and name, move, resize, delete; PUT /api/sensors/{id}/zones).
// Zones are normalized: x right, y down, 0-1; a zone is a box [x1, y1, x2, y2] or a polygon.
import { $, el, svg, api } from "./common.js";

export const ZONE_KINDS = ["bed", "couch", "chair", "table", "door", "other"];
export const ZONE_COLOURS = { bed: "#b59cff", couch: "#4fd1c5", chair: "#7fd18f", table: "#d8c76a", door: "#c7d0da", other: "#c7d0da" };
const MIN_SIZE = 0.02; // a drawn zone smaller than this (of the frame) was a click, not a zone
const HANDLE = 0.035; // the resize corner, a fraction of the frame

function bounds(z) {
  if (z.box) return z.box;
  const xs = z.polygon.map((p) => p[0]), ys = z.polygon.map((p) => p[1]);
  return [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
}

function shapeOf(z, attrs) {
  const colour = ZONE_COLOURS[z.kind] || ZONE_COLOURS.other;
  const common = Object.assign({ class: "zone", "data-kind": z.kind, stroke: colour, "vector-effect": "non-scaling-stroke" }, attrs || {});
  if (z.box) {
    const [x1, y1, x2, y2] = z.box;
    return svg("rect", Object.assign({ x: x1, y: y1, width: Math.max(0, x2 - x1), height: Math.max(0, y2 - y1) }, common));
  }
  return svg("polygon", Object.assign({ points: z.polygon.map((p) => p.join(",")).join(" ") }, common));
}

function label(z, attrs) {
  const [x1, y1] = bounds(z);
  const l = el("span", Object.assign({ class: "zone-label", text: z.name || z.kind }, attrs || {}));
  l.style.left = (100 * x1) + "%";
  l.style.top = (100 * y1) + "%";
  l.style.color = ZONE_COLOURS[z.kind] || ZONE_COLOURS.other;
  return l;
}

/** Draws ``zones`` into a tile's SVG overlay and its label layer. */
export function drawZones(svgEl, labelsEl, zones) {
  svgEl.replaceChildren(...zones.map((z, i) => shapeOf(z, { "data-index": String(i) })));
  labelsEl.replaceChildren(...zones.map((z, i) => label(z, { "data-index": String(i) })));
  svgEl.dataset.zones = String(zones.length);
}

// -- the set-up dialog

const ed = { entry: null, ctx: null, zones: [], selected: -1, drag: null, info: null };

function clamp01(v) { return Math.max(0, Math.min(1, v)); }
function round4(v) { return Math.round(v * 10000) / 10000; }

function point(e) {
  const r = $("zone-svg").getBoundingClientRect();
  return [clamp01((e.clientX - r.left) / r.width), clamp01((e.clientY - r.top) / r.height)];
}

function render() {
  const s = $("zone-svg");
  const shapes = ed.zones.map((z, i) => shapeOf(z, { "data-index": String(i), class: "zone" + (i === ed.selected ? " selected" : "") }));
  s.replaceChildren(...shapes);
  const sel = ed.zones[ed.selected];
  if (sel && sel.box) {
    s.append(svg("rect", { class: "handle", x: sel.box[2] - HANDLE / 2, y: sel.box[3] - HANDLE / 2, width: HANDLE, height: HANDLE,
      "vector-effect": "non-scaling-stroke" }));
  }
  $("zone-labels").replaceChildren(...ed.zones.map((z, i) => label(z, { "data-index": String(i) })));
  $("zone-kind").disabled = !sel;
  $("zone-name").disabled = !sel;
  $("zone-delete").disabled = !sel;
  if (sel) {
    $("zone-kind").value = sel.kind;
    if (document.activeElement !== $("zone-name")) $("zone-name").value = sel.name || "";
  } else {
    $("zone-name").value = "";
  }
  $("zone-editor").dataset.zones = String(ed.zones.length);
}

function hit(p) {
  for (let i = ed.zones.length - 1; i >= 0; i--) {
    const [x1, y1, x2, y2] = bounds(ed.zones[i]);
    if (p[0] >= x1 && p[0] <= x2 && p[1] >= y1 && p[1] <= y2) return i;
  }
  return -1;
}

function onDown(e) {
  if (e.button !== 0) return;
  e.preventDefault();
  const p = point(e);
  $("zone-svg").setPointerCapture(e.pointerId);
  const sel = ed.zones[ed.selected];
  if (sel && sel.box && Math.abs(p[0] - sel.box[2]) <= HANDLE && Math.abs(p[1] - sel.box[3]) <= HANDLE) {
    ed.drag = { mode: "resize" };
    return;
  }
  const i = hit(p);
  if (i >= 0) {
    ed.selected = i;
    const z = ed.zones[i];
    ed.drag = { mode: "move", from: p, orig: JSON.parse(JSON.stringify(z)) };
  } else {
    const kind = $("zone-kind").value || "bed";
    ed.zones.push({ kind: ZONE_KINDS.includes(kind) ? kind : "bed", name: "", box: [p[0], p[1], p[0], p[1]] });
    ed.selected = ed.zones.length - 1;
    ed.drag = { mode: "draw", from: p };
  }
  render();
}

function onMove(e) {
  if (!ed.drag) return;
  const p = point(e);
  const z = ed.zones[ed.selected];
  if (!z) return;
  if (ed.drag.mode === "draw") {
    const a = ed.drag.from;
    z.box = [Math.min(a[0], p[0]), Math.min(a[1], p[1]), Math.max(a[0], p[0]), Math.max(a[1], p[1])];
  } else if (ed.drag.mode === "resize") {
    z.box = [z.box[0], z.box[1], Math.max(z.box[0] + MIN_SIZE, p[0]), Math.max(z.box[1] + MIN_SIZE, p[1])].map(clamp01);
  } else {
    const o = ed.drag.orig;
    const [bx1, by1, bx2, by2] = bounds(o);
    // Keep the whole zone in the frame while it moves.
    const dx = Math.max(-bx1, Math.min(1 - bx2, p[0] - ed.drag.from[0]));
    const dy = Math.max(-by1, Math.min(1 - by2, p[1] - ed.drag.from[1]));
    if (o.box) z.box = [o.box[0] + dx, o.box[1] + dy, o.box[2] + dx, o.box[3] + dy];
    else z.polygon = o.polygon.map((q) => [q[0] + dx, q[1] + dy]);
  }
  render();
}

function onUp() {
  if (!ed.drag) return;
  const z = ed.zones[ed.selected];
  if (ed.drag.mode === "draw" && z && (z.box[2] - z.box[0] < MIN_SIZE || z.box[3] - z.box[1] < MIN_SIZE)) {
    ed.zones.splice(ed.selected, 1); // a click on empty floor: nothing drawn, nothing selected
    ed.selected = -1;
  } else if (ed.drag.mode === "draw") {
    $("zone-name").focus();
  }
  ed.drag = null;
  render();
}

function zonesBody() {
  return {
    zones: ed.zones.map((z) => {
      const out = { kind: z.kind };
      if (z.name) out.name = z.name;
      if (z.box) out.box = z.box.map(round4);
      else out.polygon = z.polygon.map((q) => q.map(round4));
      return out;
    }),
  };
}

function setupMessage(text, isError) {
  $("setup-message").textContent = text;
  $("setup-message").classList.toggle("error", Boolean(isError));
}

async function save() {
  const { entry, ctx } = ed;
  const id = encodeURIComponent(entry.id);
  try {
    if (ed.info) {
      const form = $("info-form");
      const body = {};
      for (const k of ["room", "resident", "bed_label", "notes"]) body[k] = form.elements[k].value.trim();
      if (JSON.stringify(body) !== JSON.stringify(ed.info)) {
        await api(`/api/sensors/${id}/info`, { method: "PUT", json: body });
        if (entry.status) Object.assign(entry.status, { room: body.room || null, resident: body.resident || null });
      }
    }
    const view = await api(`/api/sensors/${id}/zones`, { method: "PUT", json: zonesBody() });
    entry.zones = view;
    drawZones(entry.els.zoneSvg, entry.els.zoneLabels, view.zones || []);
    $("setup").close("saved");
    ctx.message(`Saved the room of sensor ${entry.id}.`, false);
  } catch (e) {
    setupMessage("Not saved: " + (e.detail || e.message), true);
  }
}

async function resetZones() {
  const { entry } = ed;
  try {
    const view = await api(`/api/sensors/${encodeURIComponent(entry.id)}/zones`, { method: "DELETE" });
    entry.zones = view;
    ed.zones = JSON.parse(JSON.stringify(view.zones || []));
    ed.selected = -1;
    drawZones(entry.els.zoneSvg, entry.els.zoneLabels, view.zones || []);
    render();
    $("zone-source").textContent = "zones from: " + view.source;
    setupMessage("Zones set here removed.", false);
  } catch (e) {
    setupMessage(e.status === 404 ? "No zones were set here." : "Not removed: " + (e.detail || e.message), e.status !== 404);
  }
}

/** Opens the set-up dialog of a tile's sensor. */
export async function openSetup(entry, ctx) {
  ed.entry = entry;
  ed.ctx = ctx;
  ed.selected = -1;
  ed.drag = null;
  ed.info = null;
  const st = entry.status || {};
  $("setup-title").textContent = "Set up " + (st.room || entry.id) + (st.room ? " (sensor " + entry.id + ")" : "");
  setupMessage("", false);
  const img = $("zone-image");
  img.src = entry.els.img.src || "";
  img.hidden = !entry.els.img.src;
  const live = entry.live;
  $("zone-editor").style.aspectRatio = live ? live.width + " / " + live.height : "60 / 40";
  ed.zones = JSON.parse(JSON.stringify((entry.zones && entry.zones.zones) || []));
  $("zone-source").textContent = entry.zones ? "zones from: " + entry.zones.source : "";
  render();
  // The details' form keeps its place while they load (hidden, not removed): the zone editor
  // below it must not jump under a pointer that has started to draw.
  const form = $("info-form");
  form.hidden = ctx.state.features.info === false;
  form.style.visibility = "hidden";
  form.inert = true;
  delete form.dataset.loaded;
  $("setup").showModal();
  try {
    const zones = await api(`/api/sensors/${encodeURIComponent(entry.id)}/zones`);
    if (ed.entry !== entry) return;
    entry.zones = zones;
    if (!ed.drag && ed.zones.length === 0) { ed.zones = JSON.parse(JSON.stringify(zones.zones || [])); render(); }
    $("zone-source").textContent = "zones from: " + zones.source;
  } catch (e) { /* the tile's copy stands */ }
  if (ctx.state.features.info === false) return;
  try {
    const info = await api(`/api/sensors/${encodeURIComponent(entry.id)}/info`);
    if (ed.entry !== entry) return;
    ed.info = {};
    for (const k of ["room", "resident", "bed_label", "notes"]) {
      ed.info[k] = (info[k] || "").trim();
      form.elements[k].value = info[k] || "";
    }
    form.style.visibility = "";
    form.inert = false;
    form.dataset.loaded = "true";
  } catch (e) {
    if (e.routeMissing) { ctx.state.features.info = false; form.hidden = true; }
  }
}

function setup() {
  const kind = $("zone-kind");
  for (const k of ZONE_KINDS) kind.append(el("option", { value: k, text: k }));
  const s = $("zone-svg");
  s.addEventListener("pointerdown", onDown);
  s.addEventListener("pointermove", onMove);
  s.addEventListener("pointerup", onUp);
  s.addEventListener("pointercancel", onUp);
  kind.addEventListener("change", () => { const z = ed.zones[ed.selected]; if (z) { z.kind = kind.value; render(); } });
  $("zone-name").addEventListener("input", () => { const z = ed.zones[ed.selected]; if (z) { z.name = $("zone-name").value.trim(); render(); } });
  $("zone-delete").addEventListener("click", () => {
    if (ed.selected >= 0) { ed.zones.splice(ed.selected, 1); ed.selected = -1; render(); }
  });
  document.addEventListener("keydown", (e) => {
    if (!$("setup").open || ed.selected < 0) return;
    if ((e.key === "Delete" || e.key === "Backspace") && document.activeElement.tagName !== "INPUT") {
      ed.zones.splice(ed.selected, 1);
      ed.selected = -1;
      render();
    }
  });
  $("setup-save").addEventListener("click", save);
  $("zones-reset").addEventListener("click", resetZones);
  const d = $("setup");
  for (const b of d.querySelectorAll("[data-close]")) b.addEventListener("click", () => d.close("cancel"));
  d.addEventListener("close", () => { ed.entry = null; ed.drag = null; });
}

setup();
