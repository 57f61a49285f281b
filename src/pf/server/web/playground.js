// The compile playground: sources typed here go to POST /api/compile; the build is
// followed to its end, its diagnostics are placed at their lines in the editor, and its
// output is shown: callable exports for wasm, the text for LLVM IR and asm.js.
// Plain ES module, no build step.

import { api, formatBytes, formatMs, h, sessionControls } from "/_pf/common.js";
import { Wasi } from "/_pf/wasi.js";

const FINISHED = new Set(["completed", "failed", "cancelled"]);
const POLL_MS = 300;
const LINE_HEIGHT = 20; // px; the editor's CSS uses the same value
const TAB = 4;

const FILES = { c: "main.c", rust: "lib.rs", fortran: "main.f90", wat: "main.wat" };

const EXAMPLES = {
  c: `/* Every function is exported: compile to wasm and call them on the right. */
int add(int a, int b) {
    return a + b;
}

int square(int x) {
    return x * x;
}

/* Traps (wasm "unreachable") when b is 0. */
int checked_div(int a, int b) {
    if (b == 0) {
        __builtin_trap();
    }
    return a / b;
}
`,
  rust: `// #[no_mangle] pub extern "C" functions become the module's exports.
#[no_mangle]
pub extern "C" fn add(a: i32, b: i32) -> i32 {
    a.wrapping_add(b)
}

/// fibonacci(90) still fits: u64 crosses to JavaScript as a BigInt.
#[no_mangle]
pub extern "C" fn fibonacci(n: u32) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        (a, b) = (b, a.wrapping_add(b));
    }
    a
}
`,
  fortran: `! bind(C) functions are exported; the program runs as a WASI command (_start).
module playground
  use iso_c_binding
  implicit none
contains
  integer(c_int) function fact(n) bind(C, name="fact")
    integer(c_int), value :: n
    integer(c_int) :: i
    fact = 1
    do i = 2, n
      fact = fact * i
    end do
  end function fact
end module playground

program main
  use playground
  implicit none
  print *, "Hello from Fortran: fact(10) =", fact(10)
end program main
`,
  wat: `;; A hand-written module: div traps on division by zero.
(module
  (func (export "add") (param $a i32) (param $b i32) (result i32)
    local.get $a
    local.get $b
    i32.add)
  (func (export "div") (param $a i32) (param $b i32) (result i32)
    local.get $a
    local.get $b
    i32.div_s))
`,
};

const $ = (id) => document.getElementById(id);
const form = $("controls");
const source = $("source");
const editor = $("editor");
const gutter = editor.querySelector(".gutter-lines");
const highlights = editor.querySelector(".highlights");
const messages = editor.querySelector(".messages");

/** The browser's storage, or null where a privacy setting turns it off. */
function storage() {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}
const STORED = "pf.playground";

/** The text per language (kept across language switches and reloads) and the language. */
const saved = JSON.parse(storage()?.getItem(STORED) ?? "{}");
const drafts = { ...EXAMPLES, ...saved.drafts };
if (FILES[saved.language]) form.elements.language.value = saved.language;
let language = form.elements.language.value;

function save() {
  storage()?.setItem(STORED, JSON.stringify({ language, drafts }));
}
let diagnostics = [];
let generation = 0; // a newer compile makes an older one's answers stale

// ---- the editor: line numbers, diagnostics at their lines, scroll sync ----

function lineCount() {
  return source.value.split("\n").length;
}

/** Columns a line occupies on screen (tabs expanded), for placing a message after it. */
function width(line) {
  let column = 0;
  for (const char of line) column = char === "\t" ? column + TAB - (column % TAB) : column + 1;
  return column;
}

function renderGutter() {
  const marks = new Map();
  for (const d of diagnostics) {
    const worst = marks.get(d.line);
    if (!worst || worst.severity !== "error") marks.set(d.line, d);
  }
  const rows = [];
  for (let line = 1; line <= lineCount(); line += 1) {
    const mark = marks.get(line);
    rows.push(
      h(
        "div",
        {
          "data-line": line,
          class: mark ? `mark ${severityClass(mark.severity)}` : null,
          title: mark ? `${mark.severity}: ${mark.message}` : null,
        },
        String(line),
      ),
    );
  }
  gutter.replaceChildren(...rows);
}

