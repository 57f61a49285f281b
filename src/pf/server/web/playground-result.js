// The playground's result panel: the build's status, the diagnostics listed (each a link
// to its line), the compiler log, the artifacts, and what a build made: the callable
// exports of a wasm module or the text of LLVM IR and asm.js.

import { formatBytes, formatMs, h } from "/_pf/common.js";
import { showExports } from "/_pf/playground-exports.js";

const $ = (id) => document.getElementById(id);

export function setStatus(status, text = status) {
  const node = $("status");
  node.className = `status status-${status}`;
  node.textContent = text;
}

/** A line above the result (`kind` "fail" for an error); null hides it. */
export function message(text, kind = "") {
  const node = $("message");
  node.hidden = !text;
  node.className = `message ${kind}`;
  node.replaceChildren(...[].concat(text || []));
}

export function clearResult() {
  for (const id of ["diagnostics", "artifacts", "exports", "text-output", "log"]) {
    $(id).hidden = true;
  }
  $("meta").textContent = "";
  message(null);
}

/**
 * Shows a finished build: `log` is its log entries, `file` the name the source was sent
 * as, `goTo(line, col)` moves the editor's caret (a listed diagnostic's link).
 */
export async function showBuild(record, { log, target, file, goTo }) {
  setStatus(record.status);
  const meta = [formatMs(record.duration)];
  if (record.cached) meta.push("cached");
  $("meta").replaceChildren(
    meta.join(" · "),
    " · ",
    h("a", { href: `/dashboard#build=${record.buildId}`, title: record.buildId }, "dashboard"),
  );
  listDiagnostics(record.diagnostics || [], file, goTo);
  showLog(log, record.status !== "completed");
  if (record.status !== "completed") {
    message(record.error || `build ${record.status}`, "fail");
    return;
  }
  listArtifacts(record.artifacts);
  const wasm = record.artifacts.find((a) => a.kind === "wasm" || a.path.endsWith(".wasm"));
  if (target === "wasm" && wasm) {
    await showExports($("exports"), wasm);
  } else if (record.artifacts.length) {
    await showText(record.artifacts[0]);
  }
}

function severityClass(severity) {
  return severity === "error" || severity === "fatal" ? "error" : "warning";
}

function listDiagnostics(list, file, goTo) {
  const node = $("diagnostics");
  node.hidden = !list.length;
  node.replaceChildren(
    ...list.map((d) => {
      const where = `${d.file || file}:${d.line}${d.col ? `:${d.col}` : ""}`;
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
