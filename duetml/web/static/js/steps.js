// The workspace: the step bar (Data, Train & evaluate, Try, and the assistant on narrow
// screens) as tabs, the skip links that show their step first, and the Train control's state
// (no model, trained, out of date, training n%), always on screen.

import { $, $$, h, pct, plural, replace } from "./dom.js";
import { on, store } from "./store.js";

const PANELS = { data: "#data", train: "#train", try: "#evaluate", chat: "#assistant" };

// A wide screen shows the data beside the step last chosen among the others (Teachable
// Machine's classes | training | preview); `side` remembers which.
let side = "train";

export function currentStep() {
  return document.body.dataset.step || "data";
}

export function showStep(step, { focus = false } = {}) {
  if (!PANELS[step] || !$(PANELS[step])) return;
  // A wide screen has the assistant beside every step: nothing to switch.
  if (step === "chat" && !window.matchMedia("(max-width: 1000px)").matches) {
    if (focus) $(PANELS[step]).focus({ preventScroll: true });
    return;
  }
  document.body.dataset.step = step;
  if (step === "train" || step === "try") side = step;
  document.body.dataset.side = side;
  for (const tab of $$(".steps [role=tab]")) {
    const on = tab.dataset.step === step;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
  }
  if (focus) $(PANELS[step]).focus({ preventScroll: true });
}

export function wireSteps() {
  const tabs = $$(".steps [role=tab]");
  for (const tab of tabs) tab.addEventListener("click", () => showStep(tab.dataset.step));
  // One Tab stop for the tab list; arrows, Home and End move along it (the ARIA tabs pattern).
  $(".steps").addEventListener("keydown", (event) => {
    const shown = tabs.filter((t) => t.offsetParent !== null);
    const at = shown.indexOf(document.activeElement);
    if (at < 0) return;
    const moves = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: shown.length - 1 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    const next = shown[(moves[event.key] + shown.length) % shown.length];
    showStep(next.dataset.step);
    next.focus();
  });
  // A skip link to a step that is not on screen shows that step first.
  for (const link of $$(".skip-link")) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      if (link.dataset.stepLink) showStep(link.dataset.stepLink);
      const target = $(link.getAttribute("href"));
      if (target) target.focus();
    });
  }
  $("#train-btn").addEventListener("click", () => {
    // The progress and the result are in step 2: a narrow screen shows it (a wide one has
    // it beside the data already).
    if (currentStep() !== "data" || !window.matchMedia("(min-width: 1800px)").matches)
      showStep("train");
  });
  on("status", renderModelState);
  on("train", renderModelState);
  on("categories", renderDataCount);
  showStep("data");
}

// Past a few thousand photos the map starts closed: its dots and colours no longer tell
// categories apart at a glance, and the categories are what the data step is for.
const MAP_OPEN_UP_TO = 2000;
let mapDecided = false;

function renderDataCount() {
  const photos = store.categories.reduce((sum, c) => sum + c.count, 0);
  if (!mapDecided && store.categories.length) {
    mapDecided = true;
    if (photos > MAP_OPEN_UP_TO) $("#map-block").open = false;
  }
  replace(
    $("#step-data-count"),
    store.categories.length ? `${store.categories.length} · ${photos}` : "",
  );
  $("#step-data-count").title = store.categories.length
    ? `${plural(store.categories.length, "category", "categories")}, ${plural(photos, "photo")}`
    : "";
}

// The chip beside Train: what the model is now, in two or three words.
function renderModelState() {
  const chip = $("#model-state");
  const job = store.train || {};
  const model = store.status && store.status.model;
  // [long, short]: a phone shows the short words.
  let kind;
  let words;
  if (job.state === "running") {
    kind = "training";
    // A share only where there is one to count (the photos read, the fits done).
    const share = job.total > 1 ? pct(job.done / job.total) : null;
    words = share ? [`Training ${share}`, share] : ["Training…", "Training…"];
  } else if (!model) {
    kind = "none";
    words = ["No model yet", "No model"];
  } else if (model.older_than_data) {
    kind = "stale";
    words = ["Out of date: the photos changed", "Out of date"];
  } else {
    kind = "trained";
    const accuracy =
      model.cv_accuracy === null || model.cv_accuracy === undefined ? "" : pct(model.cv_accuracy);
    words = [accuracy ? `Trained · ${accuracy}` : "Trained", accuracy || "Trained"];
  }
  chip.className = `model-state model-${kind}`;
  if (chip.dataset.words !== words.join("|")) {
    chip.dataset.words = words.join("|");
    replace(
      chip,
      h("span", { class: "wide-only", text: words[0] }),
      h("span", { class: "narrow-only", text: words[1] }),
    );
  }
  $("#train-btn").classList.toggle("btn-quiet-primary", kind === "trained");
}
