// The photo viewer: the photo with what it is (category, training or test set, what the model
// says and where that answer comes from, when it was added) and one-click fixes (move it to
// the category the model saw, to another category, to the other set, or remove it). The
// viewer is modal, so the page's Undo is out of reach: each fix offers its own Undo, labelled
// with what the server will undo.

import { postJSON } from "./api.js";
import { loadStatus } from "./data.js";
import { $, bytes, h, pct, replace, setPhotoOpener } from "./dom.js";
import { emit, on, store } from "./store.js";

let shown = null; // { id, caption }: the photo in the viewer
let request = 0; // facts arrive out of order when the user clicks quickly

export function wireViewer() {
  setPhotoOpener(openPhoto);
  $("#viewer").addEventListener("close", () => {
    shown = null;
  });
  on("status", labelUndo);
}

export function openPhoto(id, caption) {
  const viewer = $("#viewer");
  replace($("#viewer-status"));
  show(id, caption);
  if (!viewer.open) viewer.showModal();
}

// Where a photo of the project is now: its id, or, once it moved (its id changed), the one
// photo with its file name (duetml names a photo by its content's hash, so a moved photo keeps
// it). A name several photos share (files copied in by hand) finds none rather than a wrong one.
// One index per listing: a cell of many photos in a big project costs one pass over it.
let index = { of: null, byId: new Map(), byFile: new Map() };

export function locate(id) {
  if (index.of !== store.categories) {
    const byId = new Map();
    const byFile = new Map();
    for (const category of store.categories) {
      for (const [split, list] of [
        ["train", category.images],
        ["test", category.test_images || []],
      ])
        for (const image of list) {
          const where = { id: image.id, category: category.name, split };
          byId.set(image.id, where);
          const file = fileOf(image.id);
          byFile.set(file, byFile.has(file) ? null : where);
        }
    }
    index = { of: store.categories, byId, byFile };
  }
  return index.byId.get(id) || index.byFile.get(fileOf(id)) || null;
}

function fileOf(id) {
  return id.slice(id.lastIndexOf("/") + 1);
}

function show(id, caption) {
  shown = { id, caption };
  const img = $("#viewer-img");
  img.src = `/api/image?image=${encodeURIComponent(id)}`;
  img.alt = caption || `Photo ${id}`;
  replace($("#viewer-caption"), caption && caption !== id ? caption : "");
  replace($("#viewer-facts"), h("p", { class: "muted", text: "Reading what is known about it…" }));
  replace($("#viewer-actions"));
  loadFacts(id);
}

async function loadFacts(id) {
  const mine = ++request;
  let facts;
  try {
    facts = await postJSON("/api/images/facts", { image: id });
  } catch (exc) {
    if (mine === request)
      replace($("#viewer-facts"), h("p", { class: "error-text", text: exc.message }));
    return;
  }
  if (mine !== request || !shown || shown.id !== id) return;
  renderFacts(facts);
  renderActions(facts);
}

function row(term, ...value) {
  return [h("dt", { text: term }), h("dd", {}, ...value)];
}

function renderFacts(facts) {
  const p = facts.prediction;
  const said = p
    ? [
        h("b", { class: "viewer-predicted", text: p.category }),
        ` ${pct(p.confidence)}`,
        h("span", {
          class: p.category === facts.category ? "viewer-agrees" : "viewer-differs",
          text: p.category === facts.category ? " (agrees)" : " (differs from its category)",
        }),
        h("span", { class: "viewer-source", text: p.note }),
      ]
    : [h("span", { class: "muted", text: facts.no_prediction })];
  const size =
    facts.width && facts.height
      ? `${facts.width} × ${facts.height} px, ${bytes(facts.size_bytes)}`
      : bytes(facts.size_bytes);
  const list = h(
    "dl",
    {},
    row("Category", h("b", { class: "viewer-category", text: facts.category })),
    row(
      "Set",
      h("span", {
        class: `viewer-split viewer-split-${facts.split}`,
        text: facts.split === "test" ? "Test photo" : "Training photo",
      }),
      facts.split === "test"
        ? h("span", { class: "viewer-source", text: "Never trained on: it measures the model." })
        : null,
    ),
    row("Model says", ...said),
    row("Added", new Date(facts.added_at * 1000).toLocaleString()),
    row("File", size, h("span", { class: "viewer-id", text: facts.image })),
  );
  replace($("#viewer-facts"), list);
}

