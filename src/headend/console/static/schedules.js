// The Schedules page (admin scope): each agent's schedule entries, their next fire (UTC
// cron, shown in local time) and how their latest runs went.
import { fillTable, row } from "./api.js";

function when(seconds) {
  return new Date(seconds * 1000).toLocaleString();
}

function lastRuns(runs) {
  if (!runs.length) return "none yet";
  return runs
    .map((run) => `${when(run.fire_at)}: ${run.error ? `not started (${run.error})` : run.status || "?"}`
      + (run.response_id ? ` · ${run.response_id}` : ""))
    .join("\n");
}

export async function loadSchedules() {
  await fillTable("schedules", "/admin/schedules", (entry) => {
    const cells = row([
      entry.agent, `${entry.cron} (UTC)`, entry.input, when(entry.next_fire_at),
      lastRuns(entry.last_runs),
    ]);
    cells.lastElementChild.className = "runs";
    return cells;
  });
}
