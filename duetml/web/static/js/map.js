// The map of all photos (GET /api/map): every photo a dot on a canvas, placed by how alike the
// model sees them, coloured by category. Hover shows the photo, a click opens it, a drawn
// lasso selects photos that can then be moved to a category in one undoable step.
//
// Smooth with thousands of dots: the dots are drawn on one canvas only when the view or the
// data changes (a path per category, so a hundred fills, not thousands); hovering, the lasso
// and the selection are drawn on a second canvas above it; hover finds the dot under the
// pointer through a grid of screen cells instead of looking at every dot.

import { getJSON, postJSON } from "./api.js";
import { $, h, plural, replace, showPhoto, thumbUrl, toast } from "./dom.js";
import { emit, store } from "./store.js";

const PALETTE = [
  "#3d4fd6",
  "#e4572e",
  "#1f8a5b",
  "#b26a00",
  "#8e44ad",
  "#17a2b8",
  "#d63384",
  "#6c757d",
  "#2e7d32",
  "#c0392b",
  "#5c6bc0",
  "#ff9800",
  "#00897b",
  "#795548",
  "#7cb342",
  "#ad1457",
];
const PAD = 14; // px around the dots, so none sits on the edge
const HOVER_PX = 7; // how near the pointer must be to a dot to show it
const CELL = 16; // px: the hover grid's cell size
const POLL_MS = 1500; // while the server computes the map

const map = {
  data: null, // the /api/map answer
  colors: [],
  view: { scale: 1, x: 0, y: 0 }, // zoom and pan, in css px
  sx: null, // dots' screen positions (css px), for the current view
  sy: null,
  grid: new Map(), // cell key -> dot indices
  hover: -1,
  selected: new Set(), // dot indices
  highlight: null, // Set of dot indices a finding points at, or null
  focus: null, // category index shown alone, or null
  lasso: null, // [[x, y], ...] while drawing
  drag: null, // {x, y, vx, vy} while panning
  mode: "select",
  poll: null,
  loading: null,
  frames: [], // ms of the last full redraws (the bench and tests read them)
};

function colorOf(index) {
  if (index < PALETTE.length) return PALETTE[index];
  const hue = (index * 137.508) % 360; // golden angle: neighbours in the list differ
  return `hsl(${hue.toFixed(0)} 62% ${index % 2 ? 42 : 56}%)`;
}

// ----- loading -----------------------------------------------------------------------------

export async function loadMap() {
  if (map.loading) return map.loading;
  map.loading = (async () => {
    try {
      const data = await getJSON("/api/map");
      setData(data);
    } catch (exc) {
      replace($("#map-state"), exc.message);
    } finally {
      map.loading = null;
    }
  })();
  return map.loading;
}

function setData(data) {
  const previous = map.data;
  const keep = new Set([...map.selected].map((i) => previous && previous.ids[i]).filter(Boolean));
  const highlighted =
    map.highlight && previous ? new Set([...map.highlight].map((i) => previous.ids[i])) : null;
  map.data = data;
  map.colors = data.categories.map((_, i) => colorOf(i));
  map.selected = new Set();
  map.highlight = null;
  map.hover = -1;
  $("#map-tip").hidden = true;
  const index = new Map(data.ids.map((id, i) => [id, i]));
  for (const id of keep) if (index.has(id)) map.selected.add(index.get(id));
  if (highlighted)
    map.highlight = new Set(
      [...highlighted].filter((id) => index.has(id)).map((id) => index.get(id)),
    );
  if (map.focus !== null && map.focus >= data.categories.length) map.focus = null;
  clearTimeout(map.poll);
  if (data.computing) map.poll = setTimeout(loadMap, POLL_MS);
  renderState();
  renderLegend();
  layout();
  renderSelection();
}

function renderState() {
  const data = map.data;
  const box = $("#map-box");
  const n = data.ids.length;
  box.hidden = n === 0;
  $("#map-tools").hidden = n === 0;
  const parts = [];
  if (n)
    parts.push(`${plural(n, "photo")} placed by how alike the model sees them (${data.method}).`);
  if (data.computing)
    parts.push(n ? "Updating the map with the new photos…" : "Computing the map…");
  else if (data.error) parts.push(data.error);
  else if (!n)
    parts.push(
      "Train the model once and every photo appears here, placed by how alike it looks to the others.",
    );
  if (data.missing && n)
    parts.push(`${plural(data.missing, "photo")} not on the map yet: train to add them.`);
  if (data.placed && !data.computing)
    parts.push(`${plural(data.placed, "new photo")} placed near the photos most like them.`);
  replace($("#map-state"), parts.join(" "));
  const canvas = $("#map-canvas");
  canvas.dataset.points = String(n);
  canvas.setAttribute(
    "aria-label",
    n
      ? `Map of ${plural(n, "photo")} in ${plural(data.categories.length, "category", "categories")}; use the training data list to reach each photo by keyboard.`
      : "Map of the photos (empty)",
  );
}

