// The Playground: chat with any agent or model the key may use, the answer streaming in as
// it arrives and each tool call shown live; continue the session or start a new one.
import { $, api, errorOf } from "./api.js";

export const playground = {
  sessionId: null,

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
    const body = {
      model: $("model").value,
      messages: [{ role: "user", content: text }],
      stream: true,
      stream_options: { include_usage: true, include_tool_progress: true },
    };
    if (this.sessionId) body.session_id = this.sessionId;
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
      const usage = await this.read(response);
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
        if (payload.error) $("chat-error").textContent = payload.error.message;
        const delta = payload.choices?.[0]?.delta?.content;
        if (delta) {
          answer = answer || this.turn("assistant", "");
          answer.textContent += delta;
        }
      }
    }
    return usage;
  },

  bind() {
    $("chat-form").addEventListener("submit", (event) => this.send(event));
    $("new-session").addEventListener("click", () => this.reset());
  },
};
