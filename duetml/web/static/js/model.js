// (B) training with live progress, (C) trying photos and the evaluation report.

import { getFile, postFiles, postJSON } from "./api.js";
import {
  $,
  ago,
  confidenceBars,
  h,
  pct,
  plural,
  replace,
  showPhoto,
  thumbUrl,
  toast,
  withCode,
} from "./dom.js";
import { movePhotos, removePhotos, uploadFiles } from "./data.js";
import { locate } from "./photo.js";
import { emit, on, store } from "./store.js";

const MAX_PREDICTIONS = 12;
let lastRun = null;
let exporting = false; // the export zip is being built (renderModel rebuilds its button)

// ----- (B) training -------------------------------------------------------------------------

export function wireTraining() {
  $("#train-btn").addEventListener("click", async () => {
    const button = $("#train-btn");
    button.disabled = true;
    replace($("#train-message"), "");
    try {
      renderTrain(await postJSON("/api/train"));
    } catch (exc) {
      showTrainMessage(exc.message, "error");
      button.disabled = false;
    }
  });
}

function showTrainMessage(text, kind = "info") {
  const node = $("#train-message");
  node.className = `message message-${kind}`;
  replace(node, text);
}

export function renderTrain(job) {
  const running = job.state === "running";
  // The answer to "Train" says "running"; on a loaded machine the change signal can bring the
  // same run's end first. That run is over: its stale "running" must not empty the message.
  if (running && job.run === lastRun) return;
  store.train = job;
  const button = $("#train-btn");
  button.disabled = running;
  button.textContent = running ? "Training…" : "Train";
  button.setAttribute("aria-busy", running ? "true" : "false");
  $("#train-progress").hidden = !running;
  // "No model yet" under a running progress bar contradicts it: hidden while training.
  $("#model-summary").hidden = running && !(store.status && store.status.model);
  if (running) {
    const bar = $("#train-bar");
    const text = $("#train-text");
    if (job.phase === "features" && job.total) {
      bar.max = job.total;
      bar.value = job.done;
      const parts = [`Extracting features: ${job.done} of ${job.total} photos`];
      if (job.rate) parts.push(`${job.rate.toFixed(1)} images/s`);
      if (job.eta !== null && job.eta !== undefined)
        parts.push(`about ${Math.max(1, Math.round(job.eta))} s left`);
      text.textContent = parts.join(" · ");
    } else if (job.phase && job.label) {
      // The classifier's phases: a bar where there are steps to count (the fold fits).
      if (job.total > 1) {
        bar.max = job.total;
        bar.value = job.done;
      } else {
        bar.removeAttribute("value");
      }
      const steps = job.total > 1 ? `: ${job.done} of ${job.total} fits` : "…";
      text.textContent = `${job.label}${steps}`;
    } else {
      bar.removeAttribute("value");
      text.textContent = "Starting: reading the photos…";
    }
    showTrainMessage("");
  } else if (job.run && job.run !== lastRun) {
    if (job.state === "done" && job.result) {
      const r = job.result;
      // After a small change the last cross-validation is extended, not redone: say so.
      const accuracy =
        r.cv_accuracy === null
          ? ` No accuracy estimate: ${r.why_no_cv}`
          : r.cv_added_since
            ? ` Held-out accuracy ${pct(r.cv_accuracy, 1)}: the ${r.cv_folds}-fold cross-validation of the last full training (${plural(r.cv_fresh_photos, "photo")}), with the ${plural(r.cv_added_since, "photo")} added since predicted by the model trained before them.`
            : ` Accuracy measured by ${r.cv_folds}-fold cross-validation: ${pct(r.cv_accuracy, 1)}.`;
      showTrainMessage(
        `Trained on ${plural(r.images, "photo")} in ${plural(r.categories.length, "category", "categories")} in ${r.seconds.toFixed(1)} s.${accuracy}`,
        "success",
      );
      if (r.skipped && r.skipped.length)
        toast(
          `${plural(r.skipped.length, "photo")} could not be used: ${r.skipped
            .map((s) => `${s.image} (${s.reason})`)
            .slice(0, 3)
            .join("; ")}`,
          { kind: "error", timeout: 0 },
        );
    } else if (job.state === "failed") {
      showTrainMessage(job.error, "error");
    }
  }
  if (!running) lastRun = job.run;
  emit("train");
}

