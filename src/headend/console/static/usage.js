// The Usage page (admin scope): tokens and requests per day as an SVG chart drawn here (no
// image service), totals (tokens and cost) per key and per agent or model, and every row
// beneath.
import { $, api, errorOf, row } from "./api.js";

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text != null) node.textContent = text;
  return node;
}

function days(count) {
  const out = [];
  const today = new Date();
  for (let i = count - 1; i >= 0; i -= 1) {
    const day = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - i));
    out.push(day.toISOString().slice(0, 10));
  }
  return out;
}

function sum(rows, keyOf) {
  const totals = new Map();
  for (const r of rows) {
    const key = keyOf(r);
    const t = totals.get(key) || { requests: 0, prompt: 0, completion: 0, cost: 0 };
    t.requests += r.requests;
    t.cost += r.cost;
    t.prompt += r.prompt_tokens;
    t.completion += r.completion_tokens;
    totals.set(key, t);
  }
  return totals;
}

// Stacked bars (prompt, completion tokens) per day, with the requests as a number on top.
function chart(rows, period) {
  const perDay = sum(rows, (r) => r.day);
  const width = 640;
  const height = 220;
  const pad = { left: 56, right: 8, top: 18, bottom: 28 };
  const labels = days(period);
  const top = Math.max(1, ...labels.map((d) => {
    const t = perDay.get(d);
    return t ? t.prompt + t.completion : 0;
  }));
  const plotH = height - pad.top - pad.bottom;
  const slot = (width - pad.left - pad.right) / labels.length;
  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart",
    "aria-labelledby": "usage-chart-title",
  });
  const total = [...perDay.values()].reduce((a, t) => a + t.prompt + t.completion, 0);
  root.append(svg("title", { id: "usage-chart-title" },
    `Tokens per day, last ${period} days: ${total} in all`));
  root.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: height - pad.bottom,
    y2: height - pad.bottom, class: "axis" }));
  root.append(svg("text", { x: pad.left - 6, y: pad.top + 4, "text-anchor": "end",
    class: "tick" }, String(top)));
  root.append(svg("text", { x: pad.left - 6, y: height - pad.bottom, "text-anchor": "end",
    class: "tick" }, "0"));
  labels.forEach((day, i) => {
    const t = perDay.get(day) || { requests: 0, prompt: 0, completion: 0 };
    const x = pad.left + i * slot + slot * 0.15;
    const w = Math.max(slot * 0.7, 1);
    const promptH = (t.prompt / top) * plotH;
    const completionH = (t.completion / top) * plotH;
    const base = height - pad.bottom;
    const group = svg("g", { class: "day" });
    group.append(svg("title", {}, `${day}: ${t.requests} requests, ${t.prompt} prompt + ${t.completion} completion tokens`));
    group.append(svg("rect", { x, y: base - promptH, width: w, height: promptH, class: "prompt" }));
    group.append(svg("rect", { x, y: base - promptH - completionH, width: w, height: completionH,
      class: "completion" }));
    if (t.requests) {
      group.append(svg("text", { x: x + w / 2, y: base - promptH - completionH - 4,
        "text-anchor": "middle", class: "count" }, String(t.requests)));
    }
    if (labels.length <= 14 || i % Math.ceil(labels.length / 10) === 0) {
      group.append(svg("text", { x: x + w / 2, y: height - 8, "text-anchor": "middle",
        class: "tick" }, day.slice(5)));
    }
    root.append(group);
  });
  const legend = svg("g", { class: "legend" });
  legend.append(svg("rect", { x: width - 220, y: 2, width: 10, height: 10, class: "prompt" }));
  legend.append(svg("text", { x: width - 206, y: 11, class: "tick" }, "prompt"));
  legend.append(svg("rect", { x: width - 150, y: 2, width: 10, height: 10, class: "completion" }));
  legend.append(svg("text", { x: width - 136, y: 11, class: "tick" }, "completion"));
  root.append(legend);
  return root;
}

// A cost in the operator's currency (prices per million tokens): up to a millionth.
export function money(amount) {
  return amount ? String(Number(amount.toFixed(6))) : "0";
}

function totalsInto(body, totals) {
  body.replaceChildren();
  const sorted = [...totals.entries()].sort((a, b) => (b[1].prompt + b[1].completion) - (a[1].prompt + a[1].completion));
  for (const [name, t] of sorted) {
    body.append(row([name, t.requests, t.prompt + t.completion, money(t.cost)]));
  }
}

export async function loadUsage() {
  const period = Number($("usage-days").value);
  const response = await api(`/admin/usage?days=${period}`);
  $("usage-body").replaceChildren();
  $("usage-chart").replaceChildren();
  if (!response.ok) {
    $("usage-error").textContent = await errorOf(response);
    return;
  }
  $("usage-error").textContent = "";
  const rows = (await response.json()).data;
  $("usage-chart").append(chart(rows, period));
  const cost = rows.reduce((a, r) => a + r.cost, 0);
  $("usage-cost").textContent = `Cost in the period: ${money(cost)} (at the prices configured)`;
  totalsInto($("usage-keys"), sum(rows, (r) => r.key_id || "(no key)"));
  totalsInto($("usage-models"), sum(rows, (r) => r.model));
  $("usage-empty").hidden = rows.length > 0;
  for (const r of rows) {
    $("usage-body").append(row([r.day, r.key_id || "(no key)", r.model, r.requests,
      r.prompt_tokens, r.completion_tokens, money(r.cost)]));
  }
}

export function bindUsage() {
  $("usage-days").addEventListener("change", () => loadUsage());
}
