// (A) Training data: category panels, thumbnails, uploads (files, folders, picker), moving
// photos by drag-and-drop or selection, renaming, merging, removing.

import { getJSON, postFiles, postJSON } from "./api.js";
import { categoryCamera } from "./camera.js";
import {
  $,
  bytes,
  formDialog,
  h,
  plural,
  replace,
  showPhoto,
  thumbUrl,
  toast,
  withCode,
} from "./dom.js";
import { emit, store } from "./store.js";

const PHOTO_TYPE = "application/x-duetml-photos";
const FIRST_ROWS = 60; // photos shown per category before "Show all"
// With many categories each panel starts with about a screenful (two or three rows), so a
// 100-category project is a page of panels, not 5,000 thumbnails; "Show all" opens one.
const MANY_CATEGORIES = 8;
const FIRST_ROWS_WHEN_MANY = 12;
const BATCH_FILES = 40;
const BATCH_BYTES = 16 * 1024 * 1024;

const panels = new Map(); // category name -> panel element (kept between renders)
const thumbs = new Map(); // photo id -> thumbnail element (its <img> stays loaded)

export async function loadCategories() {
  const listing = await getJSON("/api/categories");
  store.categories = listing.categories;
  const known = new Set(
    listing.categories.flatMap((c) => [...c.images, ...(c.test_images || [])].map((i) => i.id)),
  );
  for (const id of [...store.selected]) if (!known.has(id)) store.selected.delete(id);
  renderCategories();
  emit("categories");
}

export async function loadStatus() {
  store.status = await getJSON("/api/status");
  renderWarnings();
  emit("status");
}

// ----- rendering -------------------------------------------------------------------------

export function renderCategories() {
  const box = $("#categories");
  const focusKey =
    document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.key
      : null;
  if (!store.categories.length) {
    panels.clear();
    replace(
      box,
      h(
        "div",
        { class: "empty-state" },
        h("p", { class: "empty-title", text: "No categories yet: add one above." }),
        h(
          "p",
          {},
          withCode(
            "For example `edible` and `not edible`. Then drop photos (or whole folders) onto each category. Dropping a folder of folders here makes one category per folder.",
          ),
        ),
      ),
    );
    renderSelection();
    return;
  }
  const seen = new Set();
  renderOverview();
  const wanted = filterText();
  const nodes = store.categories
    .filter((category) => !wanted || category.name.toLowerCase().includes(wanted))
    .map((category) => {
      seen.add(category.name);
      return panelFor(category);
    });
  for (const [name, gone] of [...panels]) {
    if (seen.has(name)) continue;
    if (gone.camera) gone.camera.dispose();
    if (observer) observer.unobserve(gone);
    panels.delete(name);
  }
  keepInPlace(box, nodes);
  const ids = new Set(
    store.categories.flatMap((c) =>
      [...c.images, ...(c.test_images || [])].map((i) => `${i.id}#${i.v}`),
    ),
  );
  for (const key of [...thumbs.keys()]) if (!ids.has(key)) thumbs.delete(key);
  renderSelection();
  if (focusKey && (!document.activeElement || document.activeElement === document.body)) {
    const again = document.querySelector(`[data-key="${CSS.escape(focusKey)}"]`);
    if (again) again.focus();
  }
}

// Make `parent`'s children exactly `nodes`, moving only those not already in place: a panel
// taken out of the page, even for a moment, would lose the focus (a record button held with
// the keyboard stops) and pause its camera's video.
function keepInPlace(parent, nodes) {
  let current = parent.firstChild;
  for (const node of nodes) {
    if (current === node) current = current.nextSibling;
    else parent.insertBefore(node, current);
  }
  while (current) {
    const next = current.nextSibling;
    current.remove();
    current = next;
  }
}

function panelFor(category) {
  let panel = panels.get(category.name);
  if (!panel) {
    panel = buildShell(category.name);
    panels.set(category.name, panel);
  }
  const counts = [plural(category.count, "photo")];
  if (category.test_count) counts.push(`${category.test_count} test`);
  replace(panel.querySelector(".count"), counts.join(" · "));
  if (virtual()) watchPanel(panel);
  else if (!panel.awake) buildBody(panel, category.name);
  if (!panel.awake) {
    // About its built height (buttons, rows of thumbnails), until it has been built once.
    if (!panel.style.minHeight) {
      const first = FIRST_ROWS_WHEN_MANY;
      const n = Math.min(category.images.length, first);
      const tests = Math.min((category.test_images || []).length, first);
      const rows = Math.ceil(n / 5) + Math.ceil(tests / 5);
      panel.style.minHeight = `${90 + rows * 94 + (tests ? 30 : 0)}px`;
    }
    return panel;
  }
  return fillPanel(panel, category);
}

