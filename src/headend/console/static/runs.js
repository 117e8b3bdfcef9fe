// The Runs page (admin scope): background responses, newest first, every key's; pick one to
// see the steps its agent has committed (the model's replies that called tools, then each
// tool's result) as they happen: the page reads them again each second while it runs.
import { $, api, button, element, errorOf, fillTable, row } from "./api.js";

const FOLLOW_MS = 1000;
const UNFINISHED = ["queued", "in_progress"];
let following = null;

function when(seconds) {
  return new Date(seconds * 1000).toLocaleString();
}

function stepLines(step) {
  const claim = step.taken_up ? ` (after ${step.taken_up} takeover${step.taken_up > 1 ? "s" : ""})` : "";
  if (step.kind === "tool") return [`result of ${step.call_id}${claim}`, step.result];
  const calls = (step.tool_calls || []).map((call) => `${call.name}(${call.arguments}) [${call.id}]`);
  const tokens = step.usage ? ` · ${step.usage.total_tokens ?? 0} tokens` : "";
  return [`the model${claim}${tokens}`, [step.text, ...calls].filter(Boolean).join("\n")];
}

async function showSteps(runId) {
  clearTimeout(following);
  const response = await api(`/admin/background/${encodeURIComponent(runId)}`);
  const list = $("run-steps");
  if (!response.ok) {
    $("runs-error").textContent = await errorOf(response);
    return;
  }
  const run = await response.json();
  $("run-steps-title").textContent = `${run.id}: ${run.status}`;
  $("run-steps-panel").hidden = false;
  list.replaceChildren();
  for (const step of run.steps) {
    const [head, body] = stepLines(step);
    const item = element("li");
    item.append(element("strong", head), element("pre", body));
    list.append(item);
  }
  $("run-steps-empty").hidden = run.steps.length > 0;
  if (UNFINISHED.includes(run.status) && !$("runs").hidden) {
    following = setTimeout(() => showSteps(runId), FOLLOW_MS);
  }
}

export async function loadRuns() {
  clearTimeout(following);
  $("run-steps-panel").hidden = true;
  const status = $("runs-status").value;
  const query = status ? `?limit=100&status=${status}` : "?limit=100";
  await fillTable("runs", `/admin/background${query}`, (run) => row([
    when(run.created_at), run.id, run.owner || "", run.status,
    run.taken_up ? String(run.taken_up) : "", when(run.updated_at),
    button("Steps", () => showSteps(run.id)),
  ]));
}

export function bindRuns() {
  $("runs-status").addEventListener("change", loadRuns);
}
