// A tool call waiting for a person's approval, as a card: the tool, its arguments exactly as
// they would run, and Approve / Deny (with a reason for the model). The answer goes through
// the sessions API; the conversation's next message goes on from it.
import { api, element, errorOf } from "./api.js";

function shownArguments(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

export function approvalCard(sessionId, approval) {
  const card = element("div", null, "approval");
  card.dataset.approval = approval.id;
  const where = approval.server_label && approval.server_label !== "headend"
    ? ` (${approval.server_label})` : "";
  card.append(
    element("strong", `Waiting for your approval: ${approval.name}${where}`),
    element("pre", shownArguments(approval.arguments)),
  );
  const reason = element("input");
  reason.type = "text";
  reason.placeholder = "Why not? (told to the model if you deny)";
  reason.setAttribute("aria-label", "Reason for denying");
  const outcome = element("p", null, "muted");
  const approve = element("button", "Approve");
  const deny = element("button", "Deny");
  for (const button of [approve, deny]) button.type = "button";
  async function answer(approved) {
    approve.disabled = deny.disabled = true;
    const body = { approve: approved };
    if (!approved && reason.value.trim()) body.reason = reason.value.trim();
    const path = `/v1/sessions/${encodeURIComponent(sessionId)}/approvals/${encodeURIComponent(approval.id)}`;
    const response = await api(path, { method: "POST", body: JSON.stringify(body) });
    if (!response.ok) {
      outcome.textContent = await errorOf(response);
      outcome.className = "error";
      approve.disabled = deny.disabled = false;
      return;
    }
    card.classList.add("answered");
    outcome.textContent = `${approved ? "Approved" : "Denied"}: send your next message to go on.`;
    reason.hidden = approve.hidden = deny.hidden = true;
  }
  approve.addEventListener("click", () => answer(true));
  deny.addEventListener("click", () => answer(false));
  const actions = element("div", null, "actions");
  actions.append(approve, deny);
  card.append(reason, actions, outcome);
  return card;
}