// ----- only the panels near the screen are built (100 categories are not 1,200 thumbnails) --

// Past this many thumbnails in all, a panel far from the screen is its header only: its
// buttons, camera, thumbnails and test set are built as it scrolls near and dropped as it
// scrolls far (keeping its height, so the scroll bar does not jump).
const VIRTUAL_PHOTOS = 300;
const NEAR = "600px 0px";
let observer = null;

function shownPhotos() {
  const first = store.categories.length > MANY_CATEGORIES ? FIRST_ROWS_WHEN_MANY : FIRST_ROWS;
  let sum = 0;
  for (const c of store.categories)
    sum += Math.min(c.images.length, first) + Math.min((c.test_images || []).length, first);
  return sum;
}

function virtual() {
  return store.categories.length > MANY_CATEGORIES && shownPhotos() > VIRTUAL_PHOTOS;
}

function watchPanel(panel) {
  if (!observer) {
    observer = new IntersectionObserver(
      (entries) => {
        for (const entry of entries) {
          const node = entry.target;
          const category = store.categories.find((c) => c.name === node.dataset.category);
          if (!category || !node.isConnected) continue;
          if (entry.isIntersecting && !node.awake) {
            buildBody(node, category.name);
            fillPanel(node, category);
            renderSelection();
          } else if (!entry.isIntersecting && node.awake) sleep(node);
        }
      },
      { root: $("#data"), rootMargin: NEAR },
    );
  }
  if (!panel.watched) {
    panel.watched = true;
    observer.observe(panel);
  }
}

// A panel in use stays built: the focus is in it, its camera is open, an upload reports in it.
function sleep(panel) {
  if (panel.contains(document.activeElement)) return;
  if (panel.camera && !panel.camera.block.hidden) return;
  if (panel.querySelector(".upload")) return;
  panel.style.minHeight = `${panel.offsetHeight}px`;
  if (panel.camera) panel.camera.dispose();
  panel.camera = null;
  for (const old of panel.querySelectorAll(".category-actions")) old.remove();
  panel.querySelector(".panel-body").replaceChildren();
  panel.awake = false;
}

function fillPanel(panel, category) {
  panel.style.minHeight = "";
  const grid = panel.querySelector(".grid");
  const more = panel.querySelector(".more");
  const showAll = store.expanded.has(category.name);
  const first = store.categories.length > MANY_CATEGORIES ? FIRST_ROWS_WHEN_MANY : FIRST_ROWS;
  const tests = category.test_images || [];
  // The test photos, apart and labelled: the model never trains on them.
  const testSet = panel.querySelector(".test-set");
  testSet.hidden = !tests.length;
  replace(testSet.querySelector(".test-count"), tests.length ? `(${tests.length})` : "");
  const testGrid = testSet.querySelector(".test-grid");
  testGrid.replaceChildren(
    ...(showAll ? tests : tests.slice(0, first)).map((image, index) =>
      thumbFor(image, category.name, index, "test"),
    ),
  );
  settleRoving(testGrid);
  more.hidden = category.images.length <= first && tests.length <= first;
  more.textContent = showAll
    ? "Show fewer"
    : `Show all ${category.images.length + tests.length} photos`;
  if (!category.images.length) {
    grid.hidden = true;
    panel.querySelector(".panel-empty").hidden = false;
    return panel;
  }
  panel.querySelector(".panel-empty").hidden = true;
  grid.hidden = false;
  const shown = showAll ? category.images : category.images.slice(0, first);
  grid.replaceChildren(...shown.map((image, index) => thumbFor(image, category.name, index)));
  settleRoving(grid);
  return panel;
}

function buildShell(name) {
  const panel = h(
    "article",
    {
      class: "category",
      dataset: { category: name },
      "aria-label": `Category ${name}`,
      tabindex: "-1",
    },
    h(
      "header",
      { class: "category-head" },
      h("h3", { class: "category-name", text: name, title: name }),
      h("span", { class: "count" }),
    ),
    h("div", { class: "panel-body" }),
  );
  panel.querySelector(".count").id = `count-${cssId(name)}`;
  panel.awake = false;
  makeDropTarget(panel, name);
  return panel;
}

