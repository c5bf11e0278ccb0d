// (D) the chat with the passive agent, (E)/(F) the "Ask the assistant" buttons, (G) the
// proactive switch. Replies and advice are LLM output: shown with textContent, never as HTML.

import { getJSON, postJSON, postStream } from "./api.js";
import { $, $$, h, replace, showPhoto, thumbUrl, toast } from "./dom.js";
import { emit } from "./store.js";

const ASKED_FROM = {
  ask_data: "Asked from Training data",
  ask_results: "Asked from Try the model",
};
const ASK_QUESTION = {
  data: "What do you think of my training data so far?",
  results: "What do you make of my model's results?",
};
const ROLE_NAMES = { passive: "Assistant", proactive: "Proactive" };

let streaming = false;
let localError = null; // {text, after: message id}: an error the server's conversation lacks

export function chatPresent() {
  return Boolean($("#messages"));
}

export function wireChat() {
  const form = $("#chat-form");
  const input = $("#chat-input");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || streaming) return;
    input.value = "";
    ask(text, "chat");
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  for (const button of $$("[data-ask]")) {
    button.addEventListener("click", () => {
      if (streaming) return;
      ask(ASK_QUESTION[button.dataset.ask], button.dataset.ask);
      $("#chat-input").focus();
    });
  }
  $("#proactive-toggle").addEventListener("change", async (event) => {
    const toggle = event.target;
    toggle.disabled = true;
    try {
      renderAgents(await postJSON("/api/agents/proactive", { enabled: toggle.checked }));
      toast(
        toggle.checked
          ? "Proactive advice is on: the assistant will speak up when it notices something."
          : "Proactive advice is off.",
      );
    } catch (exc) {
      toggle.checked = !toggle.checked;
      toast(exc.message, { kind: "error" });
    } finally {
      toggle.disabled = false;
    }
  });
}

export async function loadAgents({ fresh = false } = {}) {
  try {
    renderAgents(await getJSON(fresh ? "/api/agents?fresh=true" : "/api/agents"));
  } catch (exc) {
    replace($("#agent-info"), h("dd", { class: "error-text", text: exc.message }));
  }
}

// The agents the page may count on: the chat's agent answers only if its server does.
let lastInfo = null;

function passiveCanAnswer(info) {
  const passive = (info.agents || {}).passive;
  return Boolean(
    info.available && passive && passive.provider !== "none" && passive.reachable !== false,
  );
}

function renderAgents(info) {
  lastInfo = info;
  const list = $("#agent-info");
  const rows = [];
  const agents = info.agents || {};
  for (const key of ["passive", "proactive"]) {
    const agent = agents[key];
    if (!agent || typeof agent !== "object") continue;
    const off = agent.provider === "none";
    const waiting = (info.consent_needed || []).some((need) => need.agent === key);
    // Grey when it cannot answer: off, or its server does not answer (the notice below says
    // how to set it up, once, for both).
    const down = !off && agent.reachable === false;
    const where = off
      ? "off: choose one in Assistant settings"
      : down
        ? "not reachable"
        : waiting
          ? `sends data to ${agent.endpoint || "its server"} only once you allow it`
          : agent.is_local === false
            ? `sends data to ${agent.endpoint || "a remote server"}`
            : "runs on this machine";
    const model = off
      ? "off"
      : [agent.provider, agent.model].filter(Boolean).join(" · ") || "not configured";
    const kind =
      off || down
        ? "agent-down"
        : agent.is_local === false || waiting
          ? "agent-remote"
          : "agent-local";
    rows.push(
      h(
        "div",
        { class: `agent-row ${kind}` },
        h("dt", { text: ROLE_NAMES[key] }),
        h(
          "dd",
          {},
          h("span", { class: "agent-model", text: model }),
          h("span", { class: "agent-where", text: where }),
          agent.error ? h("span", { class: "error-text agent-error", text: agent.error }) : null,
        ),
      ),
    );
  }
  if (!info.available)
    rows.push(
      h(
        "div",
        { class: "agent-row agent-down" },
        h("dt", { text: "Assistant" }),
        h("dd", { class: "error-text", text: info.problem || "not available" }),
      ),
    );
  replace(list, ...rows);
  renderNotices(info);
  const toggle = $("#proactive-toggle");
  toggle.checked = Boolean(info.proactive_enabled);
  toggle.disabled = !info.available;
  const every = info.proactive_interval ? ` (every ${Math.round(info.proactive_interval)} s)` : "";
  toggle.closest("label").title =
    `The proactive agent looks at your project and volunteers advice${every}.`;
  const answers = passiveCanAnswer(info);
  $("#chat-send").disabled = !answers;
  $("#chat-input").placeholder = answers
    ? "Tell the assistant what you want to build, or ask anything…"
    : "The assistant cannot answer yet: see above how to set it up.";
  for (const button of $$("[data-ask]")) button.disabled = !answers;
  document.body.classList.toggle("assistant-down", !answers);
  if (lastMessages) renderMessages(lastMessages);
}