export function renderModel() {
  const box = $("#model-summary");
  const model = store.status && store.status.model;
  if (!model) {
    replace(
      box,
      h("p", {
        class: "empty-state-inline",
        text: "No model yet: make at least two categories with a few photos each, then press Train.",
      }),
    );
    return;
  }
  const parts = [
    h("span", {
      class: "model-accuracy",
      text:
        model.cv_accuracy === null || model.cv_accuracy === undefined
          ? "—"
          : pct(model.cv_accuracy),
    }),
    h("span", {
      class: "model-caption",
      text:
        model.cv_accuracy === null || model.cv_accuracy === undefined
          ? "no accuracy estimate"
          : model.cv_added_since
            ? `held-out accuracy: the last full cross-validation, and ${plural(model.cv_added_since, "photo")} added since, predicted by the model before them`
            : "cross-validated accuracy",
    }),
    h("span", {
      class: "model-meta",
      text: `Model trained ${ago(model.trained_at)} on ${
        model.categories.length > 8
          ? plural(model.categories.length, "category", "categories")
          : model.categories.join(", ")
      } (${model.backbone}).`,
    }),
  ];
  if (model.older_than_data)
    parts.push(
      h("span", {
        class: "stale",
        text: "The photos changed since: train again to include the changes.",
      }),
    );
  parts.push(
    h(
      "div",
      { class: "model-export" },
      h("button", {
        type: "button",
        id: "export-btn",
        class: "btn",
        text: exporting ? "Preparing the download…" : "Download the model (.zip)",
        disabled: exporting,
        "aria-busy": exporting ? "true" : "false",
        onclick: downloadModel,
      }),
      h(
        "span",
        { class: "hint" },
        withCode(
          "`model.onnx`, `labels.json` and `predict.py`: it runs without duetml, with onnxruntime, numpy and pillow.",
        ),
      ),
    ),
  );
  replace(box, ...parts);
}