// The panel's buttons, camera, grid and test set: built when the panel is near the screen.
function buildBody(panel, name) {
  const filesInput = h("input", {
    type: "file",
    accept: "image/*",
    multiple: true,
    class: "visually-hidden",
    tabindex: "-1",
    "aria-label": `Photos to add to ${name}`,
  });
  const folderInput = h("input", {
    type: "file",
    multiple: true,
    webkitdirectory: true,
    class: "visually-hidden",
    tabindex: "-1",
    "aria-label": `A folder of photos to add to ${name}`,
  });
  // One picker for both sets: "Add test photos…" opens it with `split` set to "test".
  filesInput.addEventListener("change", () => {
    uploadFiles(name, Array.from(filesInput.files), filesInput.dataset.split || "train");
    filesInput.value = "";
    filesInput.dataset.split = "train";
  });
  folderInput.addEventListener("change", () => {
    uploadFiles(name, Array.from(folderInput.files));
    folderInput.value = "";
  });
  const camera = categoryCamera(name, (files, options) =>
    uploadFiles(name, files, "train", options),
  );
  const testSet = h(
    "section",
    { class: "test-set", hidden: true, "aria-label": `Test photos of ${name}` },
    h(
      "h4",
      { class: "test-set-title" },
      "Test photos ",
      h("span", { class: "test-count" }),
      h("span", {
        class: "test-set-hint",
        text: " kept apart: never trained on, they measure the model",
      }),
    ),
    h("div", {
      class: "test-grid",
      role: "listbox",
      "aria-multiselectable": "true",
      "aria-label": `Test photos of ${name}`,
      "aria-describedby": "grid-keys",
    }),
  );
  wireRoving(testSet.querySelector(".test-grid"));
  makeTestDropTarget(testSet, name);
  const actions = h(
    "div",
    { class: "category-actions" },
    h("button", {
      type: "button",
      class: "btn btn-small",
      text: "Add photos…",
      dataset: { key: `add:${name}` },
      onclick: () => {
        filesInput.dataset.split = "train";
        filesInput.click();
      },
    }),
    h("button", {
      type: "button",
      class: "btn btn-small",
      text: "Add folder…",
      dataset: { key: `folder:${name}` },
      onclick: () => folderInput.click(),
    }),
    camera.button,
    h("button", {
      type: "button",
      class: "btn btn-small",
      text: "Add test photos…",
      title: "Photos kept apart to measure the model: it never trains on them",
      dataset: { key: `addtest:${name}` },
      onclick: () => {
        filesInput.dataset.split = "test";
        filesInput.click();
      },
    }),
    h("button", {
      type: "button",
      class: "btn btn-small",
      text: "Rename",
      dataset: { key: `rename:${name}` },
      onclick: () => renameCategory(name),
    }),
    h("button", {
      type: "button",
      class: "btn btn-small",
      text: "Merge…",
      dataset: { key: `merge:${name}` },
      onclick: () => mergeCategory(name),
    }),
    h("button", {
      type: "button",
      class: "btn btn-small btn-danger",
      text: "Remove",
      "aria-label": `Remove category ${name}`,
      onclick: () => removeCategory(name),
    }),
    filesInput,
    folderInput,
  );
  const head = panel.querySelector(".category-head");
  for (const old of head.querySelectorAll(".category-actions")) old.remove();
  head.append(actions);
  panel.querySelector(".panel-body").replaceChildren(
    camera.block,
    h(
      "div",
      { class: "panel-empty", hidden: true },
      h("p", { text: "No photos yet: drop photos or a folder here, or use Add photos." }),
    ),
    h("div", {
      class: "grid",
      role: "listbox",
      "aria-multiselectable": "true",
      "aria-label": `Photos of ${name}`,
      "aria-describedby": "grid-keys",
    }),
    h("button", {
      type: "button",
      class: "btn btn-quiet more",
      hidden: true,
      onclick: () => {
        if (store.expanded.has(name)) store.expanded.delete(name);
        else store.expanded.add(name);
        renderCategories();
      },
    }),
    testSet,
  );
  panel.camera = camera;
  panel.awake = true;
  wireRoving(panel.querySelector(".grid"));
}

