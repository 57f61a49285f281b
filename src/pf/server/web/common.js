// Shared by pf's pages (dashboard, playground, the demo page): the REST client, the
// WebSocket event stream with reconnection, a DOM helper and formatters. Plain ES module,
// no build step: the browser loads it as /_pf/common.js.

/** An error answered by the API: `status` is the HTTP status, `message` its JSON `error`. */
export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.body = body;
  }
}

/**
 * Calls the pf API and returns the decoded JSON answer.
 * `api("GET", "/api/status")`, `api("POST", "/api/build/c", {target: "wasm"})`.
 * Throws ApiError with the server's `error` message for a non-2xx answer.
 */
export async function api(method, path, body) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { error: text };
    }
  }
  if (!response.ok) {
    if (response.status === 401 && path !== "/api/session") showSignIn();
    const message = (data && data.error) || `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message, data);
  }
  return data;
}

/**
 * Follows the server's WebSocket events (docs/server.md), reconnecting with exponential backoff
 * (0.5 s doubling to 10 s, with jitter) whenever the connection drops.
 *
 * Asks for batches (`?batch=1`): pf's pages unpack them, where the original's pages
 * need one message per event. onMessage(message) gets every message, a `batch` already
 * unpacked into its updates;
 * after each (re)connection the server's first message is `initial_status`, which is
 * where a page resynchronises. onState(state, detail) gets "connecting", "open" or
 * "closed" (detail: seconds until the next attempt). Returns {send(obj), close()}.
 */
export function connectEvents({ onMessage, onState = () => {}, path = "/ws" }) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${location.host}${path}?batch=1`;
  let socket = null;
  let delay = 500;
  let timer = null;
  let stopped = false;
  const pending = [];

  function open() {
    onState("connecting");
    socket = new WebSocket(url);
    socket.addEventListener("open", () => {
      delay = 500;
      onState("open");
      while (pending.length) socket.send(pending.shift());
    });
    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return; // not ours: the contract only sends JSON objects
      }
      if (message.type === "batch" && Array.isArray(message.updates)) {
        for (const update of message.updates) onMessage(update);
      } else {
        onMessage(message);
      }
    });
    socket.addEventListener("close", () => {
      socket = null;
      if (stopped) return;
      const wait = Math.min(delay, 10_000) * (0.8 + Math.random() * 0.4);
      delay = Math.min(delay * 2, 10_000);
      onState("closed", Math.round(wait / 1000));
      timer = setTimeout(open, wait);
    });
  }

  open();
  return {
    send(obj) {
      const text = JSON.stringify(obj);
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(text);
      else if (pending.length < 100) pending.push(text);
    },
    close() {
      stopped = true;
      clearTimeout(timer);
      if (socket) socket.close();
    },
  };
}

/**
 * Shows the connection state in a banner at the top of the page; pass it as onState.
 * The banner is hidden while connected.
 */
export function connectionBanner() {
  const banner = h("div", { class: "pf-banner", role: "status", hidden: true });
  document.body.prepend(banner);
  return (state, seconds) => {
    banner.dataset.state = state;
    if (state === "open") {
      banner.hidden = true;
      banner.textContent = "";
    } else if (state === "closed") {
      banner.hidden = false;
      banner.textContent = `Connection to pf serve lost — reconnecting in ${seconds} s…`;
    } else if (!banner.hidden) {
      banner.textContent = "Reconnecting to pf serve…";
    }
  };
}

/**
 * Creates an element: h("a", {href: "/x", class: "link"}, "text", childNode).
 * Attributes starting with "on" are event listeners; `hidden: true` and other booleans
 * set or omit the attribute; null/undefined children are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (value === true) {
      node.setAttribute(key, "");
    } else {
      node.setAttribute(key, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** 1536 -> "1.5 KiB". */
export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** 1234 -> "1.23 s", 12 -> "12 ms". */
export function formatMs(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

// Sign-in ------------------------------------------------------------------------------
// Once pf serve has tokens, the API answers 401 until the page signs in: the token is
// exchanged for an HttpOnly session cookie (POST /api/session), which the browser then
// sends with every request and WebSocket handshake. The token itself is never stored.

let signInShown = false;

/** Shows the sign-in form (once per page): token -> POST /api/session -> reload. */
export function showSignIn() {
  if (signInShown) return;
  signInShown = true;
  const input = h("input", {
    type: "password", name: "token", id: "pf-token", autocomplete: "off",
    spellcheck: "false", placeholder: "pf_…", required: true, "aria-label": "API token",
  });
  const message = h("p", { class: "pf-signin-message", role: "alert" });
  const form = h(
    "form",
    { class: "pf-signin card", id: "pf-signin" },
    h("h2", {}, "Sign in"),
    h("p", { class: "muted" }, "This pf serve needs a token (pf token create NAME --scope read)."),
    input,
    h("button", { type: "submit", class: "primary" }, "Sign in"),
    message,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.textContent = "";
    try {
      await api("POST", "/api/session", { token: input.value.trim() });
      location.reload();
    } catch (error) {
      message.textContent = error.status === 401 ? "That token is unknown or revoked." : error.message;
    }
  });
  document.body.prepend(form);
  input.focus();
}

/**
 * Puts "signed in as NAME · Sign out" in the page's nav when a session is active, and
 * the sign-in form when the API wants a token and the page has none.
 */
export async function sessionControls() {
  let state;
  try {
    state = await api("GET", "/api/session");
  } catch {
    return; // the server is away: the connection banner says so
  }
  const nav = document.querySelector(".pf-nav");
  if (state.authenticated && nav) {
    const out = h("a", { href: "#", id: "pf-signout" }, "Sign out");
    out.addEventListener("click", async (event) => {
      event.preventDefault();
      await api("DELETE", "/api/session");
      location.reload();
    });
    nav.append(h("span", { class: "pf-user muted" }, `${state.name} (${state.scope})`), out);
  } else if (state.authRequired && !state.authenticated) {
    showSignIn();
  }
}
