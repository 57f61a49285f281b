// The compile playground: sources typed in the editor go to POST /api/compile; the build
// is followed to its end, its diagnostics are marked at their line:col in the editor,
// and its output is shown: callable exports for wasm, the text for LLVM IR and asm.js.
// This module wires the page together; the editor (CodeMirror, bundled by
// scripts/setup.sh) is /_pf/vendor/editor.js, the calls to pf are playground-build.js
// and the result panel playground-result.js.

import { sessionControls } from "/_pf/common.js";
import { compile, logOf, toolchains } from "/_pf/playground-build.js";
import { EXAMPLES, FILES } from "/_pf/playground-examples.js";
import { clearResult, message, setStatus, showBuild } from "/_pf/playground-result.js";
import { createEditor } from "/_pf/vendor/editor.js";

const $ = (id) => document.getElementById(id);
const form = $("controls");

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

const editor = createEditor({
  parent: $("editor"),
  language,
  text: drafts[language],
  label: "Source code",
  onChange(text) {
    drafts[language] = text;
    save();
  },
  onCursor(line, column) {
    $("cursor").textContent = `line ${line}, column ${column}`;
  },
  onSubmit: () => form.requestSubmit(),
});
$("file-name").textContent = FILES[language];
// When the editor could first be typed in (the browser test reports it beside first paint).
performance.mark("pf-editor-ready");

// ---- the controls ----

form.elements.language.addEventListener("change", () => {
  language = form.elements.language.value;
  save();
  $("file-name").textContent = FILES[language];
  editor.open(language, drafts[language]);
  markToolchains();
});

$("reset-example").addEventListener("click", () => editor.replace(EXAMPLES[language]));

let installed = null;

/** Disables the targets no installed toolchain serves for the chosen language. */
function markToolchains() {
  if (!installed) return;
  for (const option of form.elements.target.options) {
    const entry = installed[language]?.[option.value];
    const missing = entry && entry.available === false;
    option.disabled = Boolean(missing);
    option.title = missing ? entry.reason || entry.install || "no toolchain installed" : "";
  }
}

toolchains().then(
  (answer) => {
    installed = answer;
    markToolchains();
  },
  (error) => message(`Could not ask pf serve which toolchains it has: ${error.message}`, "fail"),
);

function options() {
  const f = form.elements;
  const chosen = { opt_level: f.opt_level.value, debug: f.debug.checked };
  const exports = f.exports.value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (exports.length) chosen.exports = exports;
  if (f.passes.value.trim()) chosen.passes = f.passes.value.trim();
  return chosen;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  build();
});

// ---- a compile, from the button to the result ----

let generation = 0; // a newer compile makes an older one's answers stale

async function build() {
  const mine = ++generation;
  const button = $("compile");
  const target = form.elements.target.value;
  const file = FILES[language];
  button.disabled = true;
  clearResult();
  editor.mark([]);
  setStatus("queued", "compiling…");
  try {
    const request = { language, target, file, text: editor.text(), options: options() };
    const record = await compile(request, (current) => {
      if (mine === generation) setStatus(current.status, `${current.status}…`);
    });
    if (mine !== generation) return;
    // Only into the file they belong to: the language may have changed meanwhile.
    const located = (record.diagnostics || []).filter((d) => !d.file || d.file === file);
    if (FILES[language] === file) editor.mark(located);
    const log = await logOf(record.buildId);
    if (mine !== generation) return;
    await showBuild(record, { log, target, file, goTo: editor.goTo });
  } catch (error) {
    if (mine !== generation) return;
    setStatus("failed", "not compiled");
    message(error.message, "fail");
  } finally {
    if (mine === generation) button.disabled = false;
  }
}

sessionControls();
