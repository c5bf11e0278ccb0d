// A user study's bar on the page (duetml serve --study): the task, its timer, the consent
// before the session, the questionnaires after each timed task, pause and withdraw. It only
// talks to /api/study/*, which answers about this one participant; every text is a text node.

import { h } from "./dom.js";

const POLL_MS = 1000;
let state = null;
let busy = false;

async function call(path, body) {
  const options =
    body === undefined
      ? {}
      : {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify(body),
        };
  const response = await fetch(`/api/study/${path}`, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `The server answered ${response.status}.`);
  return data;
}

// Element.replaceChildren writes null as the text "null": skipped parts are dropped first.
function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((child) => child !== null && child !== false));
}

// A paragraph's hard line breaks are joined, except before a list item ("- ...").
function paragraphs(text) {
  return text
    .split(/\n\s*\n/)
    .map((p) => p.trim().replace(/\n(?!- )/g, " "))
    .filter(Boolean);
}

function clock(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

const bar = h("div", { class: "study-bar", role: "region", "aria-label": "Study task" });
const overlay = h("div", { class: "study-overlay", hidden: true });
const card = h("div", { class: "study-card", role: "dialog", "aria-modal": "true" });
overlay.append(card);
let shownAt = 0;

async function act(path, body = {}) {
  if (busy) return;
  busy = true;
  let next = null;
  try {
    next = await call(path, body);
  } catch (error) {
    const message = card.querySelector(".study-error") || bar.querySelector(".study-error");
    if (message) message.textContent = error.message;
  } finally {
    busy = false; // before showing: the next button must answer at once
  }
  if (next) show(next);
}

function renderBar() {
  const task = state.task;
  const timer = h("span", { class: "study-timer", id: "study-timer", "aria-live": "off" });
  const running = state.phase === "running" || state.phase === "paused";
  fill(
    bar,
    h("strong", { class: "study-title" }, task ? task.title : "User study"),
    running ? timer : null,
    running
      ? h(
          "button",
          {
            class: "btn study-done",
            id: "study-done",
            onclick: () => {
              if (confirm("End this task now? You cannot come back to it.")) act("finish");
            },
          },
          "I am done",
        )
      : null,
    running
      ? h(
          "button",
          {
            class: "btn study-pause",
            id: "study-pause",
            title: "For the experimenter",
            onclick: () => act(state.phase === "paused" ? "resume" : "pause"),
          },
          state.phase === "paused" ? "Resume" : "Pause",
        )
      : null,
    task && running
      ? h("details", { class: "study-text" }, h("summary", {}, "Task"), h("p", {}, task.text))
      : null,
    h("span", { class: "study-error", role: "alert" }),
    state.phase !== "withdrawn"
      ? h(
          "button",
          {
            class: "btn study-withdraw",
            id: "study-withdraw",
            onclick: () => {
              if (confirm("Withdraw from the study? Your data will not be used.")) act("withdraw");
            },
          },
          "Withdraw",
        )
      : null,
  );
  tick();
}

function tick() {
  const timer = document.getElementById("study-timer");
  if (!timer || !state.task) return;
  const left =
    state.phase === "running"
      ? state.task.remaining_s - (Date.now() - shownAt) / 1000
      : state.task.remaining_s;
  timer.textContent = state.phase === "paused" ? `${clock(left)} (paused)` : clock(left);
  timer.classList.toggle("study-timer-low", left < 60);
}

function questionnaireForm() {
  const form = h("form", { class: "study-form", id: "study-questionnaire" });
  for (const questionnaire of state.questionnaires) {
    const set = h("fieldset", {}, h("legend", {}, questionnaire.title));
    for (const item of questionnaire.items) {
      const scale = h("div", { class: "study-scale", role: "radiogroup", "aria-label": item.text });
      for (let value = 1; value <= item.points; value++) {
        scale.append(
          h(
            "label",
            {},
            h("input", { type: "radio", name: item.id, value: String(value), required: true }),
            String(value),
          ),
        );
      }
      set.append(
        h(
          "div",
          { class: "study-item", "data-item": item.id },
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
    set.append(h("p", { class: "study-source" }, `Source: ${questionnaire.source}`));
    form.append(set);
  }
  form.append(
    h("p", { class: "study-error", role: "alert" }),
    h("button", { class: "btn btn-primary", type: "submit" }, "Send my answers"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const answers = {};
    for (const [key, value] of new FormData(form)) answers[key] = Number(value);
    act("answers/submit", answers);
  });
  return form;
}

function renderOverlay() {
  const task = state.task;
  const phase = state.phase;
  overlay.hidden = phase === "running";
  overlay.dataset.phase = phase;
  const button = (label, path) =>
    h("button", { class: "btn btn-primary", id: `study-${path}`, onclick: () => act(path) }, label);
  const error = h("p", { class: "study-error", role: "alert" });
  if (phase === "consent") {
    fill(
      card,
      h("h2", {}, "Before you start"),
      ...paragraphs(state.consent).map((p) => h("p", { class: "study-consent" }, p)),
      error,
      button("I agree and start", "consent"),
    );
  } else if (phase === "ready") {
    fill(
      card,
      h("h2", {}, task.title),
      h("p", { class: "study-minutes" }, `${task.minutes} minutes`),
      h("p", { class: "study-task-text" }, task.text),
      error,
      button("Start", "start"),
    );
  } else if (phase === "paused") {
    fill(
      card,
      h("h2", {}, "Paused"),
      h("p", {}, "The experimenter paused the task; the timer is stopped."),
      error,
      button("Resume", "resume"),
    );
  } else if (phase === "questionnaire") {
    fill(
      card,
      h("h2", {}, `${task.title}: done`),
      h("p", {}, "Please answer these questions about the task you just did."),
      questionnaireForm(),
    );
  } else if (phase === "done") {
    fill(
      card,
      h("h2", {}, "Thank you!"),
      h("p", {}, "Every task is done. Please tell the experimenter."),
    );
  } else if (phase === "withdrawn") {
    fill(
      card,
      h("h2", {}, "You have withdrawn"),
      h("p", {}, "Thank you. Your data will not be used in the study."),
    );
  }
}

function show(next) {
  const servingBefore = state && state.serving;
  const phaseBefore = state && state.phase;
  state = next;
  shownAt = Date.now();
  if (servingBefore && next.serving !== servingBefore) {
    location.reload(); // the next task is another project: load its page
    return;
  }
  renderBar();
  if (next.phase !== phaseBefore || next.phase !== "questionnaire") renderOverlay();
  if (next.phase !== phaseBefore && !overlay.hidden) {
    // A dialog that covers the page takes the keyboard's focus with it.
    const first = card.querySelector("button, input");
    if (first) first.focus();
  }
}

async function poll() {
  try {
    const next = await call("session");
    if (
      !state ||
      next.phase !== state.phase ||
      next.serving !== state.serving ||
      Math.abs(next.task?.remaining_s - state.task?.remaining_s) > 2
    ) {
      show(next);
    } else {
      state = next;
      shownAt = Date.now();
    }
  } catch {
    /* the server restarts between tasks, or is gone: try again */
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.body.classList.add("study-mode");
  document.body.prepend(bar);
  document.body.append(overlay);
  poll();
  setInterval(poll, POLL_MS);
  setInterval(tick, 250);
});
