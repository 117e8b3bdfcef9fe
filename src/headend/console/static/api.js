// Talking to headend from the console: same-origin fetches that carry the sign-in cookie.

export const $ = (id) => document.getElementById(id);

export async function api(path, options = {}) {
  return fetch(path, {
    credentials: "same-origin",
    ...options,
    headers: { "Content-Type": "application/json", ...(options.headers || {}) },
  });
}

export async function errorOf(response) {
  try {
    const body = await response.json();
    return body.error?.message || `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

// An element with text (never HTML) and a class.
export function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text != null) node.textContent = text;
  if (className) node.className = className;
  return node;
}

// A table row of text cells (never HTML: names and labels come from users).
export function row(cells, tag = "td") {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement(tag);
    if (cell instanceof Node) td.append(cell);
    else td.textContent = cell ?? "";
    tr.append(td);
  }
  return tr;
}

export function button(label, onClick) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = label;
  element.addEventListener("click", onClick);
  return element;
}

// Copy the text of `source` to the clipboard; outside a secure context (plain http off
// loopback) there is no clipboard: select the text instead, for the user to copy.
export async function copyText(trigger, source) {
  try {
    await navigator.clipboard.writeText(source.textContent);
    trigger.textContent = "Copied";
  } catch {
    getSelection().selectAllChildren(source);
    trigger.textContent = "Selected: copy it now";
  }
}

// A page's list: GET `path`, then one row per item of its `data` into `${page}-body`, with
// `${page}-empty` shown when there is none and the error, if any, in `${page}-error`.
export async function fillTable(page, path, toRow) {
  const response = await api(path);
  const body = $(`${page}-body`);
  body.replaceChildren();
  if (!response.ok) {
    $(`${page}-error`).textContent = await errorOf(response);
    return null;
  }
  $(`${page}-error`).textContent = "";
  const found = (await response.json()).data;
  $(`${page}-empty`).hidden = found.length > 0;
  for (const item of found) body.append(toRow(item));
  return found;
}
