// The headend console: the shell (sign-in, sign-out, pages). No framework, no build step;
// text from users and models goes in with textContent only.
import { loadAgents } from "./agents.js";
import { $, api, errorOf } from "./api.js";
import { bindKeys, loadKeys } from "./keys.js";
import { bindKnowledge, loadKnowledge } from "./knowledge.js";
import { playground } from "./playground.js";
import { bindRuns, loadRuns } from "./runs.js";
import { loadSchedules } from "./schedules.js";
import { loadSessions } from "./sessions.js";
import { bindUsage, loadUsage } from "./usage.js";
import { bindWebhooks, loadWebhooks } from "./webhooks.js";

const PAGES = [
  "playground", "agents", "sessions", "knowledge", "keys", "usage", "runs", "schedules", "webhooks",
];
// The scope each page needs (the session lists the scopes a key's scopes include).
const NEEDS = {
  playground: "chat",
  agents: "models:read",
  sessions: "sessions:read",
  knowledge: "knowledge",
  keys: "admin",
  usage: "admin",
  runs: "admin",
  schedules: "admin",
  webhooks: "admin",
};
const LOADERS = {
  playground: () => playground.loadModels(),
  agents: () => loadAgents(app.scopes),
  sessions: loadSessions,
  knowledge: loadKnowledge,
  keys: loadKeys,
  usage: loadUsage,
  runs: loadRuns,
  schedules: loadSchedules,
  webhooks: loadWebhooks,
};

const app = {
  scopes: [],

  async start() {
    const response = await api("/console/api/session");
    if (!response.ok) {
      this.signedOut();
      return;
    }
    const who = await response.json();
    this.scopes = who.scopes;
    $("who").textContent = who.open ? "open mode (no keys)" : `signed in: ${who.key_id}`;
    $("sign-out").hidden = who.open;
    $("sign-in").hidden = true;
    $("nav").hidden = false;
    for (const [page, scope] of Object.entries(NEEDS)) {
      $(`nav-${page}`).hidden = !who.scopes.includes(scope);
    }
    const first = PAGES.find((page) => who.scopes.includes(NEEDS[page]));
    if (first) await this.open(first);
    else $("no-pages").hidden = false;
  },

  async open(page) {
    for (const name of PAGES) {
      $(name).hidden = name !== page;
      $(`nav-${name}`).setAttribute("aria-current", name === page ? "page" : "false");
    }
    await LOADERS[page]();
  },

  signedOut() {
    for (const name of PAGES) $(name).hidden = true;
    $("no-pages").hidden = true;
    $("nav").hidden = true;
    $("who").textContent = "";
    $("sign-out").hidden = true;
    $("sign-in").hidden = false;
    $("key").focus();
  },

  async signIn(event) {
    event.preventDefault();
    const key = $("key");
    const response = await api("/console/api/session", {
      method: "POST",
      body: JSON.stringify({ key: key.value }),
    });
    key.value = "";
    if (!response.ok) {
      $("sign-in-error").textContent = await errorOf(response);
      return;
    }
    $("sign-in-error").textContent = "";
    await this.start();
  },

  async signOut() {
    await api("/console/api/session", { method: "DELETE" });
    playground.reset();
    this.signedOut();
  },
};

// Each cell carries its column's head as data-label: on a phone, rows show as cards whose
// cells say what they are (console.css), so no table is wider than the screen.
function labelCells(tbody) {
  const heads = [...(tbody.closest("table")?.querySelectorAll("thead th") || [])];
  for (const tr of tbody.rows) {
    [...tr.cells].forEach((cell, index) => {
      const label = heads[index]?.textContent || "";
      if (label && cell.dataset.label !== label) cell.dataset.label = label;
    });
  }
}
new MutationObserver(() => {
  for (const tbody of document.querySelectorAll("main tbody")) labelCells(tbody);
}).observe(document.querySelector("main"), { childList: true, subtree: true });

$("sign-in-form").addEventListener("submit", (event) => app.signIn(event));
$("sign-out").addEventListener("click", () => app.signOut());
for (const name of PAGES) $(`nav-${name}`).addEventListener("click", () => app.open(name));
playground.bind();
bindKeys();
bindKnowledge();
bindUsage();
bindRuns();
bindWebhooks();
app.start();
