// The review beside the training data (GET /api/review): what duetml found in the photos
// (possibly mislabelled, unusual, near-duplicates, ...), each with its photos and buttons.
// Every button goes through the core (POST /api/review/apply or /dismiss), is logged, and
// the page's Undo reverts it.

import { getJSON, postJSON } from "./api.js";
import { $, h, plural, replace, showPhoto, thumbUrl, toast } from "./dom.js";
import { showOnMap } from "./map.js";
import { emit } from "./store.js";

const KINDS = {
  mislabel: "Possibly mislabelled",
  outlier: "Unlike the others",
  near_duplicate: "Near-duplicates",
  leak: "Also in the test set",
  overlap: "Categories that overlap",
  mixed: "Two kinds in one category",
  small: "Few photos",
};
const APPLICABLE = new Set(["move", "remove", "merge"]);
const PHOTOS_SHOWN = 8;
const FIRST_FINDINGS = 25;

const review = { data: null, problem: null, loading: null, again: false, all: false };

export async function loadReview() {
  // Data and model changes often come together: one load at a time, then one more.
  if (review.loading) {
    review.again = true;
    return review.loading;
  }
  review.loading = (async () => {
    try {
      review.data = await getJSON("/api/review");
      review.problem = null;
    } catch (exc) {
      review.data = null;
      review.problem = exc;
    }
    render();
  })().finally(() => {
    review.loading = null;
    if (review.again) {
      review.again = false;
      loadReview();
    }
  });
  return review.loading;
}

function render() {
  // A server without the review (an older duetml) answers 404: the panel stays away.
  $("#review").hidden = !review.data && (!review.problem || review.problem.status === 404);
  const list = $("#findings");
  const state = $("#review-state");
  const count = $("#review-count");
  if (!review.data) {
    replace(list);
    replace(count);
    const problem = review.problem;
    // 409: no model yet (or not enough photos): say what unlocks the review, calmly.
    replace(
      state,
      problem && problem.status !== 409
        ? problem.message
        : problem
          ? `${problem.message} Then duetml points here at photos that may be mislabelled, unusual or duplicated.`
          : "",
    );
    return;
  }
  const findings = review.data.findings || [];
  replace(count, findings.length ? `${findings.length}` : "");
  const notes = [];
  if (review.data.stale)
    notes.push(
      h("p", {
        class: "review-stale",
        text: "The photos changed since the model was trained: train again to check them all.",
      }),
    );
  if (!findings.length)
    notes.push(
      h("p", { text: "Nothing to check: no photo looks mislabelled, unusual or duplicated." }),
    );
  if (review.data.dismissed)
    notes.push(
      h("p", { text: `${plural(review.data.dismissed, "finding")} kept as is (hidden).` }),
    );
  replace(state, notes);
  const shown = review.all ? findings : findings.slice(0, FIRST_FINDINGS);
  const items = shown.map(renderFinding);
  if (findings.length > shown.length) {
    items.push(
      h(
        "li",
        {},
        h("button", {
          type: "button",
          class: "btn btn-quiet",
          text: `Show all ${findings.length}`,
          onclick: () => {
            review.all = true;
            render();
          },
        }),
      ),
    );
  }
  replace(list, items);
}

function renderFinding(finding) {
  const item = h("li", {
    class: `finding finding-${finding.kind}`,
    dataset: { finding: finding.id, kind: finding.kind },
  });
  const photos = finding.photos || [];
  const thumbs = photos.slice(0, PHOTOS_SHOWN).map((id, index) => {
    const label = `Photo ${index + 1} of this finding (${id.split("/").slice(1, 2).join("")})`;
    return h(
      "button",
      {
        type: "button",
        class: "finding-photo",
        "aria-label": `Open ${label}`,
        title: id.split("/")[1],
        onclick: () => showPhoto(id, `${KINDS[finding.kind] || finding.kind}: ${finding.message}`),
      },
      h("img", { src: thumbUrl(id), alt: "", loading: "lazy", decoding: "async" }),
    );
  });
  if (photos.length > PHOTOS_SHOWN)
    thumbs.push(h("span", { class: "finding-more", text: `+${photos.length - PHOTOS_SHOWN}` }));
  const actions = [];
  const suggestion = finding.suggestion;
  if (suggestion && APPLICABLE.has(suggestion.action) && suggestion.label) {
    actions.push(
      h("button", {
        type: "button",
        class: "btn btn-small btn-primary",
        text: suggestion.label,
        onclick: () => apply(item, finding, "suggested"),
      }),
    );
  }
  const trainPhotos = photos.filter((id) => id.startsWith("train/"));
  if (photos.length && !(suggestion && suggestion.action === "remove")) {
    actions.push(
      h("button", {
        type: "button",
        class: "btn btn-small btn-danger",
        text: photos.length === 1 ? "Remove the photo" : `Remove ${plural(photos.length, "photo")}`,
        onclick: () => apply(item, finding, "remove"),
      }),
    );
  }
  if (photos.length) {
    actions.push(
      h("button", {
        type: "button",
        class: "btn btn-small",
        text: "Show on the map",
        onclick: () => showOnMap(photos),
      }),
    );
  }
  actions.push(
    h("button", {
      type: "button",
      class: "btn btn-small btn-quiet",
      text: "Keep as is",
      title: "This one is right: do not raise it again",
      onclick: () => dismiss(item, finding),
    }),
  );
  item.append(
    h("div", { class: "finding-kind", text: KINDS[finding.kind] || finding.kind }),
    h("p", { class: "finding-message", text: finding.message }),
    thumbs.length ? h("div", { class: "finding-photos" }, thumbs) : null,
    h("div", { class: "finding-actions" }, actions),
  );
  item.dataset.trainPhotos = String(trainPhotos.length);
  return item;
}

const undoAction = { label: "Undo", run: () => emit("undo") };

async function apply(item, finding, action) {
  item.classList.add("busy");
  try {
    const result = await postJSON("/api/review/apply", { id: finding.id, action });
    toast(result.message, { action: undoAction });
    emit("changed");
  } catch (exc) {
    toast(exc.message, { kind: "error" });
  } finally {
    item.classList.remove("busy");
  }
  loadReview();
}

async function dismiss(item, finding) {
  item.classList.add("busy");
  try {
    const result = await postJSON("/api/review/dismiss", { ids: [finding.id] });
    toast(result.message);
    emit("changed");
  } catch (exc) {
    toast(exc.message, { kind: "error" });
  } finally {
    item.classList.remove("busy");
  }
  loadReview();
}