function renderLegend() {
  const data = map.data;
  const counts = new Array(data.categories.length).fill(0);
  const flagged = new Array(data.categories.length).fill(0);
  data.category.forEach((c, i) => {
    counts[c] += 1;
    if (data.flag[i] >= 0) flagged[c] += 1;
  });
  const items = data.categories.map((name, c) => {
    if (!counts[c]) return null;
    const button = h(
      "button",
      {
        type: "button",
        class: "legend-item",
        "aria-pressed": String(map.focus === c),
        title: map.focus === c ? "Show every category" : `Show only ${name}`,
        onclick: () => {
          map.focus = map.focus === c ? null : c;
          renderLegend();
          draw();
        },
      },
      h("span", { class: "swatch", style: { background: map.colors[c] } }),
      h("span", { class: "legend-name", text: name }),
      h("span", {
        class: "legend-count",
        text: flagged[c] ? `${counts[c]} · ${flagged[c]} flagged` : String(counts[c]),
      }),
    );
    return h("li", {}, button);
  });
  replace($("#map-legend"), items);
}

// ----- geometry ----------------------------------------------------------------------------

// The canvas size and place, read only when the layout may have changed (resize, scroll):
// reading them while handling a pointer move would force the browser to lay out the page.
function size() {
  return { w: map.w, h: map.h };
}

function layout() {
  const box = $("#map-box");
  if (!map.data || box.hidden) return;
  const ratio = window.devicePixelRatio || 1;
  map.w = $("#map-canvas").clientWidth;
  map.h = $("#map-canvas").clientHeight;
  map.rect = null;
  for (const canvas of [$("#map-canvas"), $("#map-overlay")]) {
    const w = Math.round(canvas.clientWidth * ratio);
    const hgt = Math.round(canvas.clientHeight * ratio);
    if (canvas.width !== w || canvas.height !== hgt) {
      canvas.width = w;
      canvas.height = hgt;
    }
  }
  project();
  draw();
}

function project() {
  const { w, h: hgt } = size();
  const { x, y, category, ids } = map.data;
  const n = ids.length;
  // The layout's axes mean nothing on their own: stretching it to the box wastes no room.
  const width = w - 2 * PAD;
  const height = hgt - 2 * PAD;
  const { scale, x: vx, y: vy } = map.view;
  map.sx = new Float32Array(n);
  map.sy = new Float32Array(n);
  map.grid = new Map();
  for (let i = 0; i < n; i += 1) {
    const px = (PAD + x[i] * width - w / 2) * scale + w / 2 + vx;
    const py = (PAD + (1 - y[i]) * height - hgt / 2) * scale + hgt / 2 + vy;
    map.sx[i] = px;
    map.sy[i] = py;
    if (px < -HOVER_PX || py < -HOVER_PX || px > w + HOVER_PX || py > hgt + HOVER_PX) continue;
    if (map.focus !== null && category[i] !== map.focus) continue;
    const key = `${Math.floor(px / CELL)},${Math.floor(py / CELL)}`;
    let cell = map.grid.get(key);
    if (!cell) {
      cell = [];
      map.grid.set(key, cell);
    }
    cell.push(i);
  }
}

function radius() {
  const n = map.data.ids.length;
  const base = n > 3000 ? 2.4 : n > 800 ? 3 : 4;
  return Math.min(7, base * Math.sqrt(map.view.scale));
}

function dimmed(i) {
  if (map.focus !== null && map.data.category[i] !== map.focus) return true;
  return Boolean(map.highlight) && !map.highlight.has(i);
}

// ----- drawing -----------------------------------------------------------------------------

