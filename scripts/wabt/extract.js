// Extracts from npm's wabt (the Emscripten build of wabt's C API) what pf.toolchains.wabt
// needs to run it without its JavaScript glue: the wasm binary, and the names the minifier
// gave the exports and imports the glue uses. Run as `node extract.js OUTDIR`.
//
// Nothing is read from the minified source text: the glue is run once, its
// WebAssembly.instantiate is wrapped to keep the binary and to learn, by identity, which
// export each Module._wabt_* function is, which export the glue calls while starting
// (the C++ constructors) and which import is which host function (by its JS name).
"use strict";
const fs = require("fs");
const path = require("path");

const outdir = process.argv[2];
if (!outdir) {
  console.error("usage: node extract.js OUTDIR");
  process.exit(2);
}
const pkgdir = path.dirname(require.resolve("wabt/package.json"));
const version = require("wabt/package.json").version;

// The glue's host functions by their JS names, and the roles pf implements.
const IMPORT_ROLES = {
  _fd_write: "fd_write",
  _emscripten_resize_heap: "emscripten_resize_heap",
  _environ_get: "environ_get",
  _environ_sizes_get: "environ_sizes_get",
  _fd_close: "fd_close",
  __abort_js: "abort",
};

(async () => {
  let binary = null;
  let module = null;
  const imports = {};
  const startupCalls = [];
  let started = false;
  const wrappedToName = new Map();
  const original = WebAssembly.instantiate;
  WebAssembly.instantiate = async (bytes, importObject) => {
    binary = Buffer.from(bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : bytes);
    for (const [mod, fields] of Object.entries(importObject)) {
      for (const [field, value] of Object.entries(fields)) {
        const role = IMPORT_ROLES[value.name];
        if (!role) throw new Error(`unknown import ${mod}.${field} (${value.name})`);
        imports[role] = { module: mod, name: field };
      }
    }
    const result = await original(bytes, importObject);
    module = result.module;
    const exports = {};
    for (const [name, value] of Object.entries(result.instance.exports)) {
      if (typeof value === "function") {
        const wrapped = (...args) => {
          if (!started) startupCalls.push(name);
          return value(...args);
        };
        wrappedToName.set(wrapped, name);
        exports[name] = wrapped;
      } else {
        exports[name] = value;
      }
    }
    return { module: result.module, instance: { exports } };
  };
  const factory = require(pkgdir);
  const Module = await factory();
  started = true;
  WebAssembly.instantiate = original;

  const functions = {};
  for (const [key, value] of Object.entries(Module)) {
    if (/^_(wabt_|malloc$|free$)/.test(key) && wrappedToName.has(value)) {
      functions[key] = wrappedToName.get(value);
    }
  }
  const memories = WebAssembly.Module.exports(module).filter((e) => e.kind === "memory");
  const ctors = [...new Set(startupCalls)];
  if (ctors.length !== 1) throw new Error(`expected one start-up call, got ${ctors}`);
  if (memories.length !== 1) throw new Error(`expected one exported memory`);
  for (const need of ["_malloc", "_free", "_wabt_parse_wat"]) {
    if (!functions[need]) throw new Error(`no export found for ${need}`);
  }
  for (const role of Object.values(IMPORT_ROLES)) {
    if (!imports[role]) throw new Error(`no import found for ${role}`);
  }
  fs.mkdirSync(outdir, { recursive: true });
  fs.writeFileSync(path.join(outdir, "wabt.wasm"), binary);
  const map = { version, memory: memories[0].name, ctors: ctors[0], functions, imports };
  fs.writeFileSync(path.join(outdir, "exports.json"), JSON.stringify(map, null, 1) + "\n");
})().catch((err) => {
  console.error(`extract.js: ${err.message}`);
  process.exit(1);
});
