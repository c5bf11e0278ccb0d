// The review beside the training data (GET /api/review): what duetml found in the photos
// (possibly mislabelled, unusual, near-duplicates, ...), each with its photos and buttons.
// Fixes go one photo at a time: each photo of a finding has its own Move / Remove / Keep, and
// a bulk action acts only on the photos the user ticked. Every button goes through the core
// (POST /api/review/apply or /dismiss, with the chosen photos), is logged, and the page's
// Undo reverts it (a "Keep" too).

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
const PER_PHOTO = new Set(["move", "remove", "split"]); // suggestions that act photo by photo
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

function photoName(id) {
  return id.split("/").slice(1).join("/");
}

function moveLabel(suggestion) {
  return suggestion && PER_PHOTO.has(suggestion.action) && suggestion.action !== "remove"
    ? `Move to ${suggestion.to || "a new category"}`
    : null;
}

// One photo of a finding: its thumbnail, its own buttons, and a tick box for a bulk action.
function renderPhoto(item, finding, id, index, ticked, onTick) {
  const suggestion = finding.suggestion;
  const suggested = suggestion && (suggestion.photos || []).includes(id);
  const buttons = [];
  const move = moveLabel(suggestion);
  if (move && suggested)
    buttons.push(
      h("button", {
        type: "button",
        class: "btn btn-small btn-primary",
        text: move,
        onclick: () => apply(item, finding, "suggested", [id]),
      }),
    );
  buttons.push(
    h("button", {
      type: "button",
      class: `btn btn-small ${suggested && suggestion.action === "remove" ? "btn-danger" : "btn-quiet"}`,
      text: "Remove",
      title: "Move this photo to the trash (Undo brings it back)",
      onclick: () => apply(item, finding, "remove", [id]),
    }),
    h("button", {
      type: "button",
      class: "btn btn-small btn-quiet",
      text: "Keep",
      title: "This photo is right: do not raise it again (Undo brings it back)",
      onclick: () => keep(item, finding, [id]),
    }),
  );
  const name = photoName(id);
  const many = finding.photos.length > 1;
  return h(
    "li",
    { class: "finding-photo-row", dataset: { photo: id } },
    many
      ? h("input", {
          type: "checkbox",
          class: "finding-tick",
          "aria-label": `Choose ${name}`,
          checked: ticked.has(id),
          onchange: (event) => onTick(id, event.target.checked),
        })
      : null,
    h(
      "button",
      {
        type: "button",
        class: "finding-photo",
        "aria-label": `Open photo ${index + 1} of this finding (${name})`,
        title: name,
        onclick: () => showPhoto(id, `${KINDS[finding.kind] || finding.kind}: ${finding.message}`),
      },
      h("img", { src: thumbUrl(id), alt: "", loading: "lazy", decoding: "async" }),
    ),
    h(
      "div",
      { class: "finding-photo-side" },
      h("span", {
        class: "finding-photo-name",
        text:
          suggested || !suggestion || !suggestion.photos || !suggestion.photos.length
            ? name
            : `${name} (suggested to keep)`,
      }),
      h("div", { class: "finding-photo-actions" }, buttons),
    ),
  );
}

function renderFinding(finding) {
  const item = h("li", {
    class: `finding finding-${finding.kind}`,
    dataset: { finding: finding.id, kind: finding.kind },
  });
  const photos = finding.photos || [];
  const suggestion = finding.suggestion;
  const ticked = new Set();
  const bulk = h("div", { class: "finding-bulk", hidden: true });
  const renderBulk = () => {
    bulk.hidden = photos.length < 2;
    const chosen = [...ticked];
    const none = chosen.length === 0;
    const move = moveLabel(suggestion);
    replace(
      bulk,
      h("span", {
        class: "finding-bulk-count",
        text: none ? "Tick photos to act on several:" : `${plural(chosen.length, "ticked photo")}:`,
      }),
      move
        ? h("button", {
            type: "button",
            class: "btn btn-small",
            text: move,
            disabled: none,
            onclick: () => apply(item, finding, "suggested", chosen),
          })
        : null,
      h("button", {
        type: "button",
        class: "btn btn-small btn-danger",
        text: "Remove",
        disabled: none,
        onclick: () => apply(item, finding, "remove", chosen),
      }),
      h("button", {
        type: "button",
        class: "btn btn-small btn-quiet",
        text: "Keep",
        disabled: none,
        onclick: () => keep(item, finding, chosen),
      }),
    );
  };
  const onTick = (id, on) => {
    if (on) ticked.add(id);
    else ticked.delete(id);
    renderBulk();
  };
  const list = h("ul", { class: "finding-photo-list" });
  const showRows = (count) =>
    replace(
      list,
      photos
        .slice(0, count)
        .map((id, index) => renderPhoto(item, finding, id, index, ticked, onTick)),
      photos.length > count
        ? h(
            "li",
            {},
            h("button", {
              type: "button",
              class: "btn btn-small btn-quiet",
              text: `Show all ${plural(photos.length, "photo")}`,
              onclick: () => showRows(photos.length),
            }),
          )
        : null,
    );
  showRows(PHOTOS_SHOWN);
  renderBulk();
  const actions = [];
  // A finding about categories (merge, rename...) applies as a whole: it moves no chosen photo.
  if (suggestion && APPLICABLE.has(suggestion.action) && suggestion.label && !photos.length) {
    actions.push(
      h("button", {
        type: "button",
        class: "btn btn-small btn-primary",
        text: suggestion.label,
        onclick: () => apply(item, finding, "suggested"),
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
  // One photo: its own Keep is the finding's.
  if (photos.length !== 1)
    actions.push(
      h("button", {
        type: "button",
        class: "btn btn-small btn-quiet",
        text: photos.length > 1 ? "Keep all as they are" : "Keep as is",
        title: "This is right: do not raise it again (Undo brings it back)",
        onclick: () => keep(item, finding),
      }),
    );
  // The DOM's own append writes a null as the text "null": leave the absent parts out.
  const parts = [
    h("div", { class: "finding-kind", text: KINDS[finding.kind] || finding.kind }),
    h("p", { class: "finding-message", text: finding.message }),
    suggestion && suggestion.label && photos.length
      ? h("p", { class: "finding-suggestion", text: `Suggested: ${suggestion.label}` })
      : null,
    photos.length ? list : null,
    bulk,
    h("div", { class: "finding-actions" }, actions),
  ];
  item.append(...parts.filter((part) => part));
  item.dataset.trainPhotos = String(photos.filter((id) => id.startsWith("train/")).length);
  return item;
}

const undoAction = { label: "Undo", run: () => emit("undo") };

async function apply(item, finding, action, photos) {
  item.classList.add("busy");
  try {
    const body = { id: finding.id, action };
    if (photos) body.photos = photos;
    const result = await postJSON("/api/review/apply", body);
    toast(result.message, { action: undoAction });
    emit("changed");
  } catch (exc) {
    toast(exc.message, { kind: "error" });
  } finally {
    item.classList.remove("busy");
  }
  loadReview();
}

async function keep(item, finding, photos) {
  item.classList.add("busy");
  try {
    const body = { ids: [finding.id] };
    if (photos) body.photos = photos;
    const result = await postJSON("/api/review/dismiss", body);
    toast(result.message, { action: undoAction });
    emit("changed");
  } catch (exc) {
    toast(exc.message, { kind: "error" });
  } finally {
    item.classList.remove("busy");
  }
  loadReview();
}
