// The polyglot demo page: fetches the modules pf built at /wasm/<language>/<file>, calls
// their exports, and builds a missing module through the API (POST /api/build/<language>),
// following the build until it is done. Plain ES module, no build step.

import { api, connectEvents, connectionBanner, formatBytes, h } from "/_pf/common.js";
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
  if (end < 0) throw new Error("greet's reply has no terminating NUL");
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
let trapReturn = null; // the element that had focus when the overlay opened

function showTrap(where, error) {
  trapOverlay.querySelector("[data-role=message]").textContent = `${where}: ${error.message}`;
  trapReturn = document.activeElement;
  trapOverlay.hidden = false;
  trapOverlay.focus();
}

function closeTrap() {
  trapOverlay.hidden = true;
  trapReturn?.focus();
  trapReturn = null;
}

trapOverlay.tabIndex = -1;
trapOverlay.addEventListener("click", closeTrap);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !trapOverlay.hidden) closeTrap();
});

/** Whether pf serve has `name` of `language` at /wasm/<language>/<name> (GET /api/modules). */
async function isBuilt(language, name) {
  const { modules } = await api("GET", "/api/modules");
  const entry = modules.find((m) => m.language === language);
  return Boolean(entry && entry.files.some((f) => f.name === name));
}

/**
 * One language's card: loads its module, wires its forms, offers a build when the module
 * is missing, and follows any build of it (started here or elsewhere) to reload the module.
 */
