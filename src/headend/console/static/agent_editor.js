// Editing an agent created through the API (keys with agents:write or admin): its draft,
// the diff against the version served, publishing, and serving an earlier version again.
// An agent defined by a file is changed in its file; the console says so.
import { api, button, element, errorOf, row } from "./api.js";

const path = (id, rest = "") => `/admin/agents/${encodeURIComponent(id)}${rest}`;
const when = (seconds) => (seconds ? new Date(seconds * 1000).toLocaleString() : "");

// A unified diff, its added and removed lines marked for the eye and for screen readers.
export function diffView(text) {
  const view = element("pre", null, "diff");
  if (!text) {
    view.textContent = "No differences.";
    return view;
  }
  for (const line of text.split("\n")) {
    if (!line) continue;
    if (line.startsWith("+") && !line.startsWith("+++")) view.append(element("ins", `${line}\n`));
    else if (line.startsWith("-") && !line.startsWith("---")) view.append(element("del", `${line}\n`));
    else view.append(element("span", `${line}\n`));
  }
  return view;
}

function draftNote(entry) {
  if (entry.draft == null) {
    return entry.version ? "No draft: editing starts from the version served." : "";
  }
  return `Draft saved by ${entry.draft_by ?? "open mode"}, ${when(entry.draft_at)}; not served yet.`;
}

// The editor for one API agent, inside its card; `reload` redraws the page after a change.
export function editor(entry, reload) {
  const box = element("details", null, "editor");
  box.open = entry.draft != null || !entry.version;
  box.append(element("summary", "Edit, publish, roll back"));
  const fieldId = `edit-${entry.id}`;
  const label = element("label", "Definition: front matter and system prompt");
  label.htmlFor = fieldId;
  const text = element("textarea");
  text.id = fieldId;
  text.rows = 10;
  text.spellcheck = false;
  text.value = entry.draft ?? entry.content ?? "";
  const note = element("p", draftNote(entry), "muted");
  const output = element("div");
  const status = element("p", null, "error");
  status.setAttribute("role", "alert");

  async function act(request, done) {
    status.textContent = "";
    const response = await request();
    if (!response.ok) {
      status.textContent = await errorOf(response);
      return;
    }
    await done(await response.json());
  }
  const put = () => api(path(entry.id, "/draft"), {
    method: "PUT", body: JSON.stringify({ content: text.value }),
  });
  const publish = (body) => api(path(entry.id, "/publish"), {
    method: "POST", body: JSON.stringify(body),
  });
  const showDiff = (query) => act(
    () => api(path(entry.id, `/diff?${query}`)),
    (found) => output.replaceChildren(
      element("p", `${entry.id}@${found.before} → ${entry.id}@${found.after}`, "muted"),
      diffView(found.diff),
    ),
  );

  const actions = element("div", null, "row");
  actions.append(button("Save draft", () => act(put, reload)));
  if (entry.version) {
    actions.append(button("Save draft and diff", () => act(put, () => showDiff("after=draft"))));
  }
  actions.append(button("Publish", () => act(put, () => act(() => publish({}), reload))));
  if (entry.draft != null) {
    actions.append(button("Discard draft", () => act(
      () => api(path(entry.id, "/draft"), { method: "DELETE" }), reload,
    )));
  }
  box.append(label, text, note, actions, status, output);
  if (entry.version) box.append(versions(entry, act, publish, showDiff, reload));
  return box;
}

function versions(entry, act, publish, showDiff, reload) {
  const table = element("table");
  const head = element("thead");
  head.append(row(["Version", "Published by", "When", ""], "th"));
  const body = element("tbody");
  table.append(head, body);
  const holder = element("div");
  holder.append(element("h4", "Versions"), table);
  api(path(entry.id, "/versions")).then(async (response) => {
    if (!response.ok) return;
    for (const version of (await response.json()).data) {
      const cell = element("span");
      if (version.served) {
        cell.textContent = "served";
      } else {
        cell.append(
          button(`Diff ${version.version}`, () => showDiff(
            `before=${entry.version}&after=${version.version}`,
          )),
          button(`Serve ${version.version} again`, () => {
            if (!confirm(`Serve version ${version.version} of ${entry.id} from now on?`)) return;
            act(() => publish({ version: version.version }), reload);
          }),
        );
      }
      body.append(row([
        String(version.version), version.created_by ?? "file", when(version.created_at), cell,
      ]));
    }
  });
  return holder;
}

// The form that creates an agent (its first draft).
export function creator(reload) {
  const box = element("details", null, "editor");
  box.append(element("summary", "New agent"));
  const idLabel = element("label", "Id (the name clients send as model)");
  idLabel.htmlFor = "new-agent-id";
  const id = element("input");
  id.id = "new-agent-id";
  id.autocomplete = "off";
  const textLabel = element("label", "Definition: front matter and system prompt");
  textLabel.htmlFor = "new-agent-text";
  const text = element("textarea");
  text.id = "new-agent-text";
  text.rows = 8;
  text.spellcheck = false;
  text.value = "---\nmodel: local\ndescription: \n---\nYou are a helpful assistant.\n";
  const status = element("p", null, "error");
  status.setAttribute("role", "alert");
  const create = button("Create draft", async () => {
    const response = await api("/admin/agents", {
      method: "POST", body: JSON.stringify({ id: id.value.trim(), content: text.value }),
    });
    status.textContent = response.ok ? "" : await errorOf(response);
    if (response.ok) await reload();
  });
  const actions = element("div", null, "row");
  actions.append(create);
  box.append(idLabel, id, textLabel, text, actions, status);
  return box;
}
