// Assistant settings: each agent's provider and model, as `duetml llm use` sets them. The
// server saves through the same core call with the same checks, takes no addresses and
// approves nothing: an endpoint off this machine, or one the project's file chose, still waits
// for the user's Allow (the consent notice under the agents).

import { getJSON, postJSON } from "./api.js";
import { $, h, replace, toast } from "./dom.js";
import { loadAgents } from "./chat.js";

const AGENT_NAMES = {
  passive: "Chat assistant (answers you)",
  proactive: "Proactive advice (speaks up)",
};
const PROVIDER_NAMES = {
  ollama: "Ollama (on this machine)",
  openai: "OpenAI (in the cloud)",
  none: "None (off)",
};

export function wireSettings() {
  const panel = $("#llm-settings");
  if (!panel) return;
  panel.addEventListener("toggle", () => {
    if (panel.open) loadSettings();
  });
}

async function loadSettings() {
  const body = $("#llm-settings-body");
  replace(body, h("p", { class: "llm-servers", text: "Asking the LLM servers…" }));
  try {
    render(await getJSON("/api/agents/llm"));
  } catch (exc) {
    replace(body, h("p", { class: "error-text", text: exc.message }));
  }
}

function render(settings) {
  const body = $("#llm-settings-body");
  const models = [...new Set((settings.ollama || []).flatMap((server) => server.models))];
  const list = h(
    "datalist",
    { id: "ollama-models" },
    ...models.map((m) => h("option", { value: m })),
  );
  const servers = (settings.ollama || []).map((server) =>
    h("p", {
      class: "llm-servers",
      text: server.reachable
        ? `Ollama at ${server.endpoint}: ${server.models.length ? server.models.join(", ") : "no models yet"}.`
        : `Ollama at ${server.endpoint} is not reachable${server.problem ? `: ${server.problem}` : "."}`,
    }),
  );
  // A server that does not answer is said once, above both agents, not again under each.
  const said = new Set(
    (settings.ollama || []).filter((server) => !server.reachable).map((server) => server.endpoint),
  );
  const forms = ["passive", "proactive"].map((agent) =>
    agentForm(agent, (settings.agents || {})[agent] || {}, settings.providers || [], said),
  );
  replace(body, list, ...servers, ...forms);
}

function agentForm(agent, current, providers, said) {
  const select = h(
    "select",
    { name: "provider", id: `llm-provider-${agent}` },
    ...providers.map((p) =>
      h("option", { value: p, text: PROVIDER_NAMES[p] || p, selected: p === current.provider }),
    ),
  );
  const model = h("input", {
    name: "model",
    id: `llm-model-${agent}`,
    list: current.provider === "ollama" ? "ollama-models" : null,
    value: current.provider === "none" ? "" : current.model || "",
    placeholder: "model name",
    autocomplete: "off",
    spellcheck: "false",
  });
  const sync = () => {
    const off = select.value === "none";
    model.disabled = off;
    if (select.value === "ollama") model.setAttribute("list", "ollama-models");
    else model.removeAttribute("list");
  };
  select.addEventListener("change", sync);
  sync();
  const notes = [];
  if (current.overridden_by)
    notes.push(
      `${current.overridden_by} is set in the shell that started duetml: it wins over this choice.`,
    );
  if (current.approval_needed)
    notes.push(`It waits for your Allow before anything goes to ${current.endpoint}.`);
  else if (current.provider !== "none" && current.is_local === false)
    notes.push(`It sends this project's photos to ${current.endpoint}.`);
  if (current.error && !said.has(current.endpoint)) notes.push(current.error);
  const save = h("button", { type: "submit", class: "btn btn-small", text: "Save" });
  const form = h(
    "form",
    { class: "llm-agent-form", "data-agent": agent },
    h(
      "fieldset",
      { class: "llm-agent" },
      h("legend", { text: AGENT_NAMES[agent] }),
      h("label", { for: select.id }, "Provider", select),
      h("label", { for: model.id }, "Model", model),
      save,
      ...notes.map((text) => h("p", { class: "llm-note", text })),
    ),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    save.disabled = true;
    try {
      const result = await postJSON("/api/agents/llm/choice", {
        agent,
        provider: select.value,
        model: select.value === "none" ? "" : model.value.trim(),
      });
      const chosen = result.agents[agent] || {};
      toast(`The ${agent} agent now uses ${chosen.spec || select.value}.`);
      render(result);
      loadAgents(); // the consent notice appears at once if the new choice needs an Allow
    } catch (exc) {
      toast(exc.message, { kind: "error" });
    } finally {
      save.disabled = false;
    }
  });
  return form;
}
