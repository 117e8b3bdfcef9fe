// The Sessions page: the signed-in key's sessions, newest first, each as a transcript with
// its tool calls and their results, and the calls waiting for approval as cards to answer.
import { $, api, button, errorOf, row } from "./api.js";
import { approvalCard } from "./approval_cards.js";

function when(seconds) {
  return new Date(seconds * 1000).toLocaleString();
}

function line(kind, label, text) {
  const element = document.createElement("div");
  element.className = `turn ${kind}`;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = label;
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  element.append(who, body);
  return element;
}

function content(value) {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return value.map((part) => part.text ?? `[${part.type}]`).join("");
  return value == null ? "" : JSON.stringify(value);
}

async function show(session) {
  const response = await api(`/v1/sessions/${encodeURIComponent(session.id)}`);
  const transcript = $("session-transcript");
  transcript.replaceChildren();
  if (!response.ok) {
    $("sessions-error").textContent = await errorOf(response);
    return;
  }
  const full = await response.json();
  $("session-title").textContent = `${full.agent} · ${full.id}`;
  for (const message of full.messages || []) {
    if (message.role === "tool") {
      transcript.append(line("tool", "Result:", content(message.content)));
      continue;
    }
    const text = content(message.content);
    if (text) transcript.append(line(message.role, message.role === "user" ? "You:" : "Agent:", text));
    for (const call of message.tool_calls || []) {
      const fn = call.function || {};
      transcript.append(line("tool", "Tool call:", `${fn.name}(${fn.arguments || ""})`));
    }
  }
  const waiting = await api(`/v1/sessions/${encodeURIComponent(session.id)}/approvals`);
  if (waiting.ok) {
    for (const approval of (await waiting.json()).data) {
      if (approval.status === "pending") transcript.append(approvalCard(session.id, approval));
    }
  }
  $("session-detail").hidden = false;
}

export async function loadSessions() {
  $("session-detail").hidden = true;
  const response = await api("/v1/sessions?limit=50");
  const body = $("sessions-body");
  body.replaceChildren();
  if (!response.ok) {
    $("sessions-error").textContent = await errorOf(response);
    return;
  }
  $("sessions-error").textContent = "";
  const sessions = (await response.json()).data;
  $("sessions-empty").hidden = sessions.length > 0;
  for (const session of sessions) {
    body.append(row([
      session.agent, String(session.turns), when(session.updated_at), session.id,
      button("Open", () => show(session)),
    ]));
  }
}