// A photo is one option of its grid's listbox: the grid is one Tab stop (roving tabindex),
// arrows move, Enter opens, Space selects, Delete removes. The mouse gets the same through the
// tick and the × on the thumbnail, which are not separate stops (nor focusable at all: an
// option may hold no controls).
function thumbFor(image, category, index, split = "train") {
  const key = `${image.id}#${image.v}`;
  let node = thumbs.get(key);
  const label = `${split === "test" ? "Test photo" : "Photo"} ${index + 1} of ${category}`;
  if (!node) {
    const img = h("img", {
      src: thumbUrl(image.id, image.v),
      alt: "",
      loading: "lazy",
      decoding: "async",
      draggable: "false",
    });
    img.addEventListener("error", () => img.classList.add("broken"), { once: true });
    const tick = h("span", { class: "thumb-check", "aria-hidden": "true", title: "Select" });
    tick.addEventListener("click", (event) => {
      event.stopPropagation();
      toggleSelected(image.id);
    });
    const cross = h("span", {
      class: "thumb-remove",
      "aria-hidden": "true",
      title: "Remove",
      text: "×",
    });
    cross.addEventListener("click", (event) => {
      event.stopPropagation();
      removePhotos([image.id]);
    });
    node = h(
      "div",
      {
        class: "thumb",
        role: "option",
        tabindex: "-1",
        draggable: "true",
        "aria-selected": "false",
        dataset: { id: image.id, key: `thumb:${image.id}` },
      },
      h("span", { class: "thumb-open", "aria-hidden": "true" }, img),
      tick,
      cross,
    );
    node.addEventListener("click", () => {
      makeActive(node);
      showPhoto(image.id, node.dataset.label);
    });
    node.addEventListener("dragstart", (event) => {
      const ids = store.selected.has(image.id) ? [...store.selected] : [image.id];
      event.dataTransfer.setData(PHOTO_TYPE, JSON.stringify(ids));
      event.dataTransfer.effectAllowed = "move";
      node.classList.add("dragging");
    });
    node.addEventListener("dragend", () => node.classList.remove("dragging"));
    thumbs.set(key, node);
  }
  node.dataset.label = label;
  node.setAttribute("aria-label", label);
  const checked = store.selected.has(image.id);
  node.setAttribute("aria-selected", String(checked));
  node.classList.toggle("selected", checked);
  return node;
}

function toggleSelected(id) {
  if (store.selected.has(id)) store.selected.delete(id);
  else store.selected.add(id);
  renderSelection();
}

// The one photo of a grid that Tab reaches: the last one used, else the first.
function makeActive(node) {
  const grid = node.parentElement;
  if (!grid) return;
  for (const other of grid.children) if (other !== node) other.tabIndex = -1;
  node.tabIndex = 0;
  grid.dataset.active = node.dataset.id;
}

function settleRoving(grid) {
  const items = Array.from(grid.children);
  if (!items.length) return;
  const active = items.find((n) => n.dataset.id === grid.dataset.active) || items[0];
  makeActive(active);
}

function wireRoving(grid) {
  grid.addEventListener("keydown", (event) => {
    const node = event.target.closest(".thumb");
    if (!node || node.parentElement !== grid) return;
    const items = Array.from(grid.children);
    const at = items.indexOf(node);
    // Photos per row: those level with the first one.
    const top = items[0].offsetTop;
    const perRow = Math.max(1, items.filter((n) => n.offsetTop === top).length);
    const moves = {
      ArrowRight: at + 1,
      ArrowLeft: at - 1,
      ArrowDown: at + perRow,
      ArrowUp: at - perRow,
      Home: 0,
      End: items.length - 1,
    };
    if (event.key in moves) {
      event.preventDefault();
      const next = items[Math.min(items.length - 1, Math.max(0, moves[event.key]))];
      makeActive(next);
      next.focus();
      return;
    }
    const id = node.dataset.id;
    if (event.key === "Enter") {
      event.preventDefault();
      showPhoto(id, node.dataset.label);
    } else if (event.key === " ") {
      event.preventDefault();
      toggleSelected(id);
    } else if (event.key === "Delete" || event.key === "Backspace") {
      event.preventDefault();
      // A selected photo takes the whole selection with it, as the selection bar's Remove.
      const ids = store.selected.has(id) ? [...store.selected] : [id];
      const neighbour =
        items.slice(at + 1).find((n) => !ids.includes(n.dataset.id)) ||
        items
          .slice(0, at)
          .reverse()
          .find((n) => !ids.includes(n.dataset.id));
      if (neighbour) {
        makeActive(neighbour);
        neighbour.focus();
      }
      removePhotos(ids);
    }
  });
}

function cssId(name) {
  return Array.from(name)
    .map((c) => (/[A-Za-z0-9_-]/.test(c) ? c : `_${c.codePointAt(0).toString(16)}`))
    .join("");
}

// ----- the overview: every category with its count and warnings, a filter, jump to one -----

function filterText() {
  const input = $("#category-filter");
  return input ? input.value.trim().toLowerCase() : "";
}

function categoryWarnings(category) {
  if (category.count === 0) return ["no photos"];
  if (category.count < store.project.tiny_category) return ["too few photos"];
  return [];
}