function severityClass(severity) {
  return severity === "error" || severity === "fatal" ? "error" : "warning";
}

/** Highlights each diagnostic's line and writes its message after the line's end. */
function renderDiagnosticsInEditor() {
  const lines = source.value.split("\n");
  const byLine = new Map();
  for (const d of diagnostics) {
    if (d.line >= 1 && d.line <= lines.length) {
      (byLine.get(d.line) ?? byLine.set(d.line, []).get(d.line)).push(d);
    }
  }
  const bands = [];
  const notes = [];
  for (const [line, list] of byLine) {
    const kind = list.some((d) => severityClass(d.severity) === "error") ? "error" : "warning";
    const top = `${(line - 1) * LINE_HEIGHT}px`;
    bands.push(h("div", { class: `band ${kind}`, "data-line": line, style: `top:${top}` }));
    const text = list.map((d) => d.message).join(" · ");
    notes.push(
      h(
        "div",
        {
          class: `note ${kind}`,
          "data-line": line,
          style: `top:${top};left:${width(lines[line - 1]) + 3}ch`,
        },
        text,
      ),
    );
  }
  highlights.replaceChildren(...bands);
  messages.replaceChildren(...notes);
  syncScroll();
}

function syncScroll() {
  const y = -source.scrollTop;
  gutter.style.transform = `translateY(${y}px)`;
  highlights.style.transform = `translateY(${y}px)`;
  messages.style.transform = `translate(${-source.scrollLeft}px, ${y}px)`;
}

function showCursor() {
  const before = source.value.slice(0, source.selectionStart).split("\n");
  $("cursor").textContent = `line ${before.length}, column ${before.at(-1).length + 1}`;
}

/** Puts the caret at line:col and scrolls it into view. */
function goTo(line, col = 1) {
  const lines = source.value.split("\n");
  let offset = 0;
  for (let i = 0; i < Math.min(line - 1, lines.length); i += 1) offset += lines[i].length + 1;
  offset += Math.max(0, Math.min(col - 1, (lines[line - 1] ?? "").length));
  source.focus();
  source.setSelectionRange(offset, offset);
  source.scrollTop = Math.max(0, (line - 3) * LINE_HEIGHT);
  syncScroll();
  showCursor();
}

source.addEventListener("input", () => {
  drafts[language] = source.value;
  save();
  renderGutter();
  renderDiagnosticsInEditor();
});
source.addEventListener("scroll", syncScroll);
for (const event of ["keyup", "click", "select"]) source.addEventListener(event, showCursor);
// Tab indents (to the next multiple of TAB columns); Escape, then Tab, leaves the editor,
// so keyboard users are never trapped in it.
let tabLeaves = false;
source.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    form.requestSubmit();
  } else if (event.key === "Tab" && !event.shiftKey && !tabLeaves && !modified(event)) {
    event.preventDefault();
    const start = source.value.lastIndexOf("\n", source.selectionStart - 1) + 1;
    const column = width(source.value.slice(start, source.selectionStart));
    insert(" ".repeat(TAB - (column % TAB)));
  }
  tabLeaves = event.key === "Escape";
});

function modified(event) {
  return event.ctrlKey || event.metaKey || event.altKey;
}

/** Types `text` at the caret as the user would, so undo still works. */
function insert(text) {
  if (!document.execCommand("insertText", false, text)) {
    source.setRangeText(text, source.selectionStart, source.selectionEnd, "end");
    source.dispatchEvent(new Event("input"));
  }
}

function setSource(text) {
  source.value = text;
  diagnostics = [];
  renderGutter();
  renderDiagnosticsInEditor();
  showCursor();
}

// ---- the controls ----

form.elements.language.addEventListener("change", () => {
  language = form.elements.language.value;
  save();
  $("file-name").textContent = FILES[language];
  setSource(drafts[language]);
  markToolchains();
});

