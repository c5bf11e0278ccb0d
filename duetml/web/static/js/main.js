// Start-up, the event stream that keeps every tab current, undo/redo and keyboard shortcuts.

import { getJSON, postJSON } from "./api.js";
import {
  chatPresent,
  conversationChanged,
  loadAgents,
  loadConversation,
  wireChat,
} from "./chat.js";
import { wireCamera, wireLiveCamera } from "./camera.js";
import {
  loadCategories,
  loadStatus,
  uploadFiles,
  wireAddCategory,
  wireSectionDrop,
  wireSelectionBar,
} from "./data.js";
import { $, replace, toast } from "./dom.js";
import { loadMap, wireMap } from "./map.js";
import {
  loadEvaluation,
  predictionVerdict,
  renderModel,
  renderTrain,
  wirePredict,
  wireTraining,
} from "./model.js";
import { wireViewer } from "./photo.js";
import { loadReview } from "./review.js";
import { wireSettings } from "./settings.js";
import { wireSteps } from "./steps.js";
import { on, store } from "./store.js";

// Off this machine the page is opened with `?token=` once; that answer set the token as an
// HttpOnly cookie, so it leaves the address bar (history, bookmarks, a shared screen, a link
// copied from there).
const opened = new URL(window.location.href);
if (opened.searchParams.has("token")) {
  opened.searchParams.delete("token");
  window.history.replaceState(null, "", opened.pathname + opened.search + opened.hash);
}

const seen = { data: null, model: null, chat: null, settings: null, review: null };
let dataRefresh = null;
let dataAgain = false;

function refreshData() {
  // Bursts (an upload of 300 photos in batches, two tabs) become one reload, then one more.
  if (dataRefresh) {
    dataAgain = true;
    return dataRefresh;
  }
  dataRefresh = Promise.all([loadCategories(), loadStatus(), loadReview(), loadMap()])
    .catch((exc) => toast(exc.message, { kind: "error" }))
    .finally(() => {
      dataRefresh = null;
      if (dataAgain) {
        dataAgain = false;
        refreshData();
      }
    });
  return dataRefresh;
}

async function refreshModel() {
  try {
    await loadStatus();
  } catch (exc) {
    toast(exc.message, { kind: "error" });
  }
  await Promise.all([loadEvaluation(), loadReview(), loadMap()]);
}

function renderUndo() {
  const button = $("#undo-btn");
  const history = (store.status && store.status.undo) || [];
  button.disabled = history.length === 0;
  // Say what Undo will undo before it does ("Undo: move 1 photo to hat").
  button.textContent = history.length ? `Undo: ${history[0]}` : "Undo";
  button.title = history.length ? `Undo: ${history[0]} (Ctrl+Z)` : "Nothing to undo";
  button.setAttribute(
    "aria-label",
    history.length ? `Undo ${history[0]}` : "Undo (nothing to undo)",
  );
  // Redo shows only while there is something to redo (until the next change), and says what.
  const redoButton = $("#redo-btn");
  const redoable = (store.status && store.status.redo) || [];
  redoButton.hidden = redoable.length === 0;
  redoButton.textContent = redoable.length ? `Redo: ${redoable[0]}` : "Redo";
  redoButton.title = redoable.length ? `Redo: ${redoable[0]} (Ctrl+Shift+Z or Ctrl+Y)` : "";
  redoButton.setAttribute("aria-label", redoable.length ? `Redo ${redoable[0]}` : "Redo");
}

async function undo() {
  try {
    const result = await postJSON("/api/undo");
    toast(`Undone: ${result.undone}.`, { action: { label: "Redo", run: redo } });
    refreshData();
  } catch (exc) {
    toast(exc.message, { kind: exc.status === 409 ? "info" : "error" });
  }
}

async function redo() {
  try {
    const result = await postJSON("/api/redo");
    toast(`Redone: ${result.redone}.`, { action: { label: "Undo", run: undo } });
    refreshData();
  } catch (exc) {
    toast(exc.message, { kind: exc.status === 409 ? "info" : "error" });
  }
}

function onState(snapshot) {
  renderTrain(snapshot.train);
  if (snapshot.data !== seen.data) {
    const first = seen.data === null;
    seen.data = snapshot.data;
    if (!first) refreshData();
  }
  if (snapshot.review !== seen.review) {
    const first = seen.review === null;
    seen.review = snapshot.review;
    if (!first) Promise.all([loadReview(), loadMap()]);
  }
  if (snapshot.model !== seen.model) {
    const first = seen.model === null;
    seen.model = snapshot.model;
    if (!first) refreshModel();
  }
  if (snapshot.settings !== seen.settings) {
    // duetml.toml changed: the goal (the assistant may have just learnt it), the agents.
    const first = seen.settings === null;
    seen.settings = snapshot.settings;
    if (!first) {
      loadProject();
      if (chatPresent()) loadAgents();
    }
  }
  if (chatPresent() && snapshot.chat !== seen.chat) {
    const first = seen.chat === null;
    seen.chat = snapshot.chat;
    if (!first) {
      conversationChanged();
      loadAgents();
    }
  }
}

function connect() {
  const banner = $("#connection");
  const source = new EventSource("/api/events");
  let wasDown = false;
  source.addEventListener("state", (event) => onState(JSON.parse(event.data)));
  source.addEventListener("open", () => {
    banner.hidden = true;
    if (wasDown) {
      wasDown = false;
      refreshData();
      refreshModel();
      if (chatPresent()) {
        loadConversation();
        loadAgents();
      }
    }
  });
  source.addEventListener("error", () => {
    wasDown = true;
    banner.hidden = false;
  });
}

async function loadProject() {
  store.project = await getJSON("/api/project");
  replace($("#project-name"), store.project.name);
  replace($("#project-goal"), store.project.goal ? `Goal: ${store.project.goal}` : "");
  $("#project-goal").title = store.project.goal || "";
  document.title = `${store.project.name} · duetml`;
}

async function start() {
  await loadProject();
  wireSteps();
  wireAddCategory();
  wireSelectionBar();
  wireSectionDrop();
  wireTraining();
  wirePredict();
  wireCamera();
  wireLiveCamera({ upload: uploadFiles, verdict: predictionVerdict });
  wireMap();
  wireViewer();
  $("#undo-btn").addEventListener("click", undo);
  on("changed", refreshData);
  on("undo", undo);
  on("status", () => {
    renderUndo();
    renderModel();
  });
  $("#redo-btn").addEventListener("click", redo);
  document.addEventListener("keydown", (event) => {
    const typing = event.target.closest("input, textarea, select, [contenteditable]");
    if (!(event.ctrlKey || event.metaKey) || typing) return;
    const key = event.key.toLowerCase();
    if (key === "z" && !event.shiftKey) {
      event.preventDefault();
      if (!$("#undo-btn").disabled) undo();
    } else if ((key === "z" && event.shiftKey) || (key === "y" && !event.shiftKey)) {
      // Ctrl+Shift+Z, and Ctrl+Y as on Windows.
      event.preventDefault();
      if (!$("#redo-btn").hidden) redo();
    }
  });
  connect(); // first, so nothing that changes while the page loads is missed
  const loads = [refreshData().then(loadEvaluation), getJSON("/api/train/state").then(renderTrain)];
  if (chatPresent()) {
    wireChat();
    wireSettings();
    loads.push(loadAgents(), loadConversation());
  }
  await Promise.all(loads);
  document.body.dataset.ready = "true";
}

start().catch((exc) => {
  replace($("#project-name"), "duetml");
  toast(exc.message || "The page could not start: reload it.", { kind: "error", timeout: 0 });
});
