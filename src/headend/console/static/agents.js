// The Agents page: each agent the key may use — its routes, tools, sampling defaults,
// limits, description and (for admin keys) its system prompt — and the model routes.
import { $, api, errorOf, row } from "./api.js";

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text != null) node.textContent = text;
  if (className) node.className = className;
  return node;
}

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

function card(agent) {
  const article = element("article", null, "agent");
  article.setAttribute("aria-labelledby", `agent-${agent.id}`);
  const title = element("h3", agent.id);
  title.id = `agent-${agent.id}`;
  article.append(title);
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
  ]));
  const prompt = element("details");
  prompt.append(element("summary", "System prompt"));
  prompt.append(
    agent.system_prompt == null
      ? element("p", "Shown to keys with the admin scope.", "muted")
      : element("pre", agent.system_prompt || "(empty)"),
  );
  article.append(prompt);
  return article;
}

export async function loadAgents() {
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
  if (!found.data.length) list.append(element("p", "No agents for this key.", "muted"));
  for (const agent of found.data) list.append(card(agent));
  for (const route of found.routes) {
    $("routes-body").append(row([route.id, route.targets.join(" → ")]));
  }
}
