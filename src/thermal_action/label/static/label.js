// thermal-action label: the labelling page. No framework, no network beyond this server.
// The server is the truth: every edit is POSTed, and the page shows "saved" only once the
// answer (sent after the edit is on disk) has come back; the answer carries the new view.

const $ = (id) => document.getElementById(id);
const ACTION_COLORS = ["#4e79a7", "#59a14f", "#8cd17d", "#e15759", "#b07aa1", "#f28e2b", "#edc948",
  "#ff9da7", "#9c755f", "#76b7b2", "#d37295", "#fabfd2", "#b6992d", "#bab0ac"];
const TRACK_COLORS = ["#00ffff", "#00ff00", "#ffffff", "#1e90ff", "#ffd700", "#00ffa0", "#ff80ff", "#ffa040"];

const st = {
  session: null, rec: null, view: null, pixels: null, shape: null, ki: 0, selected: null,
  pending: 0, chain: Promise.resolve(), failed: null, drawing: false, lut: null,
};

function uid() {
  return Date.now().toString(36) + Math.random().toString(36).slice(2, 10);
}

async function api(path, options = {}) {
  const r = await fetch(path, { credentials: "same-origin", ...options });
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (!r.ok) {
    const detail = data && data.detail ? data.detail : `${r.status} ${r.statusText}`;
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return data;
}

function setStatus(state, text) {
  const el = $("status");
  el.dataset.state = state;
  el.textContent = text;
}

function showMessage(text) {
  $("message").textContent = text || "";
}

const frame = () => st.view.keyframes[st.ki];
const tracksHere = () => Object.keys(st.view.boxes[frame()] || {}).map(Number).sort((a, b) => a - b);
const className = (i) => (i === null || i === undefined ? "unlabelled" : st.session.class_names[i]);

// -- edits

function edit(op, args, recording = st.rec) {
  const body = { op, recording, args, id: uid(), annotator: $("annotator").value.trim() };
  st.pending += 1;
  setStatus("saving", "saving…");
  st.chain = st.chain.then(async () => {
    try {
      const data = await api("/api/edits", {
        method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
      });
      st.failed = null;
      if (data.view.sensor_id === st.rec) {
        st.view = data.view;
        render();
      }
      updateProgress(data.export);
    } catch (e) {
      st.failed = e.message;
      showMessage(`not saved: ${e.message}`);
      await loadView(st.rec, false);
    } finally {
      st.pending -= 1;
      if (st.pending === 0) {
        if (st.failed) setStatus("error", "not saved");
        else { setStatus("saved", "saved"); scheduleQueue(); }
      }
    }
  });
  return st.chain;
}

// -- loading

async function loadView(sensor, keepFrame = true) {
  const [view, px] = await Promise.all([
    api(`/api/recordings/${encodeURIComponent(sensor)}`),
    st.rec === sensor && st.pixels ? Promise.resolve(null) : api(`/api/recordings/${encodeURIComponent(sensor)}/pixels`),
  ]);
  const f = keepFrame && st.view ? frame() : null;
  st.rec = sensor;
  st.view = view;
  if (px) {
    const bin = atob(px.pixels);
    st.pixels = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i += 1) st.pixels[i] = bin.charCodeAt(i);
    st.shape = px.shape;
  }
  const i = f === null ? -1 : view.keyframes.indexOf(f);
  st.ki = i >= 0 ? i : Math.min(st.ki, view.keyframes.length - 1);
  render();
}

async function switchRecording(sensor, frameIndex = null, track = null) {
  if (sensor !== st.rec) {
    st.pixels = null;
    st.view = null;
    st.ki = 0;
    $("recording").value = sensor;
    localStorage.setItem("ta-label-recording", sensor);
    await loadView(sensor, false);
  }
  if (frameIndex !== null) {
    const i = st.view.keyframes.indexOf(frameIndex);
    if (i >= 0) st.ki = i;
  }
  st.selected = track;
  render();
}

// -- drawing

