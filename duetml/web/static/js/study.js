// The raters' page (duetml study rate): each participant's final training data under a code,
// in this rater's own order, with the paper's EQ1-EQ5. Every text is a text node.

import { h } from "./dom.js";

const list = document.getElementById("rate-list");
const progress = document.getElementById("rate-progress");
const errorLine = document.getElementById("rate-error");

async function request(path, body) {
  const response = await fetch(
    path,
    body === undefined
      ? {}
      : {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify(body),
        },
  );
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `The server answered ${response.status}.`);
  return data;
}

function counted(queue) {
  const done = queue.data.filter((d) => d.rated).length;
  progress.textContent = `${done} of ${queue.data.length} rated, as ${queue.rater}.`;
}

function entry(queue, data, index) {
  const form = h("form", { class: "study-form" });
  for (const item of queue.items) {
    const scale = h("div", { class: "study-scale", role: "radiogroup", "aria-label": item.text });
    for (let value = 1; value <= item.points; value++) {
      scale.append(
        h(
          "label",
          {},
          h("input", {
            type: "radio",
            name: item.id,
            value: String(value),
            required: true,
            checked: data.rated && data.rated[item.id] === value,
          }),
          String(value),
        ),
      );
    }
    form.append(
      h(
        "div",
        { class: "study-item" },
        h("p", {}, `${item.id}. ${item.text}`),
        h(
          "div",
          { class: "study-anchors" },
          h("span", {}, item.low),
          scale,
          h("span", {}, item.high),
        ),
      ),
    );
  }
  const status = h("span", { class: "rate-status", "aria-live": "polite" });
  form.append(h("button", { type: "submit" }, data.rated ? "Save again" : "Save"), " ", status);
  const block = h(
    "section",
    { class: `rate-entry${data.rated ? " rate-done" : ""}`, "data-code": data.code },
    h("h3", {}, `Training data ${index + 1} of ${queue.data.length} (${data.code})`),
    ...data.categories.map((c) =>
      h(
        "div",
        { class: "rate-category" },
        h("h4", {}, `${c.name} (${c.photos.length} photos)`),
        h(
          "div",
          { class: "rate-photos" },
          ...c.photos.map((src) => h("img", { src, alt: `a photo of ${c.name}`, loading: "lazy" })),
        ),
      ),
    ),
    data.categories.length === 0 ? h("p", {}, "(no categories)") : null,
    form,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const answers = {};
    for (const [key, value] of new FormData(form)) answers[key] = Number(value);
    try {
      await request(`/api/rate/${encodeURIComponent(queue.rater)}/${data.code}`, answers);
      data.rated = answers;
      block.classList.add("rate-done");
      status.textContent = "Saved.";
      errorLine.textContent = "";
      counted(queue);
    } catch (error) {
      status.textContent = error.message;
    }
  });
  return block;
}

document.getElementById("rate-login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const rater = document.getElementById("rater").value.trim();
  try {
    const queue = await request(`/api/rate/${encodeURIComponent(rater)}`);
    list.replaceChildren(
      ...queue.data.map((d, i) => entry(queue, d, i)),
      h("p", { class: "study-source" }, `Items: ${queue.source}`),
    );
    counted(queue);
    errorLine.textContent = "";
  } catch (error) {
    errorLine.textContent = error.message;
  }
});