function draw() {
  if (!map.data || !map.sx) return;
  const started = performance.now();
  const canvas = $("#map-canvas");
  const ctx = canvas.getContext("2d");
  const ratio = canvas.width / Math.max(1, map.w);
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, map.w, map.h);
  const { category, test, flag } = map.data;
  const n = map.data.ids.length;
  const r = radius();
  const { w, h: hgt } = size();
  // One path per category and kind, dimmed ones first so the ones in view sit on top.
  for (const faded of [true, false]) {
    const paths = new Map();
    for (let i = 0; i < n; i += 1) {
      if (dimmed(i) !== faded) continue;
      const px = map.sx[i];
      const py = map.sy[i];
      if (px < -r || py < -r || px > w + r || py > hgt + r) continue;
      const key = category[i] * 2 + test[i];
      let path = paths.get(key);
      if (!path) {
        path = new Path2D();
        paths.set(key, path);
      }
      if (test[i]) path.rect(px - r, py - r, 2 * r, 2 * r);
      else {
        path.moveTo(px + r, py);
        path.arc(px, py, r, 0, 2 * Math.PI);
      }
    }
    ctx.globalAlpha = faded ? 0.12 : 0.85;
    for (const [key, path] of paths) {
      ctx.fillStyle = map.colors[key >> 1];
      ctx.fill(path);
    }
  }
  // Flagged photos: a dark ring, drawn last so they are never hidden under others.
  const rings = new Path2D();
  let any = false;
  for (let i = 0; i < n; i += 1) {
    if (flag[i] < 0 || dimmed(i)) continue;
    rings.moveTo(map.sx[i] + r + 2, map.sy[i]);
    rings.arc(map.sx[i], map.sy[i], r + 2, 0, 2 * Math.PI);
    any = true;
  }
  if (any) {
    ctx.globalAlpha = 1;
    ctx.lineWidth = 1.6;
    ctx.strokeStyle = "#1d2330";
    ctx.stroke(rings);
  }
  ctx.globalAlpha = 1;
  const ms = performance.now() - started;
  map.frames.push(ms);
  if (map.frames.length > 240) map.frames.shift();
  canvas.dataset.drawMs = ms.toFixed(2);
  drawOverlay();
}

function drawOverlay() {
  const canvas = $("#map-overlay");
  const ctx = canvas.getContext("2d");
  const ratio = canvas.width / Math.max(1, map.w);
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, map.w, map.h);
  const r = radius();
  if (map.selected.size) {
    const path = new Path2D();
    for (const i of map.selected) {
      path.moveTo(map.sx[i] + r + 1.5, map.sy[i]);
      path.arc(map.sx[i], map.sy[i], r + 1.5, 0, 2 * Math.PI);
    }
    ctx.lineWidth = 2;
    ctx.strokeStyle = "#ffffff";
    ctx.stroke(path);
    ctx.lineWidth = 1.2;
    ctx.strokeStyle = "#3d4fd6";
    ctx.stroke(path);
  }
  if (map.hover >= 0) {
    const i = map.hover;
    ctx.beginPath();
    ctx.arc(map.sx[i], map.sy[i], r + 4, 0, 2 * Math.PI);
    ctx.lineWidth = 2.5;
    ctx.strokeStyle = "#1d2330";
    ctx.stroke();
  }
  if (map.lasso && map.lasso.length > 1) {
    ctx.beginPath();
    ctx.moveTo(map.lasso[0][0], map.lasso[0][1]);
    for (const [px, py] of map.lasso) ctx.lineTo(px, py);
    ctx.closePath();
    ctx.fillStyle = "rgba(61, 79, 214, 0.08)";
    ctx.fill();
    ctx.setLineDash([5, 4]);
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = "#3d4fd6";
    ctx.stroke();
    ctx.setLineDash([]);
  }
}

// ----- pointer -----------------------------------------------------------------------------

function pointer(event) {
  if (!map.rect) map.rect = $("#map-overlay").getBoundingClientRect();
  const rect = map.rect;
  return [event.clientX - rect.left, event.clientY - rect.top];
}

function nearest(px, py) {
  let best = -1;
  let bestDistance = HOVER_PX * HOVER_PX;
  const cx = Math.floor(px / CELL);
  const cy = Math.floor(py / CELL);
  for (let gx = cx - 1; gx <= cx + 1; gx += 1) {
    for (let gy = cy - 1; gy <= cy + 1; gy += 1) {
      for (const i of map.grid.get(`${gx},${gy}`) || []) {
        const d = (map.sx[i] - px) ** 2 + (map.sy[i] - py) ** 2;
        if (d <= bestDistance) {
          bestDistance = d;
          best = i;
        }
      }
    }
  }
  return best;
}

function caption(i) {
  const data = map.data;
  const parts = [data.categories[data.category[i]]];
  if (data.test[i]) parts.push("test photo");
  return parts.join(" · ");
}

function findingOf(i) {
  const f = map.data.flag[i];
  return f >= 0 && map.data.findings ? map.data.findings[f] : null;
}

