// headend chat widget. One tag on any site:
//   <script src="https://HOST/widget.js" data-agent="support" data-key="pk-he-..." async></script>
// Optional: data-title, data-color, data-greeting, data-placeholder, and for a signed-in
// user data-user with data-user-hash (the HMAC your server computes; see headend's README).
// It renders in a shadow root, keeps the visitor's token and conversation across page
// loads, streams answers, and shows a tool call that waits for the visitor's approval as a
// card to approve or deny. No dependencies, no build step.
(() => {
  "use strict";
  const script = document.currentScript;
  if (!script || !script.src) return;
  const cfg = script.dataset;
  const base = new URL(script.src).origin;
  const agent = cfg.agent || "";
  const key = cfg.key || "";
  const title = cfg.title || "Chat";
  const color = /^#[0-9a-f]{3,8}$|^[a-z]+$|^rgb/i.test(cfg.color || "") ? cfg.color : "#2563eb";
  const slot = `headend-widget:${base}:${key.slice(0, 14)}:${agent}:${cfg.user || ""}`;

  // ---- what the visitor keeps: token, session (localStorage may be off: then per page) ----
  let kept = {};
  try {
    kept = JSON.parse(localStorage.getItem(slot) || "{}") || {};
  } catch (_) {
    kept = {};
  }
  const keep = (change) => {
    kept = { ...kept, ...change };
    try {
      localStorage.setItem(slot, JSON.stringify(kept));
    } catch (_) {
      /* storage blocked: the conversation lasts this page */
    }
  };

  // ---- calls to headend ----
  class Refused extends Error {
    constructor(message, status, code) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function failure(response) {
    let message = `headend answered ${response.status}`;
    let code = null;
    try {
      const body = await response.json();
      if (body && body.error) {
        message = body.error.message || message;
        code = body.error.code || null;
      }
    } catch (_) {
      /* not JSON */
    }
    return new Refused(message, response.status, code);
  }

  async function fetchOrExplain(url, init) {
    try {
      return await fetch(url, init);
    } catch (_) {
      throw new Refused(
        "The chat could not reach its server, or this site may not use it.",
        0,
        "network",
      );
    }
  }

  async function token(renew) {
    const now = Date.now() / 1000;
    if (!renew && kept.token && kept.expires - now > 60) return kept.token;
    const body = { key };
    if (kept.token) body.token = kept.token;
    if (cfg.user) {
      body.user = cfg.user;
      body.user_hash = cfg.userHash || "";
    }
    // text/plain: a simple request, so a refusal reaches us with its reason
    const response = await fetchOrExplain(`${base}/widget/api/visitor`, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw await failure(response);
    const found = await response.json();
    if (found.visitor !== kept.visitor) keep({ session: null });
    keep({ token: found.token, expires: found.expires_at, visitor: found.visitor });
    return found.token;
  }

  async function authorized(url, init) {
    for (const renew of [false, true]) {
      const headers = { ...(init.headers || {}), authorization: `Bearer ${await token(renew)}` };
      const response = await fetchOrExplain(url, { ...init, headers });
      if (response.status !== 401 || renew) return response;
    }
    throw new Refused("unreachable", 0, null);
  }

  async function history() {
    const url = `${base}/widget/api/conversation?agent=${encodeURIComponent(agent)}`;
    const response = await authorized(url, { method: "GET" });
    if (!response.ok) throw await failure(response);
    return response.json();
  }

  async function answerApproval(approvalId, approve) {
    const body = { session_id: kept.session, approval_id: approvalId, approve };
    const response = await authorized(`${base}/widget/api/approval`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw await failure(response);
    return response.json();
  }

  // The answer's text as it streams: onText(piece) for each piece; then onWaiting(requests)
  // for the tool calls it stopped at, if any.
  async function ask(text, onText, onWaiting) {
    const body = { model: agent, messages: [{ role: "user", content: text }], stream: true };
    if (kept.session) body.session_id = kept.session;
    const response = await authorized(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw await failure(response);
    const session = response.headers.get("x-session-id");
    if (session) keep({ session });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        for (const line of frame.split("\n")) {
          if (!line.startsWith("data:")) continue;
          const data = line.slice(5).trim();
          if (data === "[DONE]") return;
          let chunk;
          try {
            chunk = JSON.parse(data);
          } catch (_) {
            continue;
          }
          if (chunk.error) throw new Refused(chunk.error.message, 500, chunk.error.code);
          if (chunk.session_id) keep({ session: chunk.session_id });
          if (chunk.approval_requests) onWaiting(chunk.approval_requests);
          const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
          // a guardrail's refusal is said like an answer: the visitor reads why
          const piece = delta && (delta.content || delta.refusal);
          if (piece) onText(piece);
        }
      }
    }
  }

  // ---- the view ----
  const css = `
:host { all: initial; --accent: ${color}; }
* { box-sizing: border-box; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; }
.launcher { position: fixed; right: 20px; bottom: 20px; z-index: 2147483000; width: 56px;
  height: 56px; border-radius: 50%; border: 0; background: var(--accent); color: #fff;
  cursor: pointer; box-shadow: 0 4px 14px rgba(0,0,0,.25); display: grid; place-items: center; }
.launcher:focus-visible, button:focus-visible, textarea:focus-visible {
  outline: 3px solid #111; outline-offset: 2px; }
.panel { position: fixed; right: 20px; bottom: 88px; z-index: 2147483000;
  width: min(380px, calc(100vw - 24px)); height: min(560px, calc(100vh - 110px));
  display: flex; flex-direction: column; background: #fff; color: #111; border-radius: 12px;
  box-shadow: 0 8px 30px rgba(0,0,0,.3); overflow: hidden; font-size: 15px; }
.panel[hidden] { display: none; }
header { display: flex; align-items: center; gap: 8px; padding: 10px 12px;
  background: var(--accent); color: #fff; }
header h2 { flex: 1; margin: 0; font-size: 16px; font-weight: 600; }
header button { background: transparent; color: #fff; border: 1px solid rgba(255,255,255,.6);
  border-radius: 6px; padding: 4px 8px; cursor: pointer; font-size: 13px; }
.log { flex: 1; overflow-y: auto; padding: 12px; display: flex; flex-direction: column;
  gap: 8px; background: #f6f7f9; }
.msg { max-width: 85%; padding: 8px 11px; border-radius: 10px; white-space: pre-wrap;
  overflow-wrap: anywhere; line-height: 1.4; }
.user { align-self: flex-end; background: var(--accent); color: #fff; }
.assistant { align-self: flex-start; background: #fff; border: 1px solid #dde1e6; }
.notice { align-self: stretch; color: #8a1c1c; background: #fdecec; border: 1px solid #f3b9b9;
  font-size: 14px; }
.approval { align-self: stretch; background: #fff8e6; border: 1px solid #e8c66a;
  border-radius: 10px; padding: 8px 11px; font-size: 14px; }
.approval p { margin: 0 0 6px; }
.approval pre { margin: 0 0 8px; white-space: pre-wrap; overflow-wrap: anywhere;
  font-family: ui-monospace, monospace; font-size: 13px; }
.approval button { border: 1px solid #c6cbd2; border-radius: 6px; padding: 4px 10px;
  margin-right: 6px; background: #fff; color: #111; cursor: pointer; font-size: 14px; }
.approval button.approve { background: var(--accent); border-color: var(--accent); color: #fff; }
form { display: flex; gap: 8px; padding: 10px; border-top: 1px solid #e3e6ea; }
textarea { flex: 1; resize: none; border: 1px solid #c6cbd2; border-radius: 8px; padding: 8px;
  font-size: 15px; min-height: 40px; max-height: 120px; color: #111; background: #fff; }
form button { border: 0; border-radius: 8px; padding: 0 14px; background: var(--accent);
  color: #fff; font-weight: 600; cursor: pointer; }
form button:disabled { opacity: .5; cursor: default; }
.hidden-label { position: absolute; width: 1px; height: 1px; overflow: hidden;
  clip: rect(0 0 0 0); white-space: nowrap; }
@media (prefers-reduced-motion: no-preference) { .panel { transition: opacity .15s; } }
`;

  const make = (tag, props = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props)) {
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value);
    }
    node.append(...children);
    return node;
  };

  // A speech bubble, drawn: no emoji font or image needed.
  function icon() {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "26");
    svg.setAttribute("height", "26");
    svg.setAttribute("aria-hidden", "true");
    const path = document.createElementNS(ns, "path");
    path.setAttribute("fill", "currentColor");
    path.setAttribute("d", "M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z");
    svg.append(path);
    return svg;
  }

  function mount() {
    const host = make("div", { "data-headend-widget": agent });
    const root = host.attachShadow({ mode: "open" });
    try {
      const sheet = new CSSStyleSheet(); // not an inline <style>: fine under a strict CSP
      sheet.replaceSync(css);
      root.adoptedStyleSheets = [sheet];
    } catch (_) {
      root.append(make("style", { text: css }));
    }
    const ids = Math.random().toString(36).slice(2);
    const launcher = make("button", {
      class: "launcher",
      type: "button",
      "aria-label": `Open chat: ${title}`,
      "aria-expanded": "false",
      "aria-controls": `panel-${ids}`,
    });
    launcher.append(icon());
    const heading = make("h2", { id: `title-${ids}`, text: title });
    const fresh = make("button", { type: "button", text: "New chat" });
    const close = make("button", { type: "button", "aria-label": "Close chat", text: "✕" });
    const log = make("div", { class: "log", role: "log", "aria-live": "polite" });
    const input = make("textarea", {
      id: `input-${ids}`,
      rows: "1",
      placeholder: cfg.placeholder || "Type a message…",
    });
    const label = make("label", { class: "hidden-label", for: `input-${ids}`, text: "Message" });
    const send = make("button", { type: "submit", text: "Send" });
    const form = make("form", {}, label, input, send);
    const panel = make(
      "div",
      { class: "panel", id: `panel-${ids}`, role: "dialog", "aria-labelledby": `title-${ids}` },
      make("header", {}, heading, fresh, close),
      log,
      form,
    );
    panel.hidden = true;
    root.append(launcher, panel);
    document.body.append(host);

    const message = (role, text) => make("div", { class: `msg ${role}`, text });
    const bubble = (role, text) => {
      const node = message(role, text);
      log.append(node);
      log.scrollTop = log.scrollHeight;
      return node;
    };
    const notice = (error) => {
      const node = bubble("notice", error.message || String(error));
      node.setAttribute("role", "alert");
    };
    const greet = () => {
      if (cfg.greeting) bubble("assistant", cfg.greeting);
    };
    // A call that waits: the tool, its arguments as they would run, Approve and Deny.
    const card = (request) => {
      let shown = request.arguments;
      try {
        shown = JSON.stringify(JSON.parse(request.arguments), null, 2);
      } catch (_) {
        /* shown as sent */
      }
      const approve = make("button", { type: "button", class: "approve", text: "Approve" });
      const deny = make("button", { type: "button", text: "Deny" });
      const choices = make("div", {}, approve, deny);
      const node = make(
        "div",
        { class: "approval", role: "group", "aria-label": `Approval needed: ${request.name}` },
        make("p", { text: `Waiting for your approval: ${request.name}` }),
        make("pre", { text: shown }),
        choices,
      );
      const decide = async (yes) => {
        approve.disabled = deny.disabled = true;
        try {
          await answerApproval(request.id, yes);
          choices.replaceWith(
            make("p", {
              text: `${yes ? "Approved" : "Denied"}: send your next message to go on.`,
            }),
          );
          input.focus();
        } catch (error) {
          approve.disabled = deny.disabled = false;
          notice(error);
        }
      };
      approve.addEventListener("click", () => decide(true));
      deny.addEventListener("click", () => decide(false));
      log.append(node);
      log.scrollTop = log.scrollHeight;
    };

    let loaded = false;
    async function load() {
      if (loaded) return;
      loaded = true;
      try {
        const found = await history();
        if (found.session_id) keep({ session: found.session_id });
        // What came before goes above anything the visitor sent while it loaded.
        const earlier = found.messages.map((said) => message(said.role, said.content));
        if (!earlier.length && cfg.greeting) earlier.push(message("assistant", cfg.greeting));
        log.prepend(...earlier);
        log.scrollTop = log.scrollHeight;
        for (const request of found.approvals || []) card(request);
      } catch (error) {
        loaded = false;
        notice(error);
      }
    }

    function open() {
      panel.hidden = false;
      launcher.setAttribute("aria-expanded", "true");
      launcher.setAttribute("aria-label", `Close chat: ${title}`);
      input.focus();
      load();
    }
    function shut() {
      panel.hidden = true;
      launcher.setAttribute("aria-expanded", "false");
      launcher.setAttribute("aria-label", `Open chat: ${title}`);
      launcher.focus();
    }

    launcher.addEventListener("click", () => (panel.hidden ? open() : shut()));
    close.addEventListener("click", shut);
    panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        shut();
      }
    });
    fresh.addEventListener("click", () => {
      keep({ session: null });
      log.replaceChildren();
      greet();
      input.focus();
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = input.value.trim();
      if (!text || send.disabled) return;
      input.value = "";
      send.disabled = true;
      bubble("user", text);
      const answer = bubble("assistant", "");
      answer.setAttribute("aria-busy", "true");
      try {
        const waiting = [];
        await ask(
          text,
          (piece) => {
            answer.textContent += piece;
            log.scrollTop = log.scrollHeight;
          },
          (requests) => waiting.push(...requests),
        );
        if (!answer.textContent) answer.remove();
        for (const request of waiting) card(request);
      } catch (error) {
        if (!answer.textContent) answer.remove();
        notice(error);
      } finally {
        answer.removeAttribute("aria-busy");
        send.disabled = false;
        input.focus();
      }
    });
  }

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
