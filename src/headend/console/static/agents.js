// The Agents page: each agent the key may use — its routes, tools, sampling defaults,
// limits, description and (for keys that may edit agents) its system prompt — and the model
// routes; keys with agents:write also create, edit, publish and roll back API agents here.
import { creator, editor } from "./agent_editor.js";
import { $, api, element, errorOf, row } from "./api.js";

function facts(pairs) {
  const list = element("dl", null, "facts");
  for (const [term, value] of pairs) {
    list.append(element("dt", term), element("dd", value));
  }
  return list;
}

function toolText(tool) {
  const notes = [];
  if (tool.read_only === true) notes.push("reads only");
  if (tool.allowed === false) notes.push("not for this key");
  return notes.length ? `${tool.name} (${notes.join(", ")})` : tool.name;
}

function titled(id) {
  const article = element("article", null, "agent");
  article.setAttribute("aria-labelledby", `agent-${id}`);
  const title = element("h3", id);
  title.id = `agent-${id}`;
  article.append(title);
  return article;
}

// Every way in to one agent: the same agent, the same answers, on each protocol.
function reach(agent) {
  const base = location.origin;
  const socket = base.replace(/^http/, "ws");
  const ways = [
    ["Chat Completions", `POST ${base}/v1/chat/completions  {"model": "${agent.id}", …}`],
    ["Responses", `POST ${base}/v1/responses  {"model": "${agent.id}", …}`],
    ["Responses over WebSocket", `${socket}/v1/responses  (response.create, "model": "${agent.id}")`],
    ["Messages (Anthropic)", `POST ${base}/v1/messages  {"model": "${agent.id}", …}`],
    ["MCP tool", `claude mcp add --transport http headend ${base}/mcp --header `
      + `"Authorization: Bearer $HEADEND_KEY"  (tool "${agent.mcp_tool}")`],
    ["A2A agent card", `${base}/a2a/${agent.id}/.well-known/agent-card.json`],
  ];
  const details = element("details", null, "reach");
  details.append(element("summary", "How to reach it"));
  const list = element("dl", null, "facts");
  for (const [protocol, how] of ways) {
    list.append(element("dt", protocol));
    const value = element("dd");
    value.append(element("code", how));
    list.append(value);
  }
  details.append(list, element("p", "Each with a key as the bearer (Authorization: Bearer …).",
    "muted"));
  return details;
}

// An admin sees the last blocks of the agent's guardrails (from the audit log); others
// are told who may.
async function blocks(agent) {
  const details = element("details", null, "blocks");
  details.append(element("summary", "Recent guardrail blocks"));
  const query = new URLSearchParams({ action: "guardrail.block", target: agent.id, limit: "10" });
  const response = await api(`/admin/audit?${query}`);
  if (!response.ok) {
    details.append(element("p", "Shown to admin keys (from the audit log).", "muted"));
    return details;
  }
  const entries = (await response.json()).data;
  if (!entries.length) details.append(element("p", "None.", "muted"));
  const list = element("ul", null, "block-list");
  for (const entry of entries) {
    const when = new Date(entry.at * 1000).toLocaleString();
    const what = `${entry.detail.check} on ${entry.detail.stage}`;
    list.append(element("li", `${when}: ${what} (by ${entry.actor})`));
  }
  if (entries.length) details.append(list);
  return details;
}

function card(agent, every = []) {
  const article = titled(agent.id);
  if (agent.description) article.append(element("p", agent.description));
  const sampling = Object.entries(agent.sampling).map(([k, v]) => `${k} ${JSON.stringify(v)}`);
  article.append(facts([
    ["Version", agent.version ? String(agent.version) : "not recorded"],
    ["Routes", agent.routes.join(" → ")],
    ["Upstream", agent.targets.join(" → ")],
    ["Tools", agent.tools.map(toolText).join(", ") || "none"],
    ["Sampling defaults", sampling.join(", ") || "the model's"],
    ["Pinned", agent.pinned.join(", ") || "none (clients may override)"],
    ["Tool loop", `at most ${agent.max_iterations} iterations`],
    ["At once", agent.max_concurrency ? String(agent.max_concurrency) : "headend's default"],
    ["Guardrails", [...every, ...agent.guardrails].join("; ") || "none"],
  ]));
  article.append(reach(agent));
  const prompt = element("details");
  prompt.append(element("summary", "System prompt"));
  prompt.append(
    agent.system_prompt == null
      ? element("p", "Shown to keys that may edit agents (agents:write or admin).", "muted")
      : element("pre", agent.system_prompt || "(empty)"),
  );
  article.append(prompt);
  return article;
}

// What keys that may edit agents see of each: its origin, and for an API agent its editor.
async function managed() {
  const response = await api("/admin/agents");
  if (!response.ok) return null;
  return new Map((await response.json()).data.map((entry) => [entry.id, entry]));
}

function editing(article, entry, reload) {
  if (entry.origin === "file") {
    article.append(element("p", "Defined by its file in the agents directory: edit the file "
      + "to change it.", "muted"));
  } else {
    article.append(editor(entry, reload));
  }
}

export async function loadAgents(scopes = []) {
  const reload = () => loadAgents(scopes);
  const response = await api("/console/api/agents");
  const list = $("agents-list");
  list.replaceChildren();
  $("routes-body").replaceChildren();
  if (!response.ok) {
    $("agents-error").textContent = await errorOf(response);
    return;
  }
  $("agents-error").textContent = "";
  const found = await response.json();
  const entries = scopes.includes("agents:write")
    ? await managed() : null;
  if (entries) list.append(creator(reload));
  if (!found.data.length && !entries?.size) {
    list.append(element("p", "No agents for this key.", "muted"));
  }
  for (const agent of found.data) {
    const article = card(agent, found.guardrails);
    if (agent.guardrails.length || found.guardrails.length) article.append(await blocks(agent));
    const entry = entries?.get(agent.id);
    if (entry) editing(article, entry, reload);
    list.append(article);
  }
  const served = new Set(found.data.map((agent) => agent.id));
  for (const entry of entries?.values() ?? []) {
    if (served.has(entry.id)) continue;
    const article = titled(entry.id);  // created, never published (or not buildable now)
    article.append(element("p", "Not published: clients cannot use it yet. Try the draft "
      + `as model "${entry.id}@draft".`, "muted"));
    editing(article, entry, reload);
    list.append(article);
  }
  for (const route of found.routes) {
    $("routes-body").append(row([route.id, route.targets.join(" → ")]));
  }
}