$("reset-example").addEventListener("click", () => {
  drafts[language] = EXAMPLES[language];
  save();
  setSource(EXAMPLES[language]);
});

let toolchains = null;

/** Disables the targets no installed toolchain serves for the chosen language. */
function markToolchains() {
  if (!toolchains) return;
  for (const option of form.elements.target.options) {
    const entry = toolchains[language]?.[option.value];
    const missing = entry && entry.available === false;
    option.disabled = Boolean(missing);
    option.title = missing ? entry.reason || entry.install || "no toolchain installed" : "";
  }
}

api("GET", "/api/system").then(
  (system) => {
    toolchains = system.toolchains;
    markToolchains();
  },
  (error) => message(`Could not ask pf serve which toolchains it has: ${error.message}`, "fail"),
);

function options() {
  const f = form.elements;
  const chosen = { opt_level: f.opt_level.value, debug: f.debug.checked };
  const exports = f.exports.value.split(",").map((s) => s.trim()).filter(Boolean);
  if (exports.length) chosen.exports = exports;
  if (f.passes.value.trim()) chosen.passes = f.passes.value.trim();
  return chosen;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  compile();
});

// ---- compiling and following the build ----

function setStatus(status, text = status) {
  const node = $("status");
  node.className = `status status-${status}`;
  node.textContent = text;
}

function message(text, kind = "") {
  const node = $("message");
  node.hidden = !text;
  node.className = `message ${kind}`;
  node.replaceChildren(...[].concat(text || []));
}

function clearResult() {
  for (const id of ["diagnostics", "artifacts", "exports", "text-output", "log"]) {
    $(id).hidden = true;
  }
  $("meta").textContent = "";
  message(null);
}

async function compile() {
  const mine = ++generation;
  const button = $("compile");
  const target = form.elements.target.value;
  button.disabled = true;
  clearResult();
  setStatus("queued", "compiling…");
  try {
    const answer = await api("POST", "/api/compile", {
      language,
      target,
      files: { [FILES[language]]: source.value },
      options: options(),
    });
    const record = await follow(answer.buildId, (current) => {
      if (mine === generation) setStatus(current.status, `${current.status}…`);
    });
    if (mine !== generation) return;
    await show(record, target);
  } catch (error) {
    if (mine !== generation) return;
    setStatus("failed", "not compiled");
    message(error.message, "fail");
  } finally {
    if (mine === generation) button.disabled = false;
  }
}