function showTip(i) {
  const tip = $("#map-tip");
  if (i < 0) {
    tip.hidden = true;
    return;
  }
  const img = $("#map-tip img");
  const id = map.data.ids[i];
  if (img.dataset.id !== id) {
    img.dataset.id = id;
    img.src = thumbUrl(id);
  }
  const finding = findingOf(i);
  replace(
    $("#map-tip .map-tip-text"),
    h("b", { text: caption(i) }),
    finding ? h("span", { class: "map-tip-finding", text: finding.message }) : null,
  );
  // Beside the dot, on the side with more room: placed by its corner, so nothing is measured.
  const { w, h: hgt } = size();
  const x = map.sx[i];
  const y = map.sy[i];
  tip.style.left = x < w / 2 ? `${x + 12}px` : "";
  tip.style.right = x < w / 2 ? "" : `${w - x + 12}px`;
  tip.style.top = y < hgt / 2 ? `${y + 12}px` : "";
  tip.style.bottom = y < hgt / 2 ? "" : `${hgt - y + 12}px`;
  tip.hidden = false;
}

function setHover(i) {
  if (i === map.hover) return;
  map.hover = i;
  drawOverlay();
  showTip(i);
  $("#map-overlay").style.cursor = map.mode === "pan" ? "grab" : i >= 0 ? "pointer" : "crosshair";
}

function inside(polygon, px, py) {
  let hit = false;
  for (let a = 0, b = polygon.length - 1; a < polygon.length; b = a, a += 1) {
    const [ax, ay] = polygon[a];
    const [bx, by] = polygon[b];
    if (ay > py !== by > py && px < ((bx - ax) * (py - ay)) / (by - ay) + ax) hit = !hit;
  }
  return hit;
}

