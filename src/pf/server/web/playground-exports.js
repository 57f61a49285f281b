// A compiled wasm module's exports, each callable with typed arguments: a function shows
// its result or its trap; a WASI command (_start) runs in a fresh instance and shows its
// exit code and output.

import { h } from "/_pf/common.js";
import { Wasi } from "/_pf/wasi.js";
import { signaturesOf } from "/_pf/wasm-signatures.js";

/** Fills `node` with a row per export of the wasm `artifact` (a build record's). */
export async function showExports(node, artifact) {
  const response = await fetch(artifact.url);
  if (!response.ok) throw new Error(`${artifact.path}: HTTP ${response.status}`);
  const bytes = await response.arrayBuffer();
  const module = await WebAssembly.compile(bytes);
  const signatures = signaturesOf(new Uint8Array(bytes));
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
