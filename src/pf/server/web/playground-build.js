// The playground's calls to pf: start a compile (POST /api/compile), follow the build
// until it finishes, read its log.

import { api } from "/_pf/common.js";

const FINISHED = new Set(["completed", "failed", "cancelled"]);
const POLL_MS = 300;

/**
 * Compiles one file and resolves to the finished build's record; `onStatus(record)`
 * sees each state on the way (queued, running...).
 */
export async function compile({ language, target, file, text, options }, onStatus) {
  const answer = await api("POST", "/api/compile", {
    language,
    target,
    files: { [file]: text },
    options,
  });
  return follow(answer.buildId, onStatus);
}

async function follow(buildId, onStatus) {
  for (;;) {
    const record = await api("GET", `/api/builds/${encodeURIComponent(buildId)}`);
    onStatus(record);
    if (FINISHED.has(record.status)) return record;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/** The build's log entries ({stream, message}), compiler output and pf's own lines. */
export async function logOf(buildId) {
  const answer = await api("GET", `/api/logs/${encodeURIComponent(buildId)}`);
  return answer.logs;
}

/** Which targets each language's installed toolchains serve (GET /api/system). */
export async function toolchains() {
  const system = await api("GET", "/api/system");
  return system.toolchains;
}