function finishLasso(additive) {
  const polygon = map.lasso;
  map.lasso = null;
  if (!additive) map.selected.clear();
  const xs = polygon.map((p) => p[0]);
  const ys = polygon.map((p) => p[1]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  for (let i = 0; i < map.data.ids.length; i += 1) {
    const px = map.sx[i];
    const py = map.sy[i];
    if (px < x0 || px > x1 || py < y0 || py > y1 || dimmed(i)) continue;
    if (inside(polygon, px, py)) map.selected.add(i);
  }
  drawOverlay();
  renderSelection();
}

function wirePointer() {
  const overlay = $("#map-overlay");
  overlay.addEventListener("pointerenter", () => {
    map.rect = null;
  });
  window.addEventListener(
    "scroll",
    () => {
      map.rect = null;
    },
    { passive: true, capture: true },
  );
  overlay.addEventListener("pointerdown", (event) => {
    if (!map.data || event.button !== 0) return;
    overlay.setPointerCapture(event.pointerId);
    const [px, py] = pointer(event);
    if (map.mode === "pan" || event.altKey)
      map.drag = { x: px, y: py, vx: map.view.x, vy: map.view.y, moved: false };
    else map.lasso = [[px, py]];
    showTip(-1);
  });
  overlay.addEventListener("pointermove", (event) => {
    if (!map.data) return;
    const [px, py] = pointer(event);
    if (map.drag) {
      map.view.x = map.drag.vx + px - map.drag.x;
      map.view.y = map.drag.vy + py - map.drag.y;
      map.drag.moved = map.drag.moved || Math.abs(px - map.drag.x) + Math.abs(py - map.drag.y) > 3;
      project();
      draw();
      return;
    }
    if (map.lasso) {
      const last = map.lasso[map.lasso.length - 1];
      if (Math.abs(last[0] - px) + Math.abs(last[1] - py) >= 3) {
        map.lasso.push([px, py]);
        drawOverlay();
      }
      return;
    }
    setHover(nearest(px, py));
  });
  const end = (event) => {
    if (!map.data) return;
    const [px, py] = pointer(event);
    if (map.drag) {
      const moved = map.drag.moved;
      map.drag = null;
      if (moved) return;
    } else if (map.lasso) {
      const lasso = map.lasso;
      const xs = lasso.map((p) => p[0]);
      const ys = lasso.map((p) => p[1]);
      if (
        lasso.length > 2 &&
        Math.max(...xs) - Math.min(...xs) + Math.max(...ys) - Math.min(...ys) > 8
      ) {
        finishLasso(event.shiftKey);
        return;
      }
      map.lasso = null;
      drawOverlay();
    }
    if (event.type !== "pointerup") return;
    const i = nearest(px, py);
    if (i >= 0) {
      const finding = findingOf(i);
      showPhoto(map.data.ids[i], finding ? `${caption(i)}: ${finding.message}` : caption(i));
    }
  };
  overlay.addEventListener("pointerup", end);
  overlay.addEventListener("pointercancel", end);
  overlay.addEventListener("pointerleave", () => {
    if (!map.lasso && !map.drag) setHover(-1);
  });
  overlay.addEventListener(
    "wheel",
    (event) => {
      if (!map.data) return;
      event.preventDefault();
      const [px, py] = pointer(event);
      zoomAt(px, py, Math.exp(-event.deltaY * 0.0015));
    },
    { passive: false },
  );
}

function zoomAt(px, py, factor) {
  const { w, h: hgt } = size();
  const old = map.view.scale;
  const scale = Math.min(40, Math.max(1, old * factor));
  // Keep the point under the pointer where it is.
  const cx = px - w / 2;
  const cy = py - hgt / 2;
  map.view.x = cx - ((cx - map.view.x) * scale) / old;
  map.view.y = cy - ((cy - map.view.y) * scale) / old;
  map.view.scale = scale;
  if (scale === 1) {
    map.view.x = 0;
    map.view.y = 0;
  }
  project();
  draw();
  setHover(-1);
}

// ----- selection and moving ---------------------------------------------------------------

function selectedIds() {
  return [...map.selected].map((i) => map.data.ids[i]);
}

function renderSelection() {
  const bar = $("#map-selection");
  const count = map.selected.size;
  bar.hidden = count === 0;
  if (!count) return;
  const tests = [...map.selected].filter((i) => map.data.test[i]).length;
  replace(
    $("#map-selection-count"),
    `${plural(count, "photo")} selected on the map${tests ? ` (${tests} of them test photos)` : ""}`,
  );
  const select = $("#map-move-target");
  const current = select.value;
  const names = store.categories.length ? store.categories.map((c) => c.name) : map.data.categories;
  replace(
    select,
    names.map((name) => h("option", { value: name, text: name })),
  );
  if (current && names.includes(current)) select.value = current;
  else {
    // Suggest the category most of the selection is not in yet: often where they belong.
    const counts = new Map();
    for (const i of map.selected)
      counts.set(map.data.category[i], (counts.get(map.data.category[i]) || 0) + 1);
    const top = [...counts.entries()].sort((a, b) => b[1] - a[1])[0];
    if (top) select.value = map.data.categories[top[0]];
  }
}

async function moveSelection() {
  const ids = selectedIds();
  const category = $("#map-move-target").value;
  if (!ids.length || !category) return;
  try {
    const result = await postJSON("/api/images/move", { images: ids, category });
    map.selected.clear();
    renderSelection();
    drawOverlay();
    const moved = result.moved.length;
    toast(
      moved
        ? `Moved ${plural(moved, "photo")} to “${category}”.`
        : `They are all in “${category}” already.`,
      moved ? { action: { label: "Undo", run: () => emit("undo") } } : {},
    );
    emit("changed");
  } catch (exc) {
    toast(exc.message, { kind: "error" });
  }
}

// Called by the review panel: dim everything but these photos and bring the map into view.
export function showOnMap(ids) {
  if (!map.data) return;
  const wanted = new Set(ids);
  const found = new Set();
  map.data.ids.forEach((id, i) => {
    if (wanted.has(id)) found.add(i);
  });
  map.highlight = found.size ? found : null;
  map.focus = null;
  renderLegend();
  draw();
  $("#map-clear-highlight").hidden = !map.highlight;
  $("#map-block").open = true;
  $("#map-block").scrollIntoView({ behavior: "smooth", block: "center" });
}

export function wireMap() {
  wirePointer();
  $("#map-move").addEventListener("click", moveSelection);
  $("#map-clear").addEventListener("click", () => {
    map.selected.clear();
    renderSelection();
    drawOverlay();
  });
  $("#map-reset").addEventListener("click", () => {
    map.view = { scale: 1, x: 0, y: 0 };
    layout();
  });
  $("#map-clear-highlight").addEventListener("click", () => {
    map.highlight = null;
    $("#map-clear-highlight").hidden = true;
    draw();
  });
  for (const button of document.querySelectorAll("[data-map-mode]")) {
    button.addEventListener("click", () => {
      map.mode = button.dataset.mapMode;
      for (const other of document.querySelectorAll("[data-map-mode]"))
        other.setAttribute("aria-pressed", String(other === button));
    });
  }
  $("#map-block").addEventListener("toggle", () => {
    if ($("#map-block").open) layout();
  });
  new ResizeObserver(() => layout()).observe($("#map-box"));
  window.duetmlMap = map; // for the bench and tests: frame times, screen positions
}