class Section {
  constructor(node) {
    this.node = node;
    this.language = node.dataset.language;
    this.url = `/wasm/${this.language}/${node.dataset.file}`;
    this.state = node.querySelector("[data-role=state]");
    this.missing = node.querySelector("[data-role=missing]");
    this.progress = h("progress", { max: 100, value: 0 });
    this.buildStatus = h("span", { class: "muted", "data-role": "build-status" });
    this.buildLine = h("div", { class: "build-line row", hidden: true });
    this.buildLine.append(this.progress, this.buildStatus);
    this.missing.before(this.buildLine);
    this.loaded = null;
    this.loadedText = "";
    this.loading = Promise.resolve();
    this.tracking = null; // the build being followed: the newest one wins
    for (const form of node.querySelectorAll("form.call")) {
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        this.call(form);
      });
    }
  }

  get isMissing() {
    return this.node.dataset.state === "missing";
  }

  setState(text, kind) {
    this.state.textContent = text;
    this.state.className = `module-state status status-${kind}`;
  }

  enable(on) {
    for (const button of this.node.querySelectorAll("form.call button")) button.disabled = !on;
  }

  /** (Re)loads the module; loads asked for while one runs happen after it, in order. */
  load() {
    this.loading = this.loading
      .then(() => this.fetchModule())
      .catch((error) => this.unavailable(`Loading ${this.url} failed: ${error}.`, "failed"));
    return this.loading;
  }

  async fetchModule() {
    this.node.dataset.state = "loading";
    if (!this.loaded) this.setState("loading…", "queued");
    let response;
    try {
      // Asking first keeps a missing module from costing a 404 (a console error).
      if (!(await isBuilt(this.language, this.url.split("/").pop()))) {
        this.loaded = null;
        this.unavailable(`${this.url} has not been built yet.`);
        return;
      }
      response = await fetch(this.url, { cache: "no-cache" });
    } catch (error) {
      this.unavailable(`pf serve did not answer (${error.message}).`, "server unreachable");
      return;
    }
    if (response.status === 404) {
      this.loaded = null;
      this.unavailable(`${this.url} has not been built yet.`);
      return;
    }
    try {
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const bytes = await response.arrayBuffer();
      this.loaded = new LoadedModule(await WebAssembly.compile(bytes));
      this.loadedText = `loaded · ${formatBytes(bytes.byteLength)}`;
    } catch (error) {
      this.loaded = null;
      this.unavailable(`The module at ${this.url} could not be loaded: ${error.message}.`);
      return;
    }
    this.node.dataset.state = "loaded";
    this.missing.hidden = true;
    this.setState(this.loadedText, "completed");
    this.enable(true);
    updateBuildAll();
  }

  /** No usable module: says why and how to build it, with a button that does. */
  unavailable(reason, label = "not built") {
    this.node.dataset.state = "missing";
    this.setState(label, "cancelled");
    this.enable(false);
    const button = h(
      "button",
      { class: "primary", type: "button", "data-role": "build", disabled: this.tracking !== null },
      `Build ${NAMES[this.language]}`,
    );
    button.addEventListener("click", () => this.build());
    this.missing.replaceChildren(
      h("p", {}, reason),
      h(
        "p",
        {},
        "Build it with ",
        h("code", {}, "pf build demos/polyglot"),
        " (every language) or ",
        h("code", {}, `pf web-build-${this.language}`),
        " (this one), or here:",
      ),
      button,
    );
    this.missing.hidden = false;
    updateBuildAll();
  }

  async build() {
    this.setBuilding(true);
    this.buildStatus.textContent = "asking pf serve…";
    try {
      const answer = await api("POST", `/api/build/${this.language}`, { target: "wasm" });
      await this.track(answer.buildId);
    } catch (error) {
      this.buildFailed(`build request failed: ${error.message}`);
    }
  }

  setBuilding(on) {
    this.buildLine.hidden = !on;
    this.progress.hidden = !on;
    for (const button of this.node.querySelectorAll("[data-role=build]")) button.disabled = on;
  }

  /** Follows a build of this module until it ends, then loads what it built. */
  async track(buildId) {
    if (this.tracking === buildId) return;
    this.tracking = buildId;
    this.setBuilding(true);
    this.progress.value = 0;
    let record;
    try {
      record = await follow(
        buildId,
        (current) => {
          const percent = current.progress || 0;
          this.progress.value = percent;
          this.buildStatus.textContent = `build ${current.status} · ${percent}%`;
          if (!this.loaded) this.setState(`building · ${percent}%`, "running");
        },
        () => this.tracking === buildId,
      );
    } catch (error) {
      if (this.tracking === buildId) this.buildFailed(`Lost track of the build: ${error.message}`);
      return;
    }
    if (this.tracking !== buildId) return; // a newer build took over
    this.tracking = null;
    if (record.status === "completed") {
      this.setBuilding(false);
      await this.load();
    } else {
      this.buildFailed(
        `Build ${record.status}: ${record.error || "no error message"} — `,
        h("a", { href: `/dashboard#build=${buildId}` }, "see its log on the dashboard"),
      );
    }
  }

  buildFailed(...message) {
    this.tracking = null;
    this.setBuilding(false);
    this.buildLine.hidden = false;
    this.progress.hidden = true;
    this.buildStatus.replaceChildren(...message);
    if (this.loaded) this.setState(this.loadedText, "completed");
    else this.setState("build failed", "failed");
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

/**
 * Polls a build until it finishes; `onChange(record)` sees every state on the way.
 * Stops early (answering null) once `wanted()` turns false.
 */
async function follow(buildId, onChange, wanted = () => true) {
  for (;;) {
    const record = await api("GET", `/api/builds/${encodeURIComponent(buildId)}`);
    if (!wanted()) return null;
    onChange(record);
    if (FINISHED.has(record.status)) return record;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

const sections = new Map(
  [...document.querySelectorAll("section.lang")].map((node) => {
    const section = new Section(node);
    return [section.language, section];
  }),
);

// "Build all": offered while any module is missing.
const buildAllBox = document.getElementById("build-all");
const buildAllButton = buildAllBox.querySelector("button");

function updateBuildAll() {
  buildAllBox.hidden = ![...sections.values()].some((section) => section.isMissing);
}

buildAllButton.addEventListener("click", async () => {
  buildAllButton.disabled = true;
  const status = buildAllBox.querySelector("[data-role=status]");
  try {
    const answer = await api("POST", "/api/build/all", { target: "wasm" });
    status.textContent = `${answer.buildIds.length} builds queued`;
    await Promise.all(
      answer.buildIds.map(async (id) => {
        const record = await api("GET", `/api/builds/${encodeURIComponent(id)}`);
        await sections.get(record.language)?.track(id);
      }),
    );
    status.textContent = "";
  } catch (error) {
    status.textContent = `build request failed: ${error.message}`;
  } finally {
    buildAllButton.disabled = false;
  }
});

// Builds started elsewhere (the dashboard, another tab) are followed too: the page
// reloads a module when a build of it completes.
function isDemoBuild(build) {
  return build.target === "wasm" && Boolean(build.project) && sections.has(build.language);
}

function onMessage(message) {
  if (message.type === "initial_status") {
    // After a (re)connection: builds that ran or finished while the page was not listening.
    for (const build of message.builds.filter(isDemoBuild)) {
      const section = sections.get(build.language);
      if (!FINISHED.has(build.status)) section.track(build.buildId);
      else if (build.status === "completed" && section.isMissing) section.load();
    }
  } else if (message.type === "build_started" && isDemoBuild(message)) {
    sections.get(message.language).track(message.buildId);
  }
}

for (const section of sections.values()) section.load();
connectEvents({ onMessage, onState: connectionBanner() });