function drawFrame() {
  const canvas = $("frame");
  const [n, h, w] = st.shape;
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  const off = st.ki * h * w;
  for (let p = 0; p < h * w; p += 1) {
    const c = st.lut[st.pixels[off + p]];
    img.data[4 * p] = c[0];
    img.data[4 * p + 1] = c[1];
    img.data[4 * p + 2] = c[2];
    img.data[4 * p + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return n;
}

function pct(v, total) {
  return `${(100 * v) / total}%`;
}

function placeRect(el, box, w, h) {
  el.style.left = pct(box[0], w);
  el.style.top = pct(box[1], h);
  el.style.width = pct(box[2] - box[0], w);
  el.style.height = pct(box[3] - box[1], h);
}

function renderBoxes() {
  const layer = $("boxes-layer");
  layer.textContent = "";
  const f = frame();
  const { width: w, height: h } = st.view;
  const labels = st.view.labels[f] || {};
  const scores = (st.view.scores[f] || {});
  for (const t of tracksHere()) {
    const box = st.view.boxes[f][t];
    const action = labels[t];
    const el = document.createElement("div");
    el.className = "box" + (t === st.selected ? " selected" : "") + (action === null ? " unlabelled" : "");
    el.dataset.track = t;
    el.dataset.action = action === null ? "" : String(action);
    el.style.borderColor = TRACK_COLORS[t % TRACK_COLORS.length];
    placeRect(el, box, w, h);
    const tag = document.createElement("span");
    tag.className = box[1] < 0.12 * h ? "tag inside" : "tag";  // no room above: the tag goes inside
    tag.style.background = action === null ? "#555" : ACTION_COLORS[action];
    let text = `#${t} ${action === null ? "?" : className(action)}`;
    const s = scores[t];
    if (s && action === null) {
      const top = s.indexOf(Math.max(...s));
      text += ` (model: ${className(top)} ${s[top].toFixed(2)})`;
    }
    tag.textContent = text;
    el.appendChild(tag);
    const handle = document.createElement("span");
    handle.className = "handle";
    handle.title = "drag to resize";
    el.appendChild(handle);
    el.addEventListener("pointerdown", (e) => startBoxDrag(e, t, e.target === handle ? "resize" : "move"));
    layer.appendChild(el);
  }
}

function renderZones() {
  const layer = $("zones-layer");
  layer.textContent = "";
  const list = $("zones");
  list.textContent = "";
  const zones = st.view.zones || [];
  zones.forEach((z, i) => {
    const el = document.createElement("div");
    el.className = "zone";
    el.dataset.kind = z.kind;
    placeRect(el, z.box, 1, 1);
    const tag = document.createElement("span");
    tag.textContent = z.name || z.kind;
    el.appendChild(tag);
    layer.appendChild(el);
    const li = document.createElement("li");
    li.textContent = `${z.name || z.kind} `;
    const del = document.createElement("button");
    del.type = "button";
    del.textContent = "×";
    del.title = "remove this zone";
    del.addEventListener("click", () => edit("set_zones", { zones: zones.filter((_, j) => j !== i) }));
    li.appendChild(del);
    list.appendChild(li);
  });
  $("zones-source").textContent = `furniture: ${st.view.zones_source}`;
  $("keep-zones").hidden = !(st.view.zones && !st.view.zones_source.startsWith("drawn"));
}

function renderPeople() {
  const ul = $("people");
  ul.textContent = "";
  const f = frame();
  const labels = st.view.labels[f] || {};
  const here = tracksHere();
  if (st.selected !== null && !here.includes(st.selected) && !st.view.tracks.includes(st.selected)) st.selected = null;
  if (st.selected === null && here.length) st.selected = here[0];
  for (const t of here) {
    const li = document.createElement("li");
    li.dataset.track = t;
    li.className = t === st.selected ? "selected" : "";
    const set = st.view.events[t] && st.view.events[t][f] !== undefined;
    const a = labels[t];
    li.innerHTML = `<span class="dot" style="background:${TRACK_COLORS[t % TRACK_COLORS.length]}"></span>`;
    li.append(`#${t} ${className(a)}${a === null ? "" : set ? " (set here)" : " (held)"}`);
    li.addEventListener("click", () => { st.selected = t; render(); });
    ul.appendChild(li);
  }
  if (!here.length) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "nobody found at this keyframe (+ person to add one)";
    ul.appendChild(li);
  }
  const other = $("merge-other");
  other.textContent = "";
  for (const t of st.view.tracks) {
    if (t === st.selected) continue;
    const o = document.createElement("option");
    o.value = t;
    o.textContent = `#${t} into #${st.selected ?? "?"}`;
    other.appendChild(o);
  }
}

function renderActions() {
  const div = $("actions");
  if (!div.childElementCount) {
    st.session.class_names.forEach((name, i) => {
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.action = i;
      b.innerHTML = `<kbd>${i < 10 ? i : "⇧" + (i - 10)}</kbd> `;
      b.append(name);
      b.style.borderLeftColor = ACTION_COLORS[i];
      b.addEventListener("click", () => setAction(i));
      div.appendChild(b);
    });
  }
  const a = st.selected === null ? null : (st.view.labels[frame()] || {})[st.selected];
  for (const b of div.children) b.setAttribute("aria-pressed", String(a !== null && a !== undefined && Number(b.dataset.action) === a));
}

function renderTimeline() {
  const tl = $("timeline");
  tl.textContent = "";
  const kfs = st.view.keyframes;
  tl.style.setProperty("--n", kfs.length);
  for (const t of st.view.tracks) {
    const row = document.createElement("div");
    row.className = "row" + (t === st.selected ? " selected" : "");
    row.dataset.track = t;
    const name = document.createElement("span");
    name.className = "track-name";
    name.textContent = `#${t}`;
    name.style.color = TRACK_COLORS[t % TRACK_COLORS.length];
    row.appendChild(name);
    const cells = document.createElement("div");
    cells.className = "cells";
    kfs.forEach((f, i) => {
      const c = document.createElement("span");
      c.className = "cell" + (i === st.ki ? " now" : "");
      c.dataset.frame = f;
      c.dataset.track = t;
      const has = st.view.boxes[f] && st.view.boxes[f][t] !== undefined;
      if (has) {
        const a = st.view.labels[f][t];
        c.dataset.action = a === null ? "" : String(a);
        c.classList.add(a === null ? "todo" : "done");
        if (a !== null) c.style.background = ACTION_COLORS[a];
        if (st.view.events[t] && st.view.events[t][f] !== undefined) c.classList.add("event");
        c.title = `#${t} at frame ${f}: ${className(a)}`;
      }
      c.addEventListener("click", () => { st.ki = i; st.selected = has ? t : st.selected; render(); });
      cells.appendChild(c);
    });
    row.appendChild(cells);
    tl.appendChild(row);
  }
}

function updateProgress(exp) {
  if (exp) st.session.export = exp;
  const done = st.view ? st.view.complete.length : 0;
  const withPeople = st.view ? st.view.keyframes.filter((f) => Object.keys(st.view.boxes[f]).length).length : 0;
  const e = st.session.export || { keyframes: 0, person_boxes: 0 };
  $("progress").textContent = `${done} of ${withPeople} keyframes with people labelled here · ` +
    `${e.keyframes} keyframes, ${e.person_boxes} boxes in the files`;
}

function render() {
  if (!st.view) return;
  const f = frame();
  document.body.dataset.keyframe = f;
  document.body.dataset.recording = st.rec;
  drawFrame();
  renderPeople();
  renderBoxes();
  renderZones();
  renderActions();
  renderTimeline();
  const ts = st.view.timestamps[st.ki];
  $("where").textContent = `keyframe ${st.ki + 1} / ${st.view.keyframes.length} · frame ${f} · ` +
    new Date(ts).toISOString().slice(11, 19);
  $("undo").disabled = !st.view.undo;
  updateProgress(null);
}

// -- actions and tools

function setAction(action) {
  if (st.selected === null || !tracksHere().includes(st.selected)) {
    showMessage("select a person first (Tab, or click a box)");
    return;
  }
  showMessage("");
  edit("set_action", { track: st.selected, frame: frame(), action });
}

function move(delta) {
  st.ki = Math.max(0, Math.min(st.view.keyframes.length - 1, st.ki + delta));
  render();
}

function cyclePeople(delta) {
  const here = tracksHere();
  if (!here.length) return;
  const i = here.indexOf(st.selected);
  st.selected = here[(i + delta + here.length) % here.length];
  render();
}

function nextTodo() {
  const kfs = st.view.keyframes;
  for (let k = 1; k <= kfs.length; k += 1) {
    const i = (st.ki + k) % kfs.length;
    const labels = st.view.labels[kfs[i]] || {};
    const todo = Object.keys(labels).find((t) => labels[t] === null);
    if (todo !== undefined) {
      st.ki = i;
      st.selected = Number(todo);
      render();
      return;
    }
  }
  showMessage("every person of this recording is labelled");
}

function stagePoint(e) {
  const r = $("stage").getBoundingClientRect();
  return [(e.clientX - r.left) / r.width, (e.clientY - r.top) / r.height];
}

function startBoxDrag(e, track, mode) {
  if (st.drawing) return;
  e.preventDefault();
  e.stopPropagation();
  st.selected = track;
  const el = e.currentTarget;
  const { width: w, height: h } = st.view;
  const start = stagePoint(e);
  const box0 = st.view.boxes[frame()][track].slice();
  let box = box0;
  el.setPointerCapture(e.pointerId);
  const onMove = (ev) => {
    const p = stagePoint(ev);
    const dx = (p[0] - start[0]) * w;
    const dy = (p[1] - start[1]) * h;
    box = mode === "move"
      ? [box0[0] + dx, box0[1] + dy, box0[2] + dx, box0[3] + dy]
      : [box0[0], box0[1], Math.max(box0[0] + 1, box0[2] + dx), Math.max(box0[1] + 1, box0[3] + dy)];
    placeRect(el, box, w, h);
  };
  const onUp = () => {
    el.removeEventListener("pointermove", onMove);
    el.removeEventListener("pointerup", onUp);
    el.removeEventListener("pointercancel", onUp);
    const moved = box.some((v, i) => Math.abs(v - box0[i]) > 0.05);
    if (moved) edit("set_box", { track, frame: frame(), box: box.map((v) => Math.round(v * 10) / 10) });
    else render();
  };
  el.addEventListener("pointermove", onMove);
  el.addEventListener("pointerup", onUp);
  el.addEventListener("pointercancel", onUp);
  renderPeople();
  renderActions();
}

function startZoneDraw(e) {
  if (!st.drawing) return;
  e.preventDefault();
  const stage = $("stage");
  const draft = $("draft");
  const a = stagePoint(e);
  let b = a;
  stage.setPointerCapture(e.pointerId);
  draft.hidden = false;
  const rect = () => [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1])]
    .map((v) => Math.round(Math.min(1, Math.max(0, v)) * 1000) / 1000);
  placeRect(draft, rect(), 1, 1);
  const onMove = (ev) => { b = stagePoint(ev); placeRect(draft, rect(), 1, 1); };
  const onUp = () => {
    stage.removeEventListener("pointermove", onMove);
    stage.removeEventListener("pointerup", onUp);
    draft.hidden = true;
    const r = rect();
    if (r[2] - r[0] > 0.02 && r[3] - r[1] > 0.02) {
      const kind = $("zone-kind").value;
      edit("set_zones", { zones: [...(st.view.zones || []), { kind, name: "", box: r }] });
    }
    toggleDraw(false);
  };
  stage.addEventListener("pointermove", onMove);
  stage.addEventListener("pointerup", onUp);
}

