// Building the page. Every piece of data (names, file names, LLM output) becomes a text node:
// this file never assigns innerHTML, so a category called <img src=x onerror=...> stays text.

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

// h("button", {class: "btn", onclick: fn, "aria-label": "Close"}, "text", childNode, ...)
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function")
      node.addEventListener(key.slice(2), value);
    else if (key === "style" && typeof value === "object") {
      for (const [prop, v] of Object.entries(value))
        node.style.setProperty(
          prop.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`),
          v,
        );
    } else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export function pct(value, digits = 0) {
  return `${(value * 100).toFixed(digits)}%`;
}

// One bar per category of a prediction, as list items (a tried photo's card and the live
// camera show the same).
export function confidenceBars(top) {
  return top.map((t) =>
    h(
      "li",
      {},
      h("span", { class: "bar-label", text: t.category, title: t.category }),
      h(
        "span",
        { class: "bar", "aria-hidden": "true" },
        h("span", { class: "bar-fill", style: { width: pct(t.probability, 1) } }),
      ),
      h("span", { class: "bar-value", text: pct(t.probability) }),
    ),
  );
}

export function plural(count, one, many = `${one}s`) {
  return `${count} ${count === 1 ? one : many}`;
}

export function ago(seconds) {
  const delta = Math.max(0, Date.now() / 1000 - seconds);
  if (delta < 60) return "just now";
  if (delta < 3600) return `${Math.round(delta / 60)} min ago`;
  if (delta < 86400) return `${Math.round(delta / 3600)} h ago`;
  return new Date(seconds * 1000).toLocaleDateString();
}

export function bytes(n) {
  if (n < 1024 * 1024) return `${Math.max(1, Math.round(n / 1024))} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

// Text whose `name` spans (Markdown code, as the core writes names and commands) show as
// <code>, never as raw backticks; still text nodes only.
export function withCode(text) {
  return String(text)
    .split(/`([^`\n]+)`/)
    .map((piece, i) => (i % 2 ? h("code", { text: piece }) : piece))
    .filter((piece) => piece !== "");
}

// A short message at the bottom of the screen; `action` adds a button (e.g. Undo).
export function toast(text, { kind = "info", action = null, timeout = 6000 } = {}) {
  const box = $("#toasts");
  const item = h(
    "div",
    { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" },
    h("span", {}, withCode(text)),
  );
  if (action) {
    item.append(
      h("button", {
        class: "btn btn-small",
        type: "button",
        text: action.label,
        onclick: () => {
          item.remove();
          action.run();
        },
      }),
    );
  }
  item.append(
    h("button", {
      class: "toast-close",
      type: "button",
      "aria-label": "Dismiss",
      text: "×",
      onclick: () => item.remove(),
    }),
  );
  box.append(item);
  while (box.children.length > 4) box.firstElementChild.remove();
  if (timeout) setTimeout(() => item.remove(), timeout);
  return item;
}

// A small modal form (rename, merge). `build(body)` fills the form and returns a function
// that reads it: it returns the value, or throws an Error whose message is shown in place.
// `submit(value)` may also throw (e.g. the server refused the name), and the dialog stays open.
export function formDialog({ title, okLabel = "OK", build, submit }) {
  const dialog = $("#prompt");
  const body = $("#prompt-body");
  const error = $("#prompt-error");
  replace($("#prompt-title"), title);
  $("#prompt-ok").textContent = okLabel;
  body.replaceChildren();
  error.textContent = "";
  const read = build(body);
  return new Promise((resolve) => {
    const form = $("#prompt-form");
    const cancel = $("#prompt-cancel");
    const done = (value) => {
      form.removeEventListener("submit", onSubmit);
      cancel.removeEventListener("click", onCancel);
      dialog.removeEventListener("cancel", onCancel);
      if (dialog.open) dialog.close();
      resolve(value);
    };
    const onCancel = (event) => {
      event.preventDefault();
      done(null);
    };
    const onSubmit = async (event) => {
      event.preventDefault();
      error.textContent = "";
      let value;
      try {
        value = read();
        await submit(value);
      } catch (exc) {
        error.textContent = exc.message;
        return;
      }
      done(value);
    };
    form.addEventListener("submit", onSubmit);
    cancel.addEventListener("click", onCancel);
    dialog.addEventListener("cancel", onCancel);
    dialog.showModal();
    const first = body.querySelector("input, select, textarea");
    if (first) {
      first.focus();
      if (first.select) first.select();
    }
  });
}

// photo.js installs the full viewer (facts and fixes); every module opens photos through here.
let photoOpener = null;
export function setPhotoOpener(open) {
  photoOpener = open;
}

export function showPhoto(id, caption) {
  if (photoOpener) return photoOpener(id, caption);
  const viewer = $("#viewer");
  $("#viewer-img").src = `/api/image?image=${encodeURIComponent(id)}`;
  $("#viewer-img").alt = caption;
  replace($("#viewer-caption"), caption);
  viewer.showModal();
}

export function thumbUrl(id, version) {
  const v = version ? `&v=${encodeURIComponent(version)}` : "";
  return `/api/thumb?image=${encodeURIComponent(id)}${v}`;
}
