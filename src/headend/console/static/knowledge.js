// The Knowledge page (knowledge scope, which chat includes): the key's vector stores, their
// files and where each is in its ingestion, uploads into a store, and a search box. Through
// the same OpenAI Files and Vector Stores API any client uses.
import { $, api, button, element, errorOf, fillTable, row } from "./api.js";

const FOLLOW_MS = 1000;
let chosen = null;
let following = null;
const names = new Map(); // file id -> its name (a vector store file carries only the id)

async function nameOf(fileId) {
  if (!names.has(fileId)) {
    const response = await api(`/v1/files/${encodeURIComponent(fileId)}`);
    names.set(fileId, response.ok ? (await response.json()).filename : fileId);
  }
  return names.get(fileId);
}

function counts(store) {
  const c = store.file_counts;
  const parts = [`${c.completed} ready`];
  if (c.in_progress) parts.push(`${c.in_progress} indexing`);
  if (c.failed) parts.push(`${c.failed} failed`);
  if (c.cancelled) parts.push(`${c.cancelled} cancelled`);
  return parts.join(", ");
}

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

// The stores, and the one opened; read again each second while any file is indexing.
export async function loadKnowledge() {
  clearTimeout(following);
  const stores = await fillTable("stores", "/v1/vector_stores?limit=100", (store) => row([
    store.name || "(unnamed)", store.id, store.status, counts(store), size(store.usage_bytes),
    button("Open", () => { chosen = store.id; loadKnowledge(); }),
  ]));
  if (chosen) await openStore(chosen, (stores || []).find((store) => store.id === chosen));
  const indexing = (stores || []).some((store) => store.file_counts.in_progress > 0);
  if (indexing && !$("knowledge").hidden) following = setTimeout(loadKnowledge, FOLLOW_MS);
}

// The opened store's files; `listed`: the store as the list just read it (else read here).
async function openStore(storeId, listed) {
  let store = listed;
  if (!store) {
    const response = await api(`/v1/vector_stores/${encodeURIComponent(storeId)}`);
    if (!response.ok) {
      $("stores-error").textContent = await errorOf(response);
      $("store-panel").hidden = true;
      chosen = null;
      return;
    }
    store = await response.json();
  }
  $("store-title").textContent = `${store.name || store.id}: ${counts(store)}`;
  $("store-panel").hidden = false;
  const found = await api(`/v1/vector_stores/${encodeURIComponent(storeId)}/files?limit=100`);
  const files = found.ok ? (await found.json()).data : [];
  for (const file of files) file.name = file.attributes?.path || await nameOf(file.id);
  const body = $("store-files-body");
  body.replaceChildren(...files.map((file) => row([
    file.name, file.status,
    file.last_error ? `${file.last_error.code}: ${file.last_error.message}` : "",
    size(file.usage_bytes),
  ])));
  $("store-files-empty").hidden = files.length > 0;
  $("store-files-error").textContent = found.ok ? "" : await errorOf(found);
}

async function createStore(event) {
  event.preventDefault();
  const response = await api("/v1/vector_stores", {
    method: "POST",
    body: JSON.stringify({ name: $("store-name").value }),
  });
  if (!response.ok) {
    $("stores-error").textContent = await errorOf(response);
    return;
  }
  $("store-name").value = "";
  chosen = (await response.json()).id;
  await loadKnowledge();
}

async function upload(event) {
  event.preventDefault();
  const picked = [...$("upload-files").files];
  if (!chosen || !picked.length) return;
  $("upload-error").textContent = "";
  const ids = [];
  for (const file of picked) {
    const form = new FormData();
    form.append("purpose", "assistants");
    form.append("file", file, file.name);
    const response = await fetch("/v1/files", {
      method: "POST", body: form, credentials: "same-origin",
    });
    if (!response.ok) {
      $("upload-error").textContent = `${file.name}: ${await errorOf(response)}`;
      continue;
    }
    ids.push((await response.json()).id);
  }
  if (ids.length) {
    const response = await api(
      `/v1/vector_stores/${encodeURIComponent(chosen)}/file_batches`,
      { method: "POST", body: JSON.stringify({ file_ids: ids }) },
    );
    if (!response.ok) $("upload-error").textContent = await errorOf(response);
  }
  $("upload-files").value = "";
  await loadKnowledge();
}

async function search(event) {
  event.preventDefault();
  if (!chosen) return;
  const list = $("search-results");
  list.replaceChildren();
  const response = await api(`/v1/vector_stores/${encodeURIComponent(chosen)}/search`, {
    method: "POST",
    body: JSON.stringify({ query: $("search-query").value, max_num_results: 5 }),
  });
  if (!response.ok) {
    $("search-error").textContent = await errorOf(response);
    return;
  }
  $("search-error").textContent = "";
  const page = await response.json();
  $("search-empty").hidden = page.data.length > 0;
  for (const hit of page.data) {
    const item = element("li");
    item.append(
      element("strong", `${hit.filename} · ${hit.score.toFixed(2)}`),
      element("pre", hit.content.map((part) => part.text).join("\n")),
    );
    list.append(item);
  }
}

export function bindKnowledge() {
  $("store-form").addEventListener("submit", createStore);
  $("upload-form").addEventListener("submit", upload);
  $("search-form").addEventListener("submit", search);
}