// The same files as `duetml export`, zipped by the server; fetched (not a plain link) so
// that a failure is one sentence on the page rather than a failed download.
async function downloadModel() {
  exporting = true;
  renderModel();
  try {
    const { blob, name } = await getFile("/api/export", "model.zip");
    const url = URL.createObjectURL(blob);
    const link = h("a", { href: url, download: name, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    toast(`Downloaded ${name}: unzip it and run \`python predict.py photo.jpg\` in its folder.`);
  } catch (exc) {
    toast(exc.message, { kind: "error" });
  } finally {
    exporting = false;
    renderModel();
  }
}

// ----- (C) trying photos ----------------------------------------------------------------------

export function wirePredict() {
  const zone = $("#predict-drop");
  const input = $("#predict-input");
  input.addEventListener("change", () => {
    predictFiles(Array.from(input.files));
    input.value = "";
  });
  zone.addEventListener("dragover", (event) => {
    if (!Array.from(event.dataTransfer.types).includes("Files")) return;
    event.preventDefault();
    zone.classList.add("drop-over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("drop-over"));
  zone.addEventListener("drop", (event) => {
    if (!Array.from(event.dataTransfer.types).includes("Files")) return;
    event.preventDefault();
    zone.classList.remove("drop-over");
    predictFiles(Array.from(event.dataTransfer.files));
  });
}

export async function predictFiles(files) {
  const photos = files
    .filter((f) => !f.name.startsWith("."))
    .slice(0, store.project.predict_max_files);
  if (!photos.length) return;
  const list = $("#predictions");
  const cards = photos.map((file) => {
    const preview = h("img", { src: URL.createObjectURL(file), alt: `Your photo ${file.name}` });
    // A file the browser cannot show (not an image) gets a plain box, not a broken picture;
    // the caption says why once the server has looked at it.
    preview.addEventListener(
      "error",
      () => preview.replaceWith(h("div", { class: "prediction-nopreview", text: "No picture" })),
      { once: true },
    );
    const card = h(
      "figure",
      { class: "prediction pending" },
      preview,
      h(
        "figcaption",
        {},
        h("p", { class: "prediction-name", text: file.name }),
        h("p", { class: "muted", text: "Asking the model…" }),
      ),
    );
    card.file = file;
    list.prepend(card);
    return card;
  });
  while (list.children.length > MAX_PREDICTIONS) {
    const old = list.lastElementChild;
    const img = old.querySelector("img");
    if (img) URL.revokeObjectURL(img.src);
    old.remove();
  }
  try {
    const result = await postFiles("/api/predict", photos);
    result.predictions.forEach((p, i) => fillPrediction(cards[i], p));
  } catch (exc) {
    for (const card of cards)
      fillPrediction(card, {
        image: card.querySelector(".prediction-name").textContent,
        error: exc.message,
      });
  }
}

function fillPrediction(card, prediction) {
  card.classList.remove("pending");
  const caption = card.querySelector("figcaption");
  if (prediction.error) {
    card.classList.add("prediction-error");
    replace(
      caption,
      h("p", { class: "prediction-name", text: prediction.image }),
      h("p", { class: "error-text", text: prediction.error }),
    );
    return;
  }
  replace(
    caption,
    h("p", { class: "prediction-name", text: prediction.image }),
    ...predictionVerdict(prediction),
    h(
      "ul",
      { class: "bars", "aria-label": "Confidence per category" },
      confidenceBars(prediction.top),
    ),
    card.file ? addToTraining(card.file, prediction.category) : null,
  );
}

// "Looks like hat", or "Not sure" with the closest guess second and one sentence saying why
// (the camera's live view shows the same). `not_sure` and `reason` come from /api/predict.
export function predictionVerdict(prediction) {
  if (!prediction.not_sure) {
    return [
      h(
        "p",
        { class: "prediction-label" },
        h("span", { class: "muted", text: "Looks like " }),
        h("b", { class: "predicted", text: prediction.category }),
      ),
    ];
  }
  return [
    h(
      "p",
      { class: "prediction-label" },
      h("b", { class: "predicted not-sure", text: "Not sure" }),
    ),
    h("p", {
      class: "prediction-closest muted",
      text: `Closest: ${prediction.category} (${pct(prediction.confidence)})`,
    }),
    h("p", { class: "prediction-why", text: notSureWhy(prediction) }),
  ];
}

function notSureWhy(prediction) {
  if (prediction.reason === "unlike_every_category")
    return "This photo is unlike the training photos of every category.";
  const [first, second] = prediction.top;
  return second
    ? `Too close to call between ${first.category} and ${second.category}.`
    : "Too close to call.";
}

// A tried photo can join the project under the right category (the predicted one is chosen
// first, so a right answer is one click), as a training or a test photo; Undo takes it back.
function addToTraining(file, predicted) {
  const select = h(
    "select",
    { "aria-label": `Category to add ${file.name} to` },
    store.categories.map((c) =>
      h("option", { value: c.name, text: c.name, selected: c.name === predicted }),
    ),
  );
  const toTraining = h("button", {
    type: "button",
    class: "btn btn-small add-train",
    text: "Add to training data",
  });
  const toTest = h("button", {
    type: "button",
    class: "btn btn-small add-test",
    text: "Add as test photo",
    title: "Kept apart to measure the model: it never trains on it",
  });
  const result = h("p", { class: "add-result", role: "status" });
  const add = async (split) => {
    const category = select.value;
    for (const control of [select, toTraining, toTest]) control.disabled = true;
    const report = await uploadFiles(category, [file], split);
    const where = split === "test" ? `the test set of “${category}”` : `“${category}”`;
    if (report && report.added.length) {
      replace(result, `Added to ${where}.`);
      card.added = report.added[0];
      card.seen = Boolean(locate(card.added)); // a listing may have come back already
      toast(`Added ${file.name} to ${where}.`, {
        action: { label: "Undo", run: () => emit("undo") },
      });
    } else {
      const why =
        report && report.duplicates.length
          ? "Already in the project."
          : (report && report.rejected[0] && report.rejected[0].reason) || "Not added.";
      replace(result, why);
      for (const control of [select, toTraining, toTest]) control.disabled = false;
    }
  };
  toTraining.addEventListener("click", () => add("train"));
  toTest.addEventListener("click", () => add("test"));
  const card = h("div", { class: "add-to-training" }, select, toTraining, toTest, result);
  // Undone (here or anywhere): the photo is no longer in the project, so it can be added again.
  // Only once a listing has shown it: a listing asked for before this add (an undo's, say) can
  // arrive after it, and the same photo added again has the same id as the one undone.
  card.refresh = () => {
    if (!card.added) return;
    if (locate(card.added)) {
      card.seen = true;
      return;
    }
    if (!card.seen) return;
    card.added = null;
    replace(result);
    for (const control of [select, toTraining, toTest]) control.disabled = false;
  };
  return card;
}

on("categories", () => {
  for (const card of document.querySelectorAll(".add-to-training"))
    if (card.refresh) card.refresh();
});

// ----- (C) evaluation -------------------------------------------------------------------------

export async function loadEvaluation() {
  const box = $("#evaluation");
  if (!store.status || !store.status.model) {
    replace(
      box,
      h("p", {
        class: "empty-state-inline",
        text: "The evaluation appears here after training: per-category precision and recall, and which categories the model confuses.",
      }),
    );
    return;
  }
  let report;
  try {
    report = await postJSON("/api/evaluation");
  } catch (exc) {
    replace(box, h("p", { class: "message message-info", text: exc.message }));
    return;
  }
  renderEvaluation(report);
}

// Past this many categories the matrix no longer reads at a glance (nor fits a screen): the
// evaluation leads with the most confused pairs and the per-category table, and the full
// matrix opens on demand in a dialog of its own (zoomable, its headers staying in view).
const MATRIX_INLINE_UP_TO = 15;
const CONFUSED_PAIRS = 10;

function renderEvaluation(report) {
  const box = $("#evaluation");
  const total = report.confusion.flat().reduce((a, b) => a + b, 0);
  const header = h(
    "p",
    { class: "eval-summary" },
    h("b", { text: `Accuracy ${pct(report.accuracy)}` }),
    ` on ${plural(total, "photo")}, measured by ${report.source}.`,
    report.model_older_than_data
      ? h("span", { class: "stale", text: " The photos changed since training." })
      : null,
  );
  const cells = new Map(report.cells.map((c) => [`${c.true}\t${c.predicted}`, c.images]));
  const detail = h("div", { class: "cell-photos", "aria-live": "polite" });
  const open = (trueName, predicted, button, scope) =>
    showCell(
      detail,
      trueName,
      predicted,
      cells.get(`${trueName}\t${predicted}`) || [],
      scope,
      button,
    );
  const many = report.categories.length > MATRIX_INLINE_UP_TO;
  const table = perCategoryTable(report, many);
  if (!many) {
    const matrix = confusionMatrix(report, open);
    replace(
      box,
      header,
      h("div", { class: "eval-tables" }, table, h("div", { class: "matrix-wrap" }, matrix)),
      detail,
    );
    return;
  }
  const pairs = confusedPairs(report, open);
  const full = h("button", {
    type: "button",
    class: "btn",
    id: "matrix-open",
    text: `Show the full confusion matrix (${report.categories.length} × ${report.categories.length})`,
    onclick: () => openMatrixDialog(report, open),
  });
  replace(box, header, pairs, detail, h("div", { class: "eval-more" }, full), table);
}

// The off-diagonal cells with the most photos: which categories the model mixes up.
function confusedPairs(report, open) {
  const pairs = [];
  report.categories.forEach((trueName, i) => {
    const rowTotal = report.confusion[i].reduce((a, b) => a + b, 0) || 1;
    report.categories.forEach((predicted, j) => {
      const count = report.confusion[i][j];
      if (i !== j && count) pairs.push({ trueName, predicted, count, share: count / rowTotal });
    });
  });
  pairs.sort((a, b) => b.count - a.count || b.share - a.share);
  const top = pairs.slice(0, CONFUSED_PAIRS);
  const section = h(
    "section",
    { class: "confused", "aria-labelledby": "confused-title" },
    h("h4", { id: "confused-title", text: "Most confused" }),
  );
  if (!top.length) {
    section.append(h("p", { class: "muted", text: "The model mixed up no two categories." }));
    return section;
  }
  const list = h("ol", { class: "confused-list" });
  for (const pair of top) {
    const button = h(
      "button",
      {
        type: "button",
        class: "confused-pair",
        onclick: () => open(pair.trueName, pair.predicted, button, list),
      },
      h("span", { class: "confused-count", text: String(pair.count) }),
      h(
        "span",
        { class: "confused-names" },
        h("b", { text: pair.trueName }),
        " taken for ",
        h("b", { text: pair.predicted }),
      ),
      h("span", { class: "confused-share", text: `${pct(pair.share)} of ${pair.trueName}` }),
    );
    list.append(h("li", {}, button));
  }
  section.append(list, h("p", { class: "hint", text: "Click one to see its photos." }));
  return section;
}

// A category without photos to measure on says so: "0%" would read as failing.
function perCategoryTable(report, many) {
  const rows = report.per_category.slice();
  if (many) rows.sort((a, b) => (a.support ? a.recall : 2) - (b.support ? b.recall : 2));
  const notMeasured =
    report.source && report.source.includes("test")
      ? "not measured (no test photos)"
      : "not measured (no photos)";
  return h(
    "div",
    // A long table scrolls in its own box, which the keyboard can reach and scroll too.
    many
      ? {
          class: "per-category-wrap per-category-long",
          tabindex: "0",
          role: "region",
          "aria-label": "Per category",
        }
      : { class: "per-category-wrap" },
    h(
      "table",
      { class: "per-category" },
      h("caption", { text: many ? "Per category, the weakest first" : "Per category" }),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Category", "Precision", "Recall", "Photos"].map((t) =>
            h("th", { scope: "col", text: t }),
          ),
        ),
      ),
      h(
        "tbody",
        {},
        rows.map((row) =>
          h(
            "tr",
            {},
            h("th", { scope: "row", text: row.category }),
            row.support
              ? [h("td", { text: pct(row.precision) }), h("td", { text: pct(row.recall) })]
              : h("td", { colspan: "2", class: "not-measured", text: notMeasured }),
            h("td", { text: String(row.support) }),
          ),
        ),
      ),
    ),
  );
}

function confusionMatrix(report, open) {
  const matrix = h(
    "table",
    { class: "confusion" },
    h("caption", {
      text: "Confusion matrix: rows are the true category, columns what the model said. Click a number to see its photos.",
    }),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col", class: "corner", text: "true \\ predicted" }),
        report.categories.map((c) => h("th", { scope: "col", text: c, title: c })),
      ),
    ),
    h(
      "tbody",
      {},
      report.categories.map((trueName, i) => {
        const rowTotal = report.confusion[i].reduce((a, b) => a + b, 0) || 1;
        return h(
          "tr",
          {},
          h("th", { scope: "row", text: trueName, title: trueName }),
          report.categories.map((predicted, j) => {
            const count = report.confusion[i][j];
            const share = count / rowTotal;
            const kind = i === j ? "hit" : count ? "miss" : "zero";
            const button = h("button", {
              type: "button",
              // Dark cells get white numbers: readable (4.5:1) at every share.
              class: `cell cell-${kind}${share >= 0.5 ? " cell-strong" : ""}`,
              text: String(count),
              disabled: count === 0,
              "aria-label": `${count} ${trueName} photo(s) predicted as ${predicted}`,
              style: { "--share": share.toFixed(3) },
              onclick: () => open(trueName, predicted, button, matrix),
            });
            return h("td", {}, button);
          }),
        );
      }),
    ),
  );
  return matrix;
}