function renderNotices(info) {
  const box = $("#agent-notices");
  const items = [];
  const agents = info.agents || {};
  const down = ["passive", "proactive"].filter(
    (key) => agents[key] && agents[key].provider !== "none" && agents[key].reachable === false,
  );
  const off = ["passive", "proactive"].filter(
    (key) => agents[key] && agents[key].provider === "none",
  );
  if (down.length || off.length === 2) {
    // The one place that says how to set the assistant up, in what to click, not commands.
    const endpoints = [...new Set(down.map((key) => agents[key].endpoint).filter(Boolean))];
    const check = h("button", {
      type: "button",
      class: "btn btn-small",
      text: "Check again",
      onclick: async () => {
        check.disabled = true;
        await loadAgents({ fresh: true });
      },
    });
    items.push(
      h(
        "div",
        { class: "notice notice-setup", id: "assistant-setup" },
        h("p", {
          class: "notice-title",
          text: down.length
            ? `The assistant is not reachable${endpoints.length ? ` at ${endpoints.join(", ")}` : ""}.`
            : "The assistant is off.",
        }),
        h("p", {
          text: "To talk with it, install Ollama from ollama.com (it runs on this machine and keeps your photos here), open it and download a model such as qwen2.5vl; or choose OpenAI with an API key. Both are chosen under Assistant settings below. Everything else on this page works without it.",
        }),
        check,
      ),
    );
  }
  if (info.proactive_enabled && info.proactive_paused) {
    items.push(
      h("p", {
        class: "notice notice-quiet",
        text: "Proactive advice is paused while its server is not reachable; it starts again by itself once the server answers.",
      }),
    );
  } else if (info.proactive_error && info.proactive_enabled && !down.includes("proactive")) {
    items.push(
      h("p", {
        class: "notice notice-error",
        text: `Proactive agent: ${info.proactive_error}`,
      }),
    );
  }
  for (const need of info.consent_needed || []) {
    const button = h("button", {
      type: "button",
      class: "btn btn-small",
      text: "Allow for this project",
    });
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        renderAgents(await postJSON("/api/agents/consent", { endpoint: need.endpoint }));
        toast(`The assistant may now use ${need.endpoint} for this project.`);
      } catch (exc) {
        button.disabled = false;
        toast(exc.message, { kind: "error" });
      }
    });
    const why =
      need.reason === "project"
        ? `This project's settings file sends the ${need.agent} agent to ${need.endpoint}, which you have not approved: it would receive this project's photos and your API key. Nothing is sent there until you allow it.`
        : `The ${need.agent} agent would send this project's photos and descriptions to ${need.endpoint}, which is not on this machine.`;
    items.push(h("div", { class: "notice notice-consent" }, h("p", { text: why }), button));
  }
  replace(box, ...items);
}

export async function loadConversation() {
  if (streaming) return; // the stream's end reloads it
  let data;
  try {
    data = await getJSON("/api/conversation");
  } catch {
    return null;
  }
  renderMessages(data.messages);
  return data.messages;
}

let lastMessages = null;

function renderMessages(messages) {
  lastMessages = messages;
  const list = $("#messages");
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  const items = [];
  // A scripted greeting from an agent that cannot answer would look like a live assistant.
  const answers = !lastInfo || passiveCanAnswer(lastInfo);
  for (const message of messages) {
    if (message.kind === "greeting" && !answers) continue;
    items.push(messageNode(message));
    if (localError && message.id === localError.after) items.push(errorNode(localError.text));
  }
  replace(list, ...items);
  if (nearBottom || streaming) list.scrollTop = list.scrollHeight;
}

function messageNode(message) {
  if (message.kind === "error") return errorNode(message.content);
  const proactive = message.kind === "proactive";
  const classes = ["msg", `msg-${message.role}`];
  if (proactive) classes.push("msg-proactive");
  if (message.kind === "greeting") classes.push("msg-greeting");
  const meta = [];
  if (proactive) meta.push(h("span", { class: "badge", text: "Unprompted advice" }));
  if (ASKED_FROM[message.kind] && message.role === "user")
    meta.push(h("span", { class: "badge badge-quiet", text: ASKED_FROM[message.kind] }));
  if (message.ts)
    meta.push(
      h("time", {
        text: new Date(message.ts * 1000).toLocaleTimeString([], {
          hour: "2-digit",
          minute: "2-digit",
        }),
      }),
    );
  return h(
    "li",
    { class: classes.join(" "), dataset: { kind: message.kind || "chat" } },
    h(
      "div",
      { class: "msg-meta" },
      h("span", {
        class: "msg-who",
        text: message.role === "user" ? "You" : proactive ? "Proactive agent" : "Assistant",
      }),
      meta,
    ),
    h("p", { class: "msg-text", text: message.content }),
    proposalsNode(message.proposals),
  );
}

