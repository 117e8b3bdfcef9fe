// The Playground: chat with any agent or model the key may use, the answer streaming in as
// it arrives and each tool call shown live; continue the session or start a new one.
import { approvalCard } from "./approval_cards.js";
import { $, api, copyText, errorOf } from "./api.js";

const OPTIONS = ["temperature", "top_p", "max_tokens", "seed", "max_iterations"];

// The same call for a terminal or a program; the key stays out of it ($HEADEND_API_KEY).
const SNIPPETS = {
  curl: (base, body) =>
    `curl ${base}/v1/chat/completions \\\n` +
    `  -H "Authorization: Bearer $HEADEND_API_KEY" \\\n` +
    `  -H "Content-Type: application/json" \\\n` +
    `  -d '${JSON.stringify(body).replaceAll("'", "'\\''")}'`,
  python: (base, body) => {
    const { model, messages, stream, ...rest } = body;
    const extra = Object.keys(rest).length ? `,\n    extra_body=${JSON.stringify(rest)}` : "";
    return (
      "import os\nfrom openai import OpenAI\n\n" +
      `client = OpenAI(base_url="${base}/v1", api_key=os.environ["HEADEND_API_KEY"])\n` +
      `stream = client.chat.completions.create(\n    model=${JSON.stringify(model)},\n` +
      `    messages=${JSON.stringify(messages)},\n    stream=True${extra},\n)\n` +
      "for chunk in stream:\n    if chunk.choices:\n" +
      '        print(chunk.choices[0].delta.content or "", end="", flush=True)\n'
    );
  },
  js: (base, body) =>
    'import OpenAI from "openai";\n\n' +
    `const client = new OpenAI({ baseURL: "${base}/v1", apiKey: process.env.HEADEND_API_KEY });\n` +
    `const stream = await client.chat.completions.create(${JSON.stringify(body, null, 2)});\n` +
    "for await (const chunk of stream) {\n" +
    '  process.stdout.write(chunk.choices[0]?.delta?.content ?? "");\n}\n',
};

export const playground = {
  sessionId: null,

  // The request as the form stands: model, the message, options the user set.
  body(text) {
    const body = {
      model: $("model").value,
      messages: [{ role: "user", content: text }],
      stream: true,
    };
    for (const name of OPTIONS) {
      const value = $(`opt-${name}`).value.trim();
      if (value !== "") body[name] = Number(value);
    }
    if (this.sessionId) body.session_id = this.sessionId;
    return body;
  },

  showSnippet(kind) {
    const text = $("message").value.trim() || this.lastText || "Hello";
    $("snippet").textContent = SNIPPETS[kind](location.origin, this.body(text));
    $("snippet-box").hidden = false;
    $("copy-snippet").textContent = "Copy";
  },

  async loadModels() {
    const response = await api("/v1/models");
    const select = $("model");
    select.replaceChildren();
    if (!response.ok) {
      $("chat-error").textContent = await errorOf(response);
      return;
    }
    for (const model of (await response.json()).data) {
      const option = document.createElement("option");
      option.value = model.id;
      option.textContent = model.id;
      select.append(option);
    }
  },

  reset() {
    this.sessionId = null;
    $("transcript").replaceChildren();
    $("meta").textContent = "";
  },

  turn(role, text) {
    const line = document.createElement("div");
    line.className = `turn ${role}`;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = role === "user" ? "You:" : "Agent:";
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    line.append(who, body);
    $("transcript").append(line);
    return body;
  },

  // One line per tool call: "running" when it starts, its outcome when it ends.
  progress(event, lines) {
    const key = `${event.iteration}|${event.tool_name}|${event.label}`;
    let line = lines.get(key);
    if (!line) {
      line = document.createElement("div");
      line.className = "tool";
      $("transcript").append(line);
      lines.set(key, line);
    }
    const done = event.type === "tool.completed";
    const outcome = done ? (event.success ? `done in ${event.duration_ms} ms` : "failed") : "running…";
    line.textContent = `⚙ ${event.tool_name} ${event.label || ""} — ${outcome}`;
  },

  async send(event) {
    event.preventDefault();
    const message = $("message");
    const text = message.value.trim();
    if (!text) return;
    message.value = "";
    $("chat-error").textContent = "";
    this.turn("user", text);
    this.lastText = text;
    const body = {
      ...this.body(text),
      stream_options: { include_usage: true, include_tool_progress: true },
    };
    $("send").disabled = true;
    try {
      const response = await api("/v1/chat/completions", {
        method: "POST",
        body: JSON.stringify(body),
      });
      if (!response.ok) {
        $("chat-error").textContent = await errorOf(response);
        return;
      }
      const { usage, approvals } = await this.read(response);
      for (const approval of approvals) {
        $("transcript").append(approvalCard(this.sessionId, approval));
      }
      const id = response.headers.get("x-request-id");
      $("meta").textContent = [
        usage ? `${usage.prompt_tokens} in, ${usage.completion_tokens} out` : "",
        id ? `request ${id}` : "",
        this.sessionId ? `session ${this.sessionId}` : "",
      ].filter(Boolean).join(" · ");
    } finally {
      $("send").disabled = false;
    }
  },

  // Server-sent events as they arrive: tool progress as lines, then the answer's text.
  async read(response) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const lines = new Map();
    let answer = null;
    let buffer = "";
    let usage = null;
    let approvals = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const kind = frame.match(/^event: (.*)$/m)?.[1];
        const data = frame.match(/^data: (.*)$/m)?.[1];
        if (!data || data === "[DONE]") continue;
        const payload = JSON.parse(data);
        if (kind === "tool.progress") {
          this.progress(payload, lines);
          continue;
        }
        if (payload.session_id) this.sessionId = payload.session_id;
        if (payload.usage) usage = payload.usage;
        if (payload.approval_requests) approvals = payload.approval_requests;
        if (payload.error) $("chat-error").textContent = payload.error.message;
        const delta = payload.choices?.[0]?.delta?.content;
        if (delta) {
          answer = answer || this.turn("assistant", "");
          answer.textContent += delta;
        }
      }
    }
    return { usage, approvals };
  },

  bind() {
    $("chat-form").addEventListener("submit", (event) => this.send(event));
    $("new-session").addEventListener("click", () => this.reset());
    for (const trigger of document.querySelectorAll("[data-copy-as]")) {
      trigger.addEventListener("click", () => this.showSnippet(trigger.dataset.copyAs));
    }
    $("copy-snippet").addEventListener("click", () => copyText($("copy-snippet"), $("snippet")));
  },
};