function renderActions(facts) {
  const names = store.categories.map((c) => c.name);
  const p = facts.prediction;
  const buttons = [];
  if (p && p.category !== facts.category && names.includes(p.category))
    buttons.push(
      h("button", {
        type: "button",
        class: "btn btn-primary viewer-fix",
        text: `Move to “${p.category}”`,
        onclick: () =>
          act(facts, "/api/images/move", { category: p.category }, `Moved to “${p.category}”.`),
      }),
    );
  const others = names.filter((n) => n !== facts.category);
  const select = h(
    "select",
    { id: "viewer-move-target", "aria-label": "Category to move the photo to" },
    others.map((n) => h("option", { value: n, text: n })),
  );
  if (others.length)
    buttons.push(
      h(
        "span",
        { class: "viewer-move" },
        select,
        h("button", {
          type: "button",
          class: "btn",
          text: "Move",
          onclick: () =>
            act(
              facts,
              "/api/images/move",
              { category: select.value },
              `Moved to “${select.value}”.`,
            ),
        }),
      ),
    );
  const toTest = facts.split === "train";
  buttons.push(
    h("button", {
      type: "button",
      class: "btn viewer-split-move",
      text: toTest ? "Move to test set" : "Move to training set",
      onclick: () =>
        act(
          facts,
          "/api/images/split",
          { split: toTest ? "test" : "train" },
          toTest ? "Now a test photo of its category." : "Now a training photo of its category.",
        ),
    }),
    h("button", {
      type: "button",
      class: "btn btn-danger viewer-remove",
      text: "Remove",
      onclick: () => act(facts, "/api/images/remove", {}, "Removed: it is in the project's trash."),
    }),
  );
  replace($("#viewer-actions"), ...buttons);
}

async function act(facts, url, body, done) {
  const actions = $("#viewer-actions");
  for (const b of actions.querySelectorAll("button, select")) b.disabled = true;
  let result;
  try {
    result = await postJSON(url, { images: [facts.image], ...body });
  } catch (exc) {
    say(exc.message, "error");
    for (const b of actions.querySelectorAll("button, select")) b.disabled = false;
    return;
  }
  const before = facts.image;
  const moved = Array.isArray(result.moved) ? result.moved[0] : null;
  emit("changed");
  await loadStatus().catch(() => {});
  say(done, "success", () => undoFrom(before));
  // The caller's caption ("Photo 3 of hat") no longer holds once the photo moved.
  if (moved) show(moved, null);
  else {
    // Removed: the photo stays in view (dimmed) so the user sees what Undo brings back.
    $("#viewer-img").classList.add("viewer-gone");
    replace(actions);
  }
}

async function undoFrom(before) {
  try {
    const result = await postJSON("/api/undo");
    emit("changed");
    say(`Undone: ${result.undone}.`, "info");
    $("#viewer-img").classList.remove("viewer-gone");
    show(before, null);
  } catch (exc) {
    say(exc.message, "error");
  }
}

function say(text, kind, undo = null) {
  const status = $("#viewer-status");
  status.className = `viewer-status message message-${kind}`;
  replace(
    status,
    h("span", { text }),
    undo
      ? h("button", {
          type: "button",
          class: "btn btn-small viewer-undo",
          text: "Undo",
          onclick: undo,
        })
      : null,
  );
  labelUndo();
}

// The viewer's Undo says what the server's undo will revert (its last change), like the page's.
function labelUndo() {
  const button = $("#viewer-status .viewer-undo");
  const history = (store.status && store.status.undo) || [];
  if (!button) return;
  button.textContent = history.length ? `Undo: ${history[0]}` : "Undo";
  button.disabled = history.length === 0;
}