// The full matrix of a big project: built when asked for, dropped when closed.
function openMatrixDialog(report, open) {
  let dialog = $("#matrix-dialog");
  if (!dialog) {
    dialog = h("dialog", {
      id: "matrix-dialog",
      class: "matrix-dialog",
      "aria-labelledby": "matrix-dialog-title",
    });
    dialog.addEventListener("close", () => dialog.replaceChildren());
    document.body.append(dialog);
  }
  let zoom = 1;
  const wrap = h("div", {
    class: "matrix-scroll",
    tabindex: "0",
    "aria-label": "Confusion matrix",
  });
  const setZoom = (value) => {
    zoom = Math.min(1.6, Math.max(0.4, value));
    wrap.style.setProperty("--zoom", String(zoom));
    level.textContent = `${Math.round(zoom * 100)}%`;
  };
  const level = h("span", { class: "matrix-zoom-level", "aria-live": "polite" });
  const pick = (trueName, predicted, button) => {
    dialog.close();
    open(trueName, predicted, button, $("#evaluation"));
    $("#evaluation .cell-photos").scrollIntoView({ block: "start" });
  };
  wrap.append(confusionMatrix(report, pick));
  replace(
    dialog,
    h(
      "div",
      { class: "matrix-dialog-head" },
      h("h2", { id: "matrix-dialog-title", text: "Confusion matrix" }),
      h(
        "div",
        { class: "matrix-zoom", role: "group", "aria-label": "Zoom" },
        h("button", {
          type: "button",
          class: "btn btn-small",
          text: "−",
          "aria-label": "Zoom out",
          onclick: () => setZoom(zoom - 0.2),
        }),
        level,
        h("button", {
          type: "button",
          class: "btn btn-small",
          text: "+",
          "aria-label": "Zoom in",
          onclick: () => setZoom(zoom + 0.2),
        }),
      ),
      h("button", {
        type: "button",
        class: "btn",
        text: "Close",
        onclick: () => dialog.close(),
      }),
    ),
    wrap,
  );
  setZoom(report.categories.length > 40 ? 0.6 : 1);
  dialog.showModal();
}