function renderOverview() {
  const nav = $("#overview");
  if (!nav) return;
  nav.hidden = store.categories.length <= MANY_CATEGORIES;
  if (nav.hidden) return;
  const wanted = filterText();
  const matching = store.categories.filter((c) => !wanted || c.name.toLowerCase().includes(wanted));
  const photos = store.categories.reduce((sum, c) => sum + c.count, 0);
  $("#overview-count").textContent = wanted
    ? `${matching.length} of ${plural(store.categories.length, "category", "categories")} shown`
    : `${plural(store.categories.length, "category", "categories")}, ${plural(photos, "photo")}`;
  replace(
    $("#overview-list"),
    matching.map((category) => {
      const problems = categoryWarnings(category);
      return h(
        "li",
        {},
        h(
          "button",
          {
            type: "button",
            class: `overview-item${problems.length ? " overview-warn" : ""}`,
            title: problems.length ? `${category.name}: ${problems.join(", ")}` : category.name,
            onclick: () => jumpTo(category.name),
          },
          h("span", { class: "overview-name", text: category.name }),
          h("span", { class: "overview-n", text: String(category.count) }),
          problems.length
            ? h("span", { class: "visually-hidden", text: `, ${problems.join(", ")}` })
            : null,
        ),
      );
    }),
  );
}

function jumpTo(name) {
  const panel = panels.get(name);
  if (!panel || !panel.isConnected) return;
  panel.scrollIntoView({ block: "start" });
  panel.focus({ preventScroll: true });
}

function renderWarnings() {
  const list = $("#warnings");
  const warnings = (store.status && store.status.warnings) || [];
  const shown = warnings.filter((w) => w.kind !== "stale_model").slice(0, 6);
  replace(
    list,
    shown.map((w) => h("li", { class: `warning warning-${w.kind}` }, withCode(w.message))),
  );
  if (warnings.length > shown.length + warnings.filter((w) => w.kind === "stale_model").length) {
    list.append(
      h("li", {
        class: "warning",
        text: `…and ${warnings.length - shown.length} more.`,
      }),
    );
  }
}

// ----- selection ---------------------------------------------------------------------------

export function renderSelection() {
  const bar = $("#selection-bar");
  const count = store.selected.size;
  bar.hidden = count === 0;
  document.body.classList.toggle("selecting", count > 0);
  for (const node of document.querySelectorAll(".thumb")) {
    const on = store.selected.has(node.dataset.id);
    node.classList.toggle("selected", on);
    node.setAttribute("aria-selected", String(on));
  }
  if (!count) return;
  replace($("#selection-count"), `${plural(count, "photo")} selected`);
  const splits = new Set([...store.selected].map((id) => id.split("/")[0]));
  $("#to-test-selected").hidden = !splits.has("train");
  $("#to-train-selected").hidden = !splits.has("test");
  const select = $("#move-target");
  const current = select.value;
  replace(
    select,
    store.categories.map((c) => h("option", { value: c.name, text: c.name })),
  );
  if (current && store.categories.some((c) => c.name === current)) select.value = current;
}

export function wireSelectionBar() {
  $("#move-selected").addEventListener("click", () =>
    movePhotos([...store.selected], $("#move-target").value),
  );
  $("#remove-selected").addEventListener("click", () => removePhotos([...store.selected]));
  $("#to-test-selected").addEventListener("click", () => moveToSplit([...store.selected], "test"));
  $("#to-train-selected").addEventListener("click", () =>
    moveToSplit([...store.selected], "train"),
  );
  $("#clear-selection").addEventListener("click", () => {
    store.selected.clear();
    renderSelection();
  });
}

// ----- operations ---------------------------------------------------------------------------

async function act(promise, success) {
  try {
    const result = await promise;
    if (success) success(result);
    emit("changed");
    return result;
  } catch (exc) {
    toast(exc.message, { kind: "error" });
    return null;
  }
}

const undoAction = { label: "Undo", run: () => emit("undo") };

export function wireAddCategory() {
  const filter = $("#category-filter");
  filter.addEventListener("input", () => renderCategories());
  filter.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    const wanted = filterText();
    const first = store.categories.find((c) => c.name.toLowerCase().includes(wanted));
    if (first) jumpTo(first.name);
  });
  const form = $("#add-category-form");
  const input = $("#new-category");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = input.value.trim();
    if (!name) return;
    const done = await act(postJSON("/api/categories/add", { name }));
    if (done) {
      input.value = "";
      toast(`Added category “${done.name}”. Drop photos onto it.`);
    }
  });
}

async function renameCategory(name) {
  await formDialog({
    title: `Rename “${name}”`,
    okLabel: "Rename",
    build: (body) => {
      const input = h("input", {
        id: "rename-input",
        value: name,
        maxlength: "100",
        required: true,
      });
      body.append(h("label", { for: "rename-input", text: "New name" }), input);
      return () => {
        const value = input.value.trim();
        if (!value) throw new Error("Type a name.");
        return value;
      };
    },
    submit: async (value) => {
      if (value === name) return;
      await postJSON("/api/categories/rename", { old: name, new: value });
      store.expanded.delete(name);
      emit("changed");
      toast(`Renamed “${name}” to “${value}”.`, { action: undoAction });
    },
  });
}