// Changes an agent proposed: one button each; nothing happens until the user clicks.
function proposalsNode(proposals) {
  if (!Array.isArray(proposals) || proposals.length === 0) return null;
  const buttons = proposals.map((proposal) => {
    const button = h("button", {
      type: "button",
      class: "btn btn-small proposal",
      text: proposal.applied ? `✓ ${proposal.label}` : proposal.label,
      title: proposal.reason || "Apply this change (Undo reverts it)",
      dataset: { proposal: proposal.id },
    });
    button.disabled = Boolean(proposal.applied);
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const result = await postJSON("/api/proposals/apply", { proposal: proposal.id });
        toast(result.message, { action: { label: "Undo", run: () => emit("undo") } });
        button.textContent = `✓ ${proposal.label}`;
      } catch (exc) {
        button.disabled = false;
        toast(exc.message, { kind: "error" });
      }
    });
    return h("div", { class: "proposal-item" }, button, proposalPhotos(proposal));
  });
  return h("div", { class: "proposals", role: "group", "aria-label": "Proposed changes" }, buttons);
}

// A change that touches several photos shows each of them, to look at before applying it.
function proposalPhotos(proposal) {
  const photos = Array.isArray(proposal.photos) ? proposal.photos : [];
  if (photos.length < 2) return null;
  return h(
    "ul",
    { class: "proposal-photos", "aria-label": `The ${photos.length} photos it touches` },
    photos.map((id) =>
      h(
        "li",
        {},
        h(
          "button",
          {
            type: "button",
            class: "proposal-photo",
            title: id.split("/").slice(1).join("/"),
            "aria-label": `Open ${id.split("/").slice(1).join("/")}`,
            onclick: () => showPhoto(id, proposal.label),
          },
          h("img", { src: thumbUrl(id), alt: "", loading: "lazy", decoding: "async" }),
        ),
      ),
    ),
  );
}

function errorNode(text) {
  return h(
    "li",
    // No role of its own (an <li> may not be an alert): the conversation is a live region.
    { class: "msg msg-error", dataset: { kind: "error" } },
    h("p", { class: "msg-text", text: `⚠ ${text}` }),
  );
}

async function ask(text, about) {
  const list = $("#messages");
  streaming = true;
  localError = null;
  let failure = null;
  setBusy(true);
  const kind = about === "data" ? "ask_data" : about === "results" ? "ask_results" : "chat";
  list.append(messageNode({ role: "user", kind, content: text }));
  const replyText = h("p", { class: "msg-text" });
  const reply = h(
    "li",
    { class: "msg msg-assistant streaming", "aria-busy": "true" },
    h(
      "div",
      { class: "msg-meta" },
      h("span", { class: "msg-who", text: "Assistant" }),
      h("span", { class: "typing", text: "thinking…" }),
    ),
    replyText,
  );
  list.append(reply);
  list.scrollTop = list.scrollHeight;
  try {
    await postStream("/api/chat", { message: text, about }, (line) => {
      if (line.delta) {
        replyText.textContent += line.delta;
        list.scrollTop = list.scrollHeight;
      } else if (line.notice) {
        toast(line.notice, { timeout: 15000 }); // e.g. the model's context is small
      } else if (line.error) {
        failure = line.error;
      }
    });
  } catch (exc) {
    failure = exc.message;
    if (exc.status === 428) loadAgents(); // consent needed: the notice with its button appears
  } finally {
    streaming = false;
    setBusy(false);
    const messages = await loadConversation();
    const last = messages && messages[messages.length - 1];
    if (failure && !(last && last.kind === "error")) {
      localError = { text: failure, after: last ? last.id : null };
      if (messages) renderMessages(messages);
      else $("#messages").append(errorNode(failure));
    }
  }
}

function setBusy(busy) {
  $("#chat-send").disabled = busy;
  $("#chat-send").textContent = busy ? "…" : "Send";
  for (const button of $$("[data-ask]")) button.disabled = busy;
}

export function conversationChanged() {
  if (!streaming) loadConversation(); // else the stream's end reloads it
}