function toggleDraw(on = !st.drawing) {
  st.drawing = on;
  $("draw-zone").setAttribute("aria-pressed", String(on));
  $("stage").classList.toggle("drawing", on);
  if (on) showMessage("drag on the image to draw the furniture");
  else showMessage("");
}

function selectedHere() {
  if (st.selected === null || !tracksHere().includes(st.selected)) {
    showMessage("select a person at this keyframe first");
    return false;
  }
  return true;
}

function addPerson() {
  const { width: w, height: h } = st.view;
  edit("add_person", { frame: frame(), box: [w / 2 - 5, h / 2 - 4, w / 2 + 5, h / 2 + 4] });
}

function onKey(e) {
  if (!st.view) return;
  const tag = (e.target.tagName || "").toLowerCase();
  if (tag === "input" || tag === "select" || tag === "textarea") return;
  if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "z") { e.preventDefault(); edit("undo", {}); return; }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const digit = /^Digit([0-9])$/.exec(e.code) || /^Numpad([0-9])$/.exec(e.code);
  if (digit) {
    const d = Number(digit[1]);
    const action = e.shiftKey ? 10 + d : d;
    if (action < st.session.class_names.length) { e.preventDefault(); setAction(action); }
    return;
  }
  switch (e.key) {
    case "ArrowRight": e.preventDefault(); move(1); break;
    case "ArrowLeft": e.preventDefault(); move(-1); break;
    case "Tab": e.preventDefault(); cyclePeople(e.shiftKey ? -1 : 1); break;
    case "Backspace":
      e.preventDefault();
      if (selectedHere()) edit("set_action", { track: st.selected, frame: frame(), action: null });
      break;
    case "Delete": if (selectedHere()) edit("delete_box", { track: st.selected, frame: frame() }); break;
    case "n": case "N": addPerson(); break;
    case "s": case "S": if (selectedHere()) edit("split", { track: st.selected, frame: frame() }); break;
    case "z": case "Z": toggleDraw(); break;
    case "Escape": toggleDraw(false); break;
    default:
  }
}