async function mergeCategory(name) {
  const others = store.categories.map((c) => c.name).filter((n) => n !== name);
  if (!others.length) {
    toast("There is no other category to merge with: add one first.");
    return;
  }
  await formDialog({
    title: `Merge “${name}” with other categories`,
    okLabel: "Merge",
    build: (body) => {
      const boxes = others.map((other, i) =>
        h(
          "label",
          { class: "check-row" },
          h("input", { type: "checkbox", value: other, id: `merge-${i}` }),
          ` ${other}`,
        ),
      );
      const datalist = h(
        "datalist",
        { id: "merge-names" },
        store.categories.map((c) => h("option", { value: c.name })),
      );
      const target = h("input", {
        id: "merge-target",
        value: name,
        maxlength: "100",
        list: "merge-names",
        required: true,
      });
      body.append(
        h(
          "fieldset",
          { class: "merge-list" },
          h("legend", { text: `Merge “${name}” with:` }),
          boxes,
        ),
        h("label", {
          for: "merge-target",
          text: "Name of the merged category (an existing or a new one)",
        }),
        target,
        datalist,
        h("p", {
          class: "hint",
          text: "Broader categories (e.g. `edible plant` instead of `carrot` and `tomato`) often make a better model.",
        }),
      );
      return () => {
        const sources = [
          name,
          ...boxes
            .map((b) => b.querySelector("input"))
            .filter((b) => b.checked)
            .map((b) => b.value),
        ];
        const value = target.value.trim();
        if (sources.length < 2 && value === name)
          throw new Error("Tick at least one category to merge with.");
        if (!value) throw new Error("Type the name of the merged category.");
        return { sources, target: value };
      };
    },
    submit: async ({ sources, target }) => {
      const result = await postJSON("/api/categories/merge", { sources, target });
      emit("changed");
      toast(
        `Merged ${sources.map((s) => `“${s}”`).join(", ")} into “${target}” (${plural(result.moved, "photo")}).`,
        { action: undoAction },
      );
    },
  });
}

async function removeCategory(name) {
  await act(postJSON("/api/categories/remove", { name }), () =>
    toast(`Removed category “${name}”. Its photos are in the project's trash.`, {
      action: undoAction,
    }),
  );
}

export async function movePhotos(ids, category) {
  if (!ids.length || !category) return;
  await act(postJSON("/api/images/move", { images: ids, category }), (result) => {
    for (const id of ids) store.selected.delete(id);
    toast(`Moved ${plural(result.moved.length, "photo")} to “${category}”.`, {
      action: undoAction,
    });
  });
}

export async function removePhotos(ids) {
  if (!ids.length) return;
  await act(postJSON("/api/images/remove", { images: ids }), (result) => {
    for (const id of ids) store.selected.delete(id);
    toast(`Removed ${plural(result.removed, "photo")}.`, { action: undoAction });
  });
}

// Between the training and the test set; each photo keeps its category.
export async function moveToSplit(ids, split) {
  if (!ids.length) return;
  await act(postJSON("/api/images/split", { images: ids, split }), (result) => {
    for (const id of ids) store.selected.delete(id);
    const where = split === "test" ? "the test set" : "the training set";
    toast(`Moved ${plural(result.moved.length, "photo")} to ${where}.`, { action: undoAction });
  });
}

// ----- drag and drop ----------------------------------------------------------------------

function makeDropTarget(node, category) {
  let depth = 0;
  node.addEventListener("dragenter", (event) => {
    if (!accepts(event)) return;
    event.preventDefault();
    depth += 1;
    node.classList.add("drop-over");
  });
  node.addEventListener("dragover", (event) => {
    if (!accepts(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = hasType(event, PHOTO_TYPE) ? "move" : "copy";
  });
  node.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) node.classList.remove("drop-over");
  });
  node.addEventListener("drop", (event) => {
    if (!accepts(event)) return;
    event.preventDefault();
    event.stopPropagation();
    depth = 0;
    node.classList.remove("drop-over");
    if (hasType(event, PHOTO_TYPE)) {
      let ids;
      try {
        ids = JSON.parse(event.dataTransfer.getData(PHOTO_TYPE));
      } catch {
        return;
      }
      const here = new Set(
        (store.categories.find((c) => c.name === category) || { images: [] }).images.map(
          (i) => i.id,
        ),
      );
      // Its own test photos dropped on the panel go back to the training set.
      const ownTests = ids.filter((id) => id.startsWith(`test/${category}/`));
      if (ownTests.length) moveToSplit(ownTests, "train");
      movePhotos(
        ids.filter((id) => !here.has(id) && !ownTests.includes(id)),
        category,
      );
      return;
    }
    const pending = droppedEntries(event.dataTransfer);
    pending.then((found) =>
      uploadFiles(
        category,
        found.map((f) => f.file),
      ),
    );
  });
}

