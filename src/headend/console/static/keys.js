// The Keys page (admin scope): create keys with scopes, agents, tools, limits and expiry —
// the secret is shown once — and list, rotate and revoke them.
import { $, api, button, copyText, errorOf, row } from "./api.js";
import { money } from "./usage.js";

function status(key) {
  if (key.revoked_at) return "revoked";
  if (key.expires_at && key.expires_at * 1000 < Date.now()) return "expired";
  return "active";
}

function limits(key) {
  const parts = [];
  if (key.rpm) parts.push(`rpm ${key.rpm}`);
  if (key.tpm) parts.push(`tpm ${key.tpm}`);
  if (key.max_concurrency) parts.push(`at once ${key.max_concurrency}`);
  if (key.visitor_rpm) parts.push(`visitor rpm ${key.visitor_rpm}`);
  if (key.budget) parts.push(`budget ${money(key.budget)}/${key.budget_period}`);
  return parts.join(", ") || "none";
}

function showSecret(label, secret) {
  $("secret-label").textContent = label;
  $("secret-value").textContent = secret;
  $("secret-box").hidden = false;
  $("copy-secret").focus();
}

export async function loadKeys() {
  const response = await api("/admin/keys");
  const body = $("keys-body");
  body.replaceChildren();
  if (!response.ok) {
    $("keys-error").textContent = await errorOf(response);
    return;
  }
  const keys = (await response.json()).data;
  $("keys-empty").hidden = keys.length > 0;
  for (const key of keys) {
    const state = status(key);
    const actions = document.createElement("span");
    if (state === "active") {
      actions.append(
        button("Rotate", () => rotate(key)),
        button("Revoke", () => revoke(key)),
      );
    }
    let tools = Array.isArray(key.tools) ? key.tools.join(", ") : key.tools;
    if (key.require_approval) tools += " (approval first)";
    const name = key.publishable ? `${key.name} (publishable: ${key.origins.join(", ")})` : key.name;
    body.append(row([
      name, key.prefix + "…", key.scopes.join(", "), (key.agents || ["*"]).join(", "),
      tools, limits(key), state, actions,
    ]));
  }
}

async function rotate(key) {
  if (!confirm(`Rotate ${key.name}? Its current secret stops working at once.`)) return;
  const response = await api(`/admin/keys/${encodeURIComponent(key.id)}/rotate`, { method: "POST" });
  if (!response.ok) {
    $("keys-error").textContent = await errorOf(response);
    return;
  }
  showSecret(`New secret for ${key.name} (shown once):`, (await response.json()).secret);
  await loadKeys();
}

async function revoke(key) {
  if (!confirm(`Revoke ${key.name}? Requests with it fail from now on.`)) return;
  const response = await api(`/admin/keys/${encodeURIComponent(key.id)}`, { method: "DELETE" });
  if (!response.ok) $("keys-error").textContent = await errorOf(response);
  await loadKeys();
}

function number(id) {
  const value = $(id).value.trim();
  return value ? Number(value) : null;
}

export async function createKey(event) {
  event.preventDefault();
  const form = $("key-form");
  const scopes = [...form.querySelectorAll("input[name=scope]:checked")].map((box) => box.value);
  const agents = $("key-agents").value.split(",").map((s) => s.trim()).filter(Boolean);
  const body = {
    name: $("key-name").value.trim(),
    scopes,
    agents: agents.length ? agents : null,
    rpm: number("key-rpm"),
    tpm: number("key-tpm"),
    max_concurrency: number("key-concurrency"),
    expires: $("key-expires").value.trim() || null,
    budget: number("key-budget"),
  };
  if (body.budget !== null) body.budget_period = $("key-budget-period").value;
  if ($("key-publishable").checked) {
    body.publishable = true;
    body.scopes = null;
    body.origins = $("key-origins").value.split(",").map((s) => s.trim()).filter(Boolean);
    body.visitor_rpm = number("key-visitor-rpm");
  }
  const tools = $("key-tools").value;
  if (tools === "none") body.no_tools = true;
  else if (tools === "read-only") body.read_only = true;
  else if (tools === "list") {
    body.tools = $("key-tool-names").value.split(",").map((s) => s.trim()).filter(Boolean);
  }
  if ($("key-require-approval").checked) body.require_approval = true;
  const response = await api("/admin/keys", { method: "POST", body: JSON.stringify(body) });
  if (!response.ok) {
    $("keys-error").textContent = await errorOf(response);
    return;
  }
  $("keys-error").textContent = "";
  const created = await response.json();
  form.reset();
  $("key-publishable").dispatchEvent(new Event("change"));
  if (created.publishable) {
    showSecret(
      `Publishable key for ${created.name}, for the widget tag. Identity secret for ` +
        `data-user-hash (shown once): ${created.identity_secret}`,
      created.secret,
    );
  } else {
    showSecret(`Secret for ${created.name} (shown once; only its hash is kept):`, created.secret);
  }
  await loadKeys();
}

export function bindKeys() {
  $("key-form").addEventListener("submit", (event) => createKey(event));
  $("key-tools").addEventListener("change", () => {
    $("key-tool-names").hidden = $("key-tools").value !== "list";
  });
  $("copy-secret").addEventListener("click", () => copyText($("copy-secret"), $("secret-value")));
  // A publishable key chats only and runs only tools that read unless given a list.
  $("key-publishable").addEventListener("change", () => {
    const publishable = $("key-publishable").checked;
    $("publishable-fields").hidden = !publishable;
    $("key-scopes").disabled = publishable;
    $("key-tools").querySelector("option[value=all]").disabled = publishable;
    if (publishable && $("key-tools").value === "all") $("key-tools").value = "read-only";
  });
  $("hide-secret").addEventListener("click", () => {
    $("secret-value").textContent = "";
    $("secret-box").hidden = true;
    $("copy-secret").textContent = "Copy";
  });
}
