// The polyglot demo page: fetches the modules pf built at /wasm/<language>/<file>, calls
// their exports, and builds a missing module through the API (POST /api/build/<language>),
// following the build until it is done. Plain ES module, no build step.

import { api, formatBytes, h } from "/_pf/common.js";
import { Wasi } from "/_pf/wasi.js";

const FINISHED = new Set(["completed", "failed", "cancelled"]);
const POLL_MS = 400;
const NAMES = { rust: "Rust", c: "C", fortran: "Fortran", wat: "WAT" };

/** What each form of a section does with the module: returns the text to show. */
const CALLS = {
  rust: {
    add: (mod, f) => mod.exports.add(int(f.a), int(f.b)),
    fibonacci: (mod, f) => mod.exports.fibonacci(int(f.n)) >>> 0,
    greet: (mod, f) => greet(mod.exports, f.namedItem("name").value),
  },
  wat: {
    add: (mod, f) => mod.exports.add(int(f.a), int(f.b)),
  },
  c: {
    add: (mod, f) => mod.exports.add(int(f.a), int(f.b)),
    checked_div: (mod, f) => mod.exports.checked_div(int(f.a), int(f.b)),
    trap_now: (mod) => mod.exports.trap_now(),
  },
  fortran: {
    _start: (mod, f, section) => runCommand(mod, section),
    fact: (mod, f) => mod.fresh().exports.fact(int(f.n)),
  },
};

/** An integer argument from a form field; anything else is the user's mistake. */
function int(field) {
  const value = Number(field.value);
  if (field.value.trim() === "" || !Number.isInteger(value)) {
    throw new UsageError(`${field.getAttribute("aria-label")} must be an integer`);
  }
  return value;
}

class UsageError extends Error {}

/**
 * Rust's greet(name): the name goes into a buffer from alloc, the NUL-terminated reply is
 * read at the returned pointer, and both buffers are given back with dealloc.
 */
function greet(exports, name) {
  const bytes = new TextEncoder().encode(name);
  const input = bytes.length ? exports.alloc(bytes.length) >>> 0 : 0;
  if (bytes.length && !input) throw new Error("alloc returned null");
  new Uint8Array(exports.memory.buffer, input, bytes.length).set(bytes);
  const reply = exports.greet(input, bytes.length) >>> 0;
  if (input) exports.dealloc(input, bytes.length);
  if (!reply) throw new Error("greet returned null");
  // Read the memory only now: the calls above may have grown (and so replaced) its buffer.
  const memory = new Uint8Array(exports.memory.buffer);
  const end = memory.indexOf(0, reply);
  const text = new TextDecoder().decode(memory.subarray(reply, end));
  exports.dealloc(reply, end - reply + 1);
  return text;
}

/** Runs a WASI command in a fresh instance and shows what it printed. */
function runCommand(mod, section) {
  const wasi = new Wasi();
  const instance = new WebAssembly.Instance(mod.module, wasi.imports(mod.module));
  const code = wasi.start(instance);
  const out = section.querySelector("[data-role=stdout]");
  out.hidden = false;
  out.textContent = wasi.stdout + wasi.stderr;
  return `exit code ${code}`;
}

/** A compiled module and its instance (reactors are initialised once, here). */
class LoadedModule {
  constructor(module) {
    this.module = module;
    this.exports = WebAssembly.Module.exports(module).some((e) => e.name === "_start")
      ? null
      : this.fresh().exports;
  }

  fresh() {
    const wasi = new Wasi();
    const instance = new WebAssembly.Instance(this.module, wasi.imports(this.module));
    wasi.initialize(instance);
    return instance;
  }
}

const trapOverlay = document.getElementById("trap");

function showTrap(where, error) {
  trapOverlay.querySelector("[data-role=message]").textContent = `${where}: ${error.message}`;
  trapOverlay.hidden = false;
  trapOverlay.focus();
}

function closeTrap() {
  trapOverlay.hidden = true;
}

trapOverlay.tabIndex = -1;
trapOverlay.addEventListener("click", closeTrap);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !trapOverlay.hidden) closeTrap();
});