// The test set of a panel takes dropped files as test photos, and the category's own training
// photos (moved to the test set); drops it does not take fall through to the panel.
function makeTestDropTarget(node, category) {
  node.addEventListener("dragover", (event) => {
    if (!accepts(event)) return;
    event.preventDefault();
    node.classList.add("drop-over");
  });
  node.addEventListener("dragleave", () => node.classList.remove("drop-over"));
  node.addEventListener("drop", (event) => {
    node.classList.remove("drop-over");
    if (hasType(event, PHOTO_TYPE)) {
      let ids;
      try {
        ids = JSON.parse(event.dataTransfer.getData(PHOTO_TYPE));
      } catch {
        return;
      }
      const own = ids.filter((id) => id.startsWith(`train/${category}/`));
      if (own.length !== ids.length) return; // another category's photos: the panel moves them
      event.preventDefault();
      event.stopPropagation();
      moveToSplit(own, "test");
      return;
    }
    if (!hasType(event, "Files")) return;
    event.preventDefault();
    event.stopPropagation();
    droppedEntries(event.dataTransfer).then((found) =>
      uploadFiles(
        category,
        found.map((f) => f.file),
        "test",
      ),
    );
  });
}

function hasType(event, type) {
  return Array.from(event.dataTransfer ? event.dataTransfer.types : []).includes(type);
}

function accepts(event) {
  return hasType(event, PHOTO_TYPE) || hasType(event, "Files");
}

// The section itself takes a folder of folders: one category per folder.
export function wireSectionDrop() {
  const box = $("#categories");
  box.addEventListener("dragover", (event) => {
    if (hasType(event, "Files")) {
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    }
  });
  box.addEventListener("drop", async (event) => {
    if (!hasType(event, "Files")) return;
    event.preventDefault();
    const found = await droppedEntries(event.dataTransfer);
    const groups = new Map();
    let loose = 0;
    for (const { file, path } of found) {
      const parts = path.split("/").filter(Boolean);
      // "/animals/cat/1.jpg": a dropped folder holding category folders; "/cat/1.jpg": a category.
      const name = parts.length >= 3 ? parts[1] : parts.length === 2 ? parts[0] : null;
      if (!name) {
        loose += 1;
        continue;
      }
      if (!groups.has(name)) groups.set(name, []);
      groups.get(name).push(file);
    }
    if (loose)
      toast(
        `${plural(loose, "file")} not added: drop photos onto a category, or drop folders here to make categories.`,
      );
    for (const [name, files] of groups) {
      if (!store.categories.some((c) => c.name === name)) {
        try {
          await postJSON("/api/categories/add", { name });
        } catch (exc) {
          toast(`Folder “${name}” was not added: ${exc.message}`, { kind: "error", timeout: 0 });
          continue;
        }
      }
      emit("changed");
      await uploadFiles(name, files);
    }
  });
}

// Files and folders from a drop, each with its path inside what was dropped. The entries must
// be taken while the event is being handled; reading them can happen afterwards.
function droppedEntries(dataTransfer) {
  const items = Array.from(dataTransfer.items || []).filter((item) => item.kind === "file");
  const roots = [];
  const plain = [];
  for (const item of items) {
    const entry = item.webkitGetAsEntry ? item.webkitGetAsEntry() : null;
    if (entry) roots.push(entry);
    else {
      const file = item.getAsFile();
      if (file) plain.push({ file, path: `/${file.name}` });
    }
  }
  if (!items.length)
    for (const file of Array.from(dataTransfer.files || []))
      plain.push({ file, path: `/${file.name}` });
  return Promise.all(roots.map(walkEntry)).then((lists) => plain.concat(lists.flat()));
}

async function walkEntry(entry) {
  if (entry.name.startsWith(".")) return []; // .git, .DS_Store, ...: never photos
  if (entry.isFile) {
    const file = await new Promise((resolve) => entry.file(resolve, () => resolve(null)));
    return file ? [{ file, path: entry.fullPath }] : [];
  }
  if (!entry.isDirectory) return [];
  const reader = entry.createReader();
  const children = [];
  for (;;) {
    const batch = await new Promise((resolve) => reader.readEntries(resolve, () => resolve([])));
    if (!batch.length) break;
    children.push(...batch);
  }
  const lists = await Promise.all(children.map(walkEntry));
  return lists.flat();
}

// ----- uploads ------------------------------------------------------------------------------