// -- queue

let queueTimer = null;
function scheduleQueue() {
  clearTimeout(queueTimer);
  queueTimer = setTimeout(loadQueue, 300);
}

async function loadQueue() {
  let q;
  try {
    q = await api("/api/queue?n=15");
  } catch (e) {
    $("queue-note").textContent = `could not rank: ${e.message}`;
    return;
  }
  $("queue-note").textContent = q.note || `ranked by ${q.strategy}`;
  const ol = $("queue");
  ol.textContent = "";
  for (const s of q.suggestions) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    const gain = s.expected_gain === null || s.expected_gain === undefined ? "" : ` · gain ${s.expected_gain.toFixed(3)}`;
    b.textContent = `${s.recording} · frame ${s.frame_index}${s.track_id === null ? "" : " · #" + s.track_id}${gain}`;
    b.title = s.reason || "";
    b.addEventListener("click", () => switchRecording(s.recording, s.frame_index, s.track_id));
    li.appendChild(b);
    const why = document.createElement("span");
    why.className = "muted small";
    why.textContent = ` ${s.reason || ""}`;
    li.appendChild(why);
    ol.appendChild(li);
  }
}

// -- start

async function main() {
  try {
    st.session = await api("/api/session");
  } catch (e) {
    setStatus("error", "no access");
    showMessage(`${e.message}: open the address thermal-action label printed`);
    return;
  }
  st.lut = st.session.lut;
  const sel = $("recording");
  for (const r of st.session.recordings) {
    const o = document.createElement("option");
    o.value = r.sensor_id;
    o.textContent = `${r.sensor_id} (${r.complete}/${r.with_people})`;
    sel.appendChild(o);
  }
  const ann = $("annotator");
  ann.value = localStorage.getItem("ta-label-annotator") || st.session.annotator;
  ann.addEventListener("change", () => localStorage.setItem("ta-label-annotator", ann.value.trim()));
  const kinds = ["bed", "couch", "chair", "table", "door", "other"];
  for (const k of kinds) {
    const o = document.createElement("option");
    o.value = k;
    o.textContent = k;
    $("zone-kind").appendChild(o);
  }
  sel.addEventListener("change", () => switchRecording(sel.value));
  $("prev").addEventListener("click", () => move(-1));
  $("next").addEventListener("click", () => move(1));
  $("next-todo").addEventListener("click", nextTodo);
  $("add-person").addEventListener("click", addPerson);
  $("split").addEventListener("click", () => selectedHere() && edit("split", { track: st.selected, frame: frame() }));
  $("merge").addEventListener("click", () => {
    const other = Number($("merge-other").value);
    if (st.selected !== null && $("merge-other").value !== "") edit("merge", { track: st.selected, other });
  });
  $("delete-box").addEventListener("click", () => selectedHere() && edit("delete_box", { track: st.selected, frame: frame() }));
  $("delete-track").addEventListener("click", () => st.selected !== null && edit("delete_track", { track: st.selected }));
  $("undo").addEventListener("click", () => edit("undo", {}));
  $("draw-zone").addEventListener("click", () => toggleDraw());
  $("keep-zones").addEventListener("click", () => edit("set_zones", { zones: st.view.zones || [] }));
  $("stage").addEventListener("pointerdown", startZoneDraw);
  document.addEventListener("keydown", onKey);
  const saved = localStorage.getItem("ta-label-recording");
  const first = st.session.recordings.find((r) => r.sensor_id === saved) ? saved : st.session.recordings[0].sensor_id;
  sel.value = first;
  await loadView(first, false);
  setStatus("saved", "saved");
  document.body.dataset.ready = "true";
  loadQueue();
}

main();