/** One language's card: loads its module, wires its forms, offers a build when missing. */
class Section {
  constructor(node) {
    this.node = node;
    this.language = node.dataset.language;
    this.url = `/wasm/${this.language}/${node.dataset.file}`;
    this.state = node.querySelector("[data-role=state]");
    this.missing = node.querySelector("[data-role=missing]");
    this.forms = [...node.querySelectorAll("form.call")];
    this.loaded = null;
    for (const form of this.forms) {
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        this.call(form);
      });
    }
  }

  setState(text, kind) {
    this.state.textContent = text;
    this.state.className = `module-state status status-${kind}`;
    this.node.dataset.state = kind;
  }

  enable(on) {
    for (const button of this.node.querySelectorAll("form.call button")) button.disabled = !on;
  }

  async load() {
    this.setState("loading…", "queued");
    this.enable(false);
    let response;
    try {
      response = await fetch(this.url, { cache: "no-cache" });
    } catch (error) {
      this.setState("server unreachable", "failed");
      return;
    }
    if (response.status === 404) {
      this.showMissing();
      return;
    }
    try {
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const bytes = await response.arrayBuffer();
      this.loaded = new LoadedModule(await WebAssembly.compile(bytes));
      this.missing.hidden = true;
      this.setState(`loaded · ${formatBytes(bytes.byteLength)}`, "completed");
      this.enable(true);
    } catch (error) {
      this.setState("failed to load", "failed");
      this.showMissing(`The module at ${this.url} could not be loaded: ${error.message}.`);
    }
  }

  showMissing(reason) {
    this.setState("not built", "cancelled");
    const button = h("button", { class: "primary", type: "button", "data-role": "build" });
    button.textContent = `Build ${NAMES[this.language]}`;
    button.addEventListener("click", () => this.build(button));
    this.missing.replaceChildren(
      h("p", {}, reason || `${this.url} has not been built yet.`),
      h(
        "p",
        {},
        "Build it with ",
        h("code", {}, "pf build demos/polyglot"),
        " (every language) or ",
        h("code", {}, `pf web-build-${this.language}`),
        " (this one), or here:",
      ),
      h(
        "div",
        { class: "row" },
        button,
        h("progress", { max: 100, value: 0, hidden: true }),
        h("span", { class: "muted", "data-role": "build-status" }),
      ),
    );
    this.missing.hidden = false;
  }

  async build(button) {
    const progress = this.missing.querySelector("progress");
    const status = this.missing.querySelector("[data-role=build-status]");
    button.disabled = true;
    progress.hidden = false;
    progress.value = 0;
    status.textContent = "queued…";
    let record;
    try {
      const answer = await api("POST", `/api/build/${this.language}`, { target: "wasm" });
      record = await follow(answer.buildId, (current) => {
        progress.value = current.progress || 0;
        status.textContent = `${current.status}…`;
        this.setState(`building · ${current.progress || 0}%`, "running");
      });
    } catch (error) {
      status.textContent = `build request failed: ${error.message}`;
      this.setState("not built", "failed");
      button.disabled = false;
      return;
    }
    if (record.status === "completed") {
      await this.load();
      return;
    }
    progress.hidden = true;
    button.disabled = false;
    this.setState(`build ${record.status}`, "failed");
    status.replaceChildren(
      `Build ${record.status}: ${record.error || "no error message"} — `,
      h("a", { href: `/dashboard#build=${record.buildId}` }, "see its log on the dashboard"),
    );
  }

  call(form) {
    const output = form.querySelector("[data-role=result]");
    const name = form.dataset.call;
    output.className = "";
    try {
      const value = CALLS[this.language][name](this.loaded, form.elements, this.node);
      output.textContent = `= ${value}`;
      output.classList.add("ok");
    } catch (error) {
      output.classList.add("fail");
      if (error instanceof WebAssembly.RuntimeError) {
        output.textContent = `trap: ${error.message}`;
        showTrap(`${NAMES[this.language]} ${name}`, error);
      } else {
        output.textContent = error instanceof UsageError ? error.message : `error: ${error}`;
      }
    }
  }
}

/** Polls a build until it finishes; `onChange(record)` sees every state on the way. */
async function follow(buildId, onChange) {
  for (;;) {
    const record = await api("GET", `/api/builds/${encodeURIComponent(buildId)}`);
    onChange(record);
    if (FINISHED.has(record.status)) return record;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

for (const node of document.querySelectorAll("section.lang")) {
  new Section(node).load();
}