// Returns the report (added, duplicates, rejected). `oneRequest` sends everything in one
// request, up to the server's limits (a camera burst: one entry in the history, one undo).
export async function uploadFiles(category, files, split = "train", { oneRequest = false } = {}) {
  const limit = store.project.upload_max_bytes;
  const hidden = (f) =>
    (f.webkitRelativePath || f.name).split("/").some((part) => part.startsWith("."));
  const wanted = files.filter((f) => !hidden(f));
  const tooBig = wanted.filter((f) => f.size > limit);
  const queue = wanted.filter((f) => f.size <= limit);
  if (!wanted.length) {
    toast("There were no files to add in what was dropped.");
    return null;
  }
  const where = split === "test" ? `the test set of “${category}”` : `“${category}”`;
  const totalBytes = queue.reduce((sum, f) => sum + f.size, 0) || 1;
  const report = {
    added: [],
    duplicates: [],
    rejected: tooBig.map((f) => ({ source: f.name, reason: `It is larger than ${bytes(limit)}.` })),
  };
  const bar = h("progress", {
    max: String(totalBytes),
    value: "0",
    "aria-label": `Upload to ${category}`,
  });
  const text = h("span", { class: "upload-text" });
  const box = h(
    "div",
    { class: "upload", role: "status" },
    h(
      "div",
      { class: "upload-head" },
      h("p", {
        class: "upload-title",
        text: `Adding ${plural(wanted.length, "file")} to ${where}…`,
      }),
      text,
    ),
    bar,
  );
  // The progress and its report appear in the panel the photos were dropped on, where the
  // user is looking (the top of the data area may be far up a long page).
  const home = panels.get(category);
  if (home && home.isConnected) home.querySelector(".category-head").after(box);
  else $("#uploads").append(box);
  let sentBefore = 0;
  let sentFiles = 0;
  let failure = null;
  const perRequest = oneRequest
    ? [store.project.upload_max_files, limit]
    : [BATCH_FILES, BATCH_BYTES];
  for (const batch of batches(queue, ...perRequest)) {
    const batchBytes = batch.reduce((sum, f) => sum + f.size, 0);
    text.textContent = `${sentFiles} of ${queue.length} sent (${bytes(sentBefore)} of ${bytes(totalBytes)})`;
    try {
      const result = await postFiles(
        `/api/upload?category=${encodeURIComponent(category)}&split=${split}`,
        batch,
        (loaded) => {
          bar.value = sentBefore + Math.min(loaded, batchBytes);
        },
      );
      report.added.push(...result.added);
      report.duplicates.push(...result.duplicates);
      report.rejected.push(...result.rejected);
    } catch (exc) {
      failure = exc.message;
      for (const f of batch) report.rejected.push({ source: f.name, reason: exc.message });
      if (exc.status === 0 || exc.status === 404) break; // server gone, or the category was removed
    }
    sentBefore += batchBytes;
    sentFiles += batch.length;
    bar.value = sentBefore;
    emit("changed");
  }
  finishUpload(box, where, report, failure);
  return report;
}

function* batches(files, maxFiles, maxBytes) {
  let batch = [];
  let size = 0;
  for (const file of files) {
    if (batch.length && (batch.length >= maxFiles || size + file.size > maxBytes)) {
      yield batch;
      batch = [];
      size = 0;
    }
    batch.push(file);
    size += file.size;
  }
  if (batch.length) yield batch;
}

function finishUpload(box, where, report, failure) {
  const dismiss = h("button", {
    type: "button",
    class: "btn btn-small btn-quiet",
    text: "Dismiss",
    onclick: () => box.remove(),
  });
  const lines = [
    h(
      "div",
      { class: "upload-head" },
      h("p", {
        class: "upload-title",
        text: `Added ${plural(report.added.length, "photo")} to ${where}.`,
      }),
      dismiss,
    ),
  ];
  if (report.duplicates.length) {
    lines.push(
      h(
        "details",
        {},
        h("summary", {
          text: `${plural(report.duplicates.length, "photo")} already in the project, skipped`,
        }),
        h(
          "ul",
          {},
          report.duplicates.map((d) => h("li", { text: `${d.source} (same as ${d.existing})` })),
        ),
      ),
    );
  }
  if (report.rejected.length) {
    lines.push(
      h("p", { class: "error-text", text: `${plural(report.rejected.length, "file")} not added:` }),
      h(
        "ul",
        { class: "rejected" },
        report.rejected.map((r) => h("li", {}, h("b", { text: r.source }), ` — ${r.reason}`)),
      ),
    );
  }
  box.classList.toggle("upload-problem", Boolean(report.rejected.length || failure));
  box.classList.add("upload-done");
  replace(box, ...lines);
  if (!report.rejected.length && !report.duplicates.length) setTimeout(() => box.remove(), 5000);
}