async function follow(buildId, onChange) {
  for (;;) {
    const record = await api("GET", `/api/builds/${encodeURIComponent(buildId)}`);
    onChange(record);
    if (FINISHED.has(record.status)) return record;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

async function show(record, target) {
  setStatus(record.status);
  const meta = [formatMs(record.duration)];
  if (record.cached) meta.push("cached");
  $("meta").replaceChildren(
    meta.join(" · "),
    " · ",
    h("a", { href: `/dashboard#build=${record.buildId}`, title: record.buildId }, "dashboard"),
  );
  diagnostics = (record.diagnostics || []).filter((d) => !d.file || d.file === FILES[language]);
  renderGutter();
  renderDiagnosticsInEditor();
  listDiagnostics(record.diagnostics || []);
  const log = await api("GET", `/api/logs/${encodeURIComponent(record.buildId)}`);
  showLog(log.logs, record.status !== "completed");
  if (record.status !== "completed") {
    message(record.error || `build ${record.status}`, "fail");
    return;
  }
  listArtifacts(record.artifacts);
  const wasm = record.artifacts.find((a) => a.kind === "wasm" || a.path.endsWith(".wasm"));
  if (target === "wasm" && wasm) {
    await showExports(wasm);
  } else if (record.artifacts.length) {
    await showText(record.artifacts[0]);
  }
}

function listDiagnostics(list) {
  const node = $("diagnostics");
  node.hidden = !list.length;
  node.replaceChildren(
    ...list.map((d) => {
      const where = `${d.file || FILES[language]}:${d.line}${d.col ? `:${d.col}` : ""}`;
      const jump = h("button", { type: "button", class: "link" }, where);
      jump.addEventListener("click", () => goTo(d.line, d.col));
      return h(
        "li",
        { class: severityClass(d.severity), "data-line": d.line },
        jump,
        " ",
        h("strong", {}, `${d.severity}:`),
        ` ${d.message}`,
      );
    }),
  );
}

function showLog(entries, open) {
  const details = $("log");
  const lines = entries.map((entry) =>
    h("div", { class: `log-${entry.stream || "stdout"}` }, entry.message),
  );
  details.querySelector("pre").replaceChildren(...lines);
  details.hidden = !lines.length;
  details.open = open;
}

function listArtifacts(artifacts) {
  const node = $("artifacts");
  node.hidden = !artifacts.length;
  node.replaceChildren(
    ...artifacts.map((a) =>
      h(
        "li",
        {},
        h("a", { href: a.url, download: a.path.split("/").pop() }, a.path),
        h("span", { class: "muted" }, ` ${formatBytes(a.size)}`),
      ),
    ),
  );
}

async function showText(artifact) {
  const response = await fetch(artifact.url);
  if (!response.ok) throw new Error(`${artifact.path}: HTTP ${response.status}`);
  const node = $("text-output");
  node.textContent = await response.text();
  node.hidden = false;
}

// ---- wasm: the exports, with their signatures, called with typed arguments ----

async function showExports(artifact) {
  const response = await fetch(artifact.url);
  if (!response.ok) throw new Error(`${artifact.path}: HTTP ${response.status}`);
  const bytes = await response.arrayBuffer();
  const module = await WebAssembly.compile(bytes);
  const signatures = signaturesOf(new Uint8Array(bytes));
  const node = $("exports");
  node.replaceChildren(h("h3", {}, "Exports"));
  node.hidden = false;
  let instance;
  try {
    instance = instantiate(module);
  } catch (error) {
    node.append(h("p", { class: "fail" }, `The module does not instantiate: ${error.message}`));
    return;
  }
  const rows = [];
  for (const entry of WebAssembly.Module.exports(module)) {
    if (entry.kind !== "function") {
      rows.push(h("div", { class: "export muted" }, h("code", {}, entry.name), ` (${entry.kind})`));
    } else if (entry.name === "_start") {
      rows.push(commandRow(module));
    } else if (entry.name !== "_initialize") {
      const fn = instance.exports[entry.name];
      const sig = signatures?.get(entry.name) ?? untyped(fn.length);
      rows.push(functionRow(entry.name, fn, sig));
    }
  }
  if (!rows.length) node.append(h("p", { class: "muted" }, "The module exports nothing."));
  node.append(...rows);
}

/** An instance whose exports can be called one by one (a command's `_start` is not run). */
function instantiate(module) {
  const wasi = new Wasi();
  const instance = new WebAssembly.Instance(module, wasi.imports(module));
  wasi.initialize(instance);
  return instance;
}

function untyped(count) {
  return { params: Array(count).fill("i32"), results: ["?"] };
}

function functionRow(name, fn, sig) {
  const inputs = sig.params.map((type, i) =>
    h("input", {
      type: "text",
      inputmode: type.startsWith("f") ? "decimal" : "numeric",
      placeholder: type,
      "aria-label": `${name} argument ${i + 1} (${type})`,
      size: 6,
    }),
  );
  const output = h("output", {});
  const call = h("button", { type: "submit" }, "Call");
  const row = h(
    "form",
    { class: "export", "data-export": name },
    h("code", {}, `${name}(${sig.params.join(", ")}) → ${sig.results.join(", ") || "()"}`),
    h("span", { class: "args" }, ...inputs),
    call,
    output,
  );
  row.addEventListener("submit", (event) => {
    event.preventDefault();
    output.className = "";
    try {
      const args = sig.params.map((type, i) => argument(type, inputs[i].value, i));
      const value = fn(...args);
      output.textContent = value === undefined ? "= (no result)" : `= ${value}`;
      output.classList.add("ok");
    } catch (error) {
      output.classList.add("fail");
      output.textContent =
        error instanceof WebAssembly.RuntimeError ? `trap: ${error.message}` : error.message;
    }
  });
  return row;
}

/** A WASI command: each run gets a fresh instance; its output is shown below. */
function commandRow(module) {
  const output = h("output", {});
  const stdout = h("pre", { class: "stdout", hidden: true });
  const row = h(
    "form",
    { class: "export", "data-export": "_start" },
    h("code", {}, "_start() — run the program"),
    h("button", { type: "submit" }, "Run"),
    output,
    stdout,
  );
  row.addEventListener("submit", (event) => {
    event.preventDefault();
    output.className = "";
    const wasi = new Wasi();
    try {
      const code = wasi.start(new WebAssembly.Instance(module, wasi.imports(module)));
      output.textContent = `exit code ${code}`;
      output.classList.add(code === 0 ? "ok" : "fail");
    } catch (error) {
      output.classList.add("fail");
      output.textContent =
        error instanceof WebAssembly.RuntimeError ? `trap: ${error.message}` : error.message;
    }
    stdout.textContent = wasi.stdout + wasi.stderr;
    stdout.hidden = !stdout.textContent;
  });
  return row;
}

function argument(type, text, index) {
  const value = text.trim();
  const bad = () => new Error(`argument ${index + 1} must be ${describe(type)}`);
  if (type === "i64") {
    if (!/^-?\d+$/.test(value)) throw bad();
    return BigInt(value);
  }
  const number = Number(value);
  if (value === "" || Number.isNaN(number)) throw bad();
  if (type === "i32" && !Number.isInteger(number)) throw bad();
  return number;
}

function describe(type) {
  return type === "i32" || type === "i64" ? `an integer (${type})` : `a number (${type})`;
}

// ---- a reader for the few sections of a wasm binary that give export signatures ----

const VALTYPES = { 0x7f: "i32", 0x7e: "i64", 0x7d: "f32", 0x7c: "f64", 0x7b: "v128" };

/**
 * name -> {params, results} for the exported functions, from the type, import, function
 * and export sections; null when the binary uses something this reader does not know.
 */
function signaturesOf(bytes) {
  let at = 8; // magic and version
  const u32 = () => {
    let result = 0;
    let shift = 0;
    for (;;) {
      const byte = bytes[at++];
      result |= (byte & 0x7f) << shift;
      if (!(byte & 0x80)) return result >>> 0;
      shift += 7;
    }
  };
  const name = () => {
    const length = u32();
    at += length;
    return new TextDecoder().decode(bytes.subarray(at - length, at));
  };
  const valtype = () => VALTYPES[bytes[at++]] ?? "ref";
  const vec = (read) => Array.from({ length: u32() }, read);
  const limits = () => {
    const flags = bytes[at++];
    u32();
    if (flags & 1) u32();
  };
  let types = [];
  const functions = []; // type index of every function, imported ones first
  const exports = new Map();
  try {
    while (at < bytes.length) {
      const id = bytes[at++];
      const size = u32();
      const end = at + size;
      if (id === 1) {
        types = vec(() => {
          if (bytes[at++] !== 0x60) throw new Error("not a function type");
          return { params: vec(valtype), results: vec(valtype) };
        });
      } else if (id === 2) {
        vec(() => {
          name();
          name();
          const kind = bytes[at++];
          if (kind === 0) functions.push(u32());
          else if (kind === 1) {
            at += 1; // the table's element type
            limits();
          } else if (kind === 2) limits();
          else if (kind === 3) at += 2;
          else throw new Error(`import kind ${kind}`);
        });
      } else if (id === 3) {
        functions.push(...vec(u32));
      } else if (id === 7) {
        vec(() => {
          const exported = name();
          const kind = bytes[at++];
          const index = u32();
          if (kind === 0) exports.set(exported, types[functions[index]]);
        });
      }
      at = end;
    }
  } catch {
    return null;
  }
  return exports;
}

// ---- start ----

$("file-name").textContent = FILES[language];
setSource(drafts[language]);

sessionControls();