// The open cell of the confusion matrix: its photos, each with its fixes, kept current as the
// photos move (a moved photo says where it went; Undo brings it back into the cell).
let openCell = null;
on("categories", () => {
  if (openCell && openCell.detail.isConnected) renderCell();
});

function showCell(detail, trueName, predicted, ids, scope, button) {
  for (const b of scope.querySelectorAll(".active")) b.classList.remove("active");
  if (button.isConnected) button.classList.add("active");
  openCell = { detail, trueName, predicted, ids };
  renderCell();
}

function renderCell() {
  const { detail, trueName, predicted, ids } = openCell;
  const names = new Set(store.categories.map((c) => c.name));
  const title =
    trueName === predicted
      ? `${plural(ids.length, "photo")} of “${trueName}” recognised correctly`
      : `${plural(ids.length, "photo")} of “${trueName}” taken for “${predicted}”`;
  replace(
    detail,
    h("h4", { text: title }),
    ids.length
      ? h(
          "ul",
          { class: "cell-list" },
          ids.map((id, i) => {
            const now = locate(id);
            const state = !now
              ? "Removed, or renamed outside duetml"
              : now.category !== trueName
                ? `Now in “${now.category}”`
                : null;
            const fixes = [];
            if (now && !state) {
              if (predicted !== trueName && names.has(predicted))
                fixes.push(
                  h("button", {
                    type: "button",
                    class: "btn btn-small cell-move",
                    text: `Move to “${predicted}”`,
                    "aria-label": `Move to “${predicted}”: photo ${i + 1}`,
                    onclick: () => movePhotos([now.id], predicted),
                  }),
                );
              fixes.push(
                h("button", {
                  type: "button",
                  class: "btn btn-small btn-danger cell-remove",
                  text: "Remove",
                  "aria-label": `Remove photo ${i + 1}`,
                  onclick: () => removePhotos([now.id]),
                }),
              );
            }
            return h(
              "li",
              { class: `cell-photo${state ? " cell-photo-done" : ""}`, dataset: { id } },
              now
                ? h(
                    "button",
                    {
                      type: "button",
                      class: "thumb-open",
                      "aria-label": `Open photo ${i + 1}: ${now.id}`,
                      onclick: () => showPhoto(now.id, now.id),
                    },
                    h("img", { src: thumbUrl(now.id), alt: "", loading: "lazy" }),
                  )
                : h("div", { class: "cell-photo-gone", "aria-hidden": "true" }),
              state ? h("p", { class: "cell-photo-state", text: state }) : null,
              fixes.length ? h("div", { class: "cell-photo-actions" }, fixes) : null,
            );
          }),
        )
      : h("p", {
          class: "muted",
          text: "The photos behind this number are no longer listed (retrain to refresh).",
        }),
  );
}
