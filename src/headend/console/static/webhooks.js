// The Webhooks page (admin scope): the outbox, newest first: each event for each endpoint,
// delivered, waiting for its next try, or given up on, with the endpoint's last answer.
import { $, fillTable, row } from "./api.js";

function when(seconds) {
  return seconds == null ? "" : new Date(seconds * 1000).toLocaleString();
}

function outcome(delivery) {
  if (delivery.status === "pending") return `retry at ${when(delivery.next_attempt_at)}`;
  return delivery.last_error || (delivery.last_status ? `HTTP ${delivery.last_status}` : "");
}

export async function loadWebhooks() {
  const status = $("webhooks-status").value;
  const query = status ? `?limit=100&status=${status}` : "?limit=100";
  await fillTable("webhooks", `/admin/webhooks/deliveries${query}`, (delivery) => row([
    when(delivery.created_at), delivery.event_type, delivery.response_id || "",
    delivery.endpoint, delivery.status, String(delivery.attempts), outcome(delivery),
  ]));
}

export function bindWebhooks() {
  $("webhooks-status").addEventListener("change", loadWebhooks);
}
