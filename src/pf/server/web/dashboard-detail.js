// The detail view of one build: its record, diagnostics linked to the log lines that
// report them, artifacts with raw and compressed sizes, and the live log.
//
// Log strategy: the page asks the server for one build's log lines only (a WebSocket
// `subscribe`), and once the server has acknowledged it, fetches the lines recorded so
// far. The server stores each line before it publishes it, so the fetched lines and the
// streamed ones overlap at most at the seam, where the overlap is dropped.

import { api, formatBytes, formatMs, h } from "/_pf/common.js";
import { TERMINAL, durationMs, etaLeft } from "/_pf/dashboard-store.js";
import {
  buildLabel,
  canRebuild,
  clockTime,
  formatEta,
  formatTimings,
} from "/_pf/dashboard-list.js";

const MAX_LOG_LINES = 5000; // kept in the DOM; older lines are dropped from the view
const STREAM_LABEL = { stdout: "out", stderr: "err", pf: "pf" };
// file:line[:col] as compilers print it: "main.c:2:15: error", "  --> src/lib.rs:3:5".
const LOCATION = /(?:^|-->\s*|\s)((?:[\w.+-]+\/)*[\w.+-]+\.[A-Za-z][\w]*):(\d+)(?::(\d+))?/;
const compressedSizes = new Map(); // artifact url -> {size, coding}
const COMPRESS_FROM = 512; // pf serve sends smaller files as they are
const COMPRESS_ATTEMPTS = 4;
// After this long, streamed lines can no longer be copies of fetched ones (the server
// batches events for 100 ms by default).
const SEAM_MS = 2000;

function sameFile(a, b) {
  return a === b || a.endsWith(`/${b}`) || b.endsWith(`/${a}`);
}

function isoClock(iso) {
  return iso ? clockTime(Date.parse(iso)) : "–";
}

function optionsText(options) {
  return Object.entries(options || {})
    .filter(([, v]) => v !== null && v !== false && !(Array.isArray(v) && v.length === 0))
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(",") : v}`)
    .join(" ");
}

export class Detail {
  constructor(node, { onClose, onAction, subscribe, redraw, onLogged }) {
    this.node = node;
    this.redraw = redraw;
    this.onLogged = onLogged;
    this.onClose = onClose;
    this.onAction = onAction;
    this.subscribe = subscribe;
    this.id = null;
    this.logState = "idle"; // subscribing -> fetching -> seam -> live
    this.seam = null;
    this.seamTimer = null;
    this.pendingLines = [];
    this.lineCount = 0;
    this.dropped = 0;
    this.shown = {};
    this._build();
  }

  _build() {
    this.title = h("h2", { id: "detail-title", tabindex: "-1" });
    this.status = h("span", { class: "status" });
    this.cached = h("span", { class: "badge", hidden: true }, "cached");
    this.idText = h("code", { class: "d-id" });
    this.fill = h("span", { class: "bar-fill" });
    this.bar = h(
      "span",
      { class: "bar", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100 },
      this.fill,
    );
    this.progressText = h("span", { class: "muted" });
    this.facts = h("dl", { class: "facts" });
    this.error = h("p", { class: "d-error fail", hidden: true });
    this.cancelButton = h("button", { type: "button", "data-action": "cancel" }, "Cancel");
    this.rebuildButton = h("button", { type: "button", "data-action": "rebuild" }, "Rebuild");
    this.diagnostics = h("ul", { class: "diagnostics" });
    this.diagHead = h("h3", { hidden: true }, "Diagnostics");
    this.artifacts = h("div", { class: "artifacts" });
    this.logNote = h("span", { class: "muted log-note" });
    this.follow = h("input", { type: "checkbox", checked: true });
    this.log = h("ol", { class: "log", "aria-label": "build log" });
    this.logBox = h("div", { class: "log-box" }, this.log);
    this.node.replaceChildren(
      h(
        "div",
        { class: "d-head" },
        h(
          "button",
          {
            type: "button",
            class: "d-close",
            "data-action": "close",
            "aria-label": "Close build details",
          },
          "← Back",
        ),
        this.title,
        this.status,
        this.cached,
      ),
      this.idText,
      h("div", { class: "d-progress" }, this.bar, this.progressText),
      this.error,
      h("div", { class: "row d-actions" }, this.cancelButton, this.rebuildButton),
      this.facts,
      this.diagHead,
      this.diagnostics,
      h("h3", {}, "Artifacts"),
      this.artifacts,
      h(
        "div",
        { class: "log-head" },
        h("h3", {}, "Log"),
        this.logNote,
        h("label", { class: "follow" }, this.follow, " follow"),
      ),
      this.logBox,
    );
    this.node.addEventListener("click", (event) => {
      const target = event.target.closest("[data-action], [data-loc]");
      if (!target) return;
      const action = target.dataset.action;
      if (action === "close") this.onClose();
      else if (action === "cancel" || action === "rebuild") this.onAction(action, this.id);
      else if (action === "diagnostic")
        this.showLogLine(target.dataset.file, Number(target.dataset.line));
      else if (target.dataset.loc)
        this.showDiagnostic(target.dataset.file, Number(target.dataset.line));
    });
  }

  /** Opens build `id` (or closes the view with null). */
  open(id) {
    if (id === this.id) return;
    this.id = id;
    this.node.hidden = id === null;
    document.body.classList.toggle("detail-open", id !== null);
    this.shown = {};
    this.log.replaceChildren();
    this.lineCount = 0;
    this.dropped = 0;
    this.pendingLines = [];
    this.artifacts.replaceChildren();
    this._endSeam();
    if (id === null) {
      this.logState = "idle";
      return;
    }
    this.title.focus({ preventScroll: true }); // keyboard and screen-reader users follow
    this.resubscribe();
  }

  /** (Re)starts following the log: after opening, and after every reconnection. */
  resubscribe() {
    if (this.id === null) return;
    this._endSeam();
    this.logState = "subscribing";
    this.logNote.textContent = "loading…";
    this.subscribe(this.id);
  }

  /** The server acknowledged a subscription: fetch what was logged before it. */
  async subscribed(ids) {
    const id = this.id;
    if (this.logState !== "subscribing" || !ids.includes(id)) return;
    this.logState = "fetching";
    this.seam = new Seam();
    let logs;
    try {
      ({ logs } = await api("GET", `/api/logs/${encodeURIComponent(id)}`));
    } catch (error) {
      if (this.id !== id || this.logState !== "fetching") return;
      this._endSeam();
      this.logState = "idle";
      this.logNote.textContent = `log unavailable: ${error.message}`;
      return;
    }
    if (this.id !== id || this.logState !== "fetching") return;
    const fetched = logs.map((entry) => ({ stream: entry.stream, text: entry.message }));
    if (fetched.length) this.onLogged(id);
    this.log.replaceChildren();
    this.lineCount = 0;
    this.dropped = 0;
    this.pendingLines = [...fetched];
    this.logState = "seam";
    this.logNote.textContent = "";
    this.seam.fetched(fetched);
    this.seamTimer = setTimeout(() => {
      if (this.seam && this._settle(true)) this.redraw();
    }, SEAM_MS);
    this._settle(false);
    this.redraw();
  }

  /** Moves the streamed lines past the seam into the view once the seam is known. */
  _settle(force) {
    const fresh = this.seam.settle(force);
    if (fresh === null) return false;
    this._endSeam();
    this.logState = "live";
    this._queue(fresh);
    return true;
  }

  _endSeam() {
    clearTimeout(this.seamTimer);
    this.seam = null;
  }

  _queue(lines) {
    this.pendingLines.push(...lines);
    // No frames run in a background tab: keep only what the view could show.
    if (this.pendingLines.length > 2 * MAX_LOG_LINES) {
      const excess = this.pendingLines.length - MAX_LOG_LINES;
      this.pendingLines.splice(0, excess);
      this.dropped += excess;
    }
  }

  /** Lines streamed for a build; returns whether the view wants a frame. */
  lines(id, lines) {
    if (id !== this.id) return false;
    switch (this.logState) {
      case "live":
        this._queue(lines);
        return true;
      case "fetching":
        this.seam.stream(lines);
        return false;
      case "seam":
        this.seam.stream(lines);
        return this._settle(false);
      default:
        // Before the acknowledgement: these lines were sent before the subscription took
        // effect, so the fetch that follows it returns them.
        return false;
    }
  }

  /** Draws the record's changes and the lines that arrived since the last frame. */
  render(record, changed) {
    if (this.id === null) return;
    if (!record) {
      this.title.textContent = "Build not found";
      return;
    }
    if (changed) this._record(record);
    if (this.pendingLines.length) this._appendLines();
  }

  tick(record) {
    if (record && record.status === "running") {
      this._progress(record);
      if (this.durationFact) this.durationFact.textContent = formatMs(durationMs(record));
    }
  }

  _record(record) {
    const active = !TERMINAL.has(record.status);
    this.title.textContent = buildLabel(record);
    this.status.className = `status status-${record.status}`;
    this.status.textContent = record.status;
    this.node.dataset.status = record.status;
    this.cached.hidden = !record.cached;
    this.idText.textContent = record.buildId;
    this._progress(record);
    this.error.hidden = !record.error;
    this.error.textContent = record.error || "";
    this.cancelButton.hidden = !active;
    this.rebuildButton.hidden = active || !canRebuild(record);
    const facts = [
      ["Project", record.project || (record.kind === "task" ? "–" : "inline sources")],
      ["Submitted", isoClock(record.createdTime)],
      ["Started", isoClock(record.startTime)],
      ["Ended", isoClock(record.endTime)],
      ["Duration", formatMs(durationMs(record))],
      ["Timings", formatTimings(record.timings) || "–"],
      ["Options", optionsText(record.options) || "defaults"],
    ];
    if (record.kind === "task") facts.unshift(["Task", record.task || "–"]);
    const cells = facts.map(([k, v]) => [k, h("dd", {}, v)]);
    this.durationFact = cells.find(([k]) => k === "Duration")[1];
    this.facts.replaceChildren(...cells.flatMap(([k, dd]) => [h("dt", {}, k), dd]));
    this._diagnostics(record.diagnostics || []);
    this._artifacts(record);
  }

  _progress(record) {
    const progress = record.progress ?? 0;
    this.fill.style.width = `${progress}%`;
    this.bar.setAttribute("aria-valuenow", String(progress));
    const parts = [];
    if (!TERMINAL.has(record.status)) {
      parts.push(`${progress}%`);
      if (record.phase) parts.push(record.phase);
      const eta = formatEta(etaLeft(record));
      if (eta) parts.push(eta);
      parts.push(`${formatMs(durationMs(record))} elapsed`);
    } else {
      parts.push(`${record.status} in ${formatMs(record.duration)}`);
    }
    this.progressText.textContent = parts.join(" · ");
  }

  _diagnostics(diagnostics) {
    const key = JSON.stringify(diagnostics);
    if (this.shown.diagnostics === key) return;
    this.shown.diagnostics = key;
    this.diagHead.hidden = diagnostics.length === 0;
    this.diagnostics.replaceChildren(
      ...diagnostics.map((d) =>
        h(
          "li",
          {},
          h(
            "button",
            {
              type: "button",
              class: `diag sev-${d.severity}`,
              "data-action": "diagnostic",
              "data-file": d.file,
              "data-line": d.line,
              title: "Show this line in the log",
            },
            h("span", { class: "sev" }, d.severity),
            " ",
            h("code", {}, `${d.file}:${d.line}${d.col ? `:${d.col}` : ""}`),
            " ",
            d.message,
          ),
        ),
      ),
    );
  }

  _artifacts(record) {
    const artifacts = record.artifacts || [];
    const key = `${record.status}:${artifacts.map((a) => a.digest).join(",")}`;
    if (this.shown.artifacts === key) return;
    this.shown.artifacts = key;
    if (artifacts.length === 0) {
      this.artifacts.replaceChildren(
        h(
          "p",
          { class: "muted" },
          TERMINAL.has(record.status) ? "No artifacts." : "Not built yet.",
        ),
      );
      return;
    }
    const rows = artifacts.map((a) => {
      const compressed = h("td", { class: "num" }, "…");
      this._compressed(a, compressed);
      return h(
        "tr",
        {},
        h("td", {}, h("a", { href: a.url, download: a.path, title: a.digest }, a.path)),
        h("td", {}, a.kind || ""),
        h("td", { class: "num" }, formatBytes(a.size)),
        compressed,
      );
    });
    this.artifacts.replaceChildren(
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "artifact-table" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", {}, "File"),
              h("th", {}, "Kind"),
              h("th", {}, "Size"),
              h("th", {}, "Compressed"),
            ),
          ),
          h("tbody", {}, ...rows),
        ),
      ),
    );
  }

  /** The size pf serve sends the artifact in (brotli or gzip), from a HEAD request. */
  async _compressed(artifact, cell, attempt = 1) {
    if (!cell.isConnected && attempt > 1) return; // the view moved on
    let known = compressedSizes.get(artifact.url);
    if (!known) {
      let answer;
      try {
        answer = await fetch(artifact.url, { method: "HEAD" });
      } catch (error) {
        cell.textContent = `? (${error.message})`;
        return;
      }
      if (!answer.ok) {
        cell.textContent = answer.status === 404 ? "evicted" : `HTTP ${answer.status}`;
        return;
      }
      const coding = answer.headers.get("content-encoding");
      known = { coding, size: Number(answer.headers.get("content-length")) };
      if (coding) compressedSizes.set(artifact.url, known);
    }
    if (!known.coding) {
      if (artifact.size < COMPRESS_FROM) {
        cell.textContent = "– (too small)";
      } else if (attempt < COMPRESS_ATTEMPTS) {
        // The server makes compressed variants in the background after the first request.
        cell.textContent = "…";
        setTimeout(() => this._compressed(artifact, cell, attempt + 1), 500 * attempt);
      } else {
        cell.textContent = "– (sent as is)";
      }
      return;
    }
    const ratio = Math.round((100 * known.size) / Math.max(artifact.size, 1));
    cell.textContent = `${formatBytes(known.size)} ${known.coding} (${ratio}%)`;
  }

  _appendLines() {
    const box = this.logBox;
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 24;
    const fragment = document.createDocumentFragment();
    let lines = this.pendingLines;
    this.pendingLines = [];
    if (lines.length > MAX_LOG_LINES) {
      this.dropped += lines.length - MAX_LOG_LINES;
      lines = lines.slice(-MAX_LOG_LINES);
    }
    for (const line of lines) fragment.append(this._line(line));
    this.log.append(fragment);
    this.lineCount += lines.length;
    while (this.lineCount > MAX_LOG_LINES) {
      this.log.firstChild.remove();
      this.lineCount -= 1;
      this.dropped += 1;
    }
    this.logNote.textContent = this.dropped
      ? `${this.dropped} earlier lines not shown (full log: /api/logs/${this.id})`
      : "";
    if (this.follow.checked && atBottom) box.scrollTop = box.scrollHeight;
  }

  _line({ stream, text }) {
    const body = h("span", { class: "l-text" });
    const item = h(
      "li",
      { class: `log-line log-${stream}`, "data-stream": stream },
      h("span", { class: "l-stream", "aria-label": stream }, STREAM_LABEL[stream] || stream),
      body,
    );
    const found = LOCATION.exec(text);
    if (!found) {
      body.textContent = text;
      return item;
    }
    const [, file, line] = found;
    const start = found.index + found[0].indexOf(file);
    const end = found.index + found[0].length;
    item.dataset.file = file;
    item.dataset.line = line;
    body.append(
      text.slice(0, start),
      h(
        "button",
        { type: "button", class: "loc", "data-loc": "1", "data-file": file, "data-line": line },
        text.slice(start, end),
      ),
      text.slice(end),
    );
    return item;
  }

  /** Scrolls the log to the first line about file:line and highlights it. */
  showLogLine(file, line) {
    const target = [...this.log.querySelectorAll("li[data-file]")].find(
      (li) => Number(li.dataset.line) === line && sameFile(li.dataset.file, file),
    );
    this._highlight(target, `${file}:${line} is not in the lines shown`);
  }

  /** Highlights the diagnostic for a location clicked in the log. */
  showDiagnostic(file, line) {
    const target = [...this.diagnostics.querySelectorAll("button.diag")].find(
      (b) => Number(b.dataset.line) === line && sameFile(b.dataset.file, file),
    );
    this._highlight(target, "");
  }

  _highlight(target, missing) {
    for (const node of this.node.querySelectorAll(".highlight")) node.classList.remove("highlight");
    if (!target) {
      if (missing) this.logNote.textContent = missing;
      return;
    }
    target.classList.add("highlight");
    target.scrollIntoView({ block: "center", behavior: "smooth" });
  }
}

/**
 * Where the fetched log and the streamed lines meet.
 *
 * The server stores a line before it publishes it, and the page fetches only after the
 * server acknowledged the subscription; so the fetch holds every line streamed before,
 * and the stream holds every line published after. A line may be in both: published
 * (and stored) just before the fetch, it can still be waiting in the server's batching
 * window and arrive afterwards. The stream's first k lines are then the fetch's last k,
 * for an unknown k. Each candidate k is checked against the lines as they arrive; once
 * no candidate is longer than what arrived (or SEAM_MS passed), the longest consistent
 * overlap is dropped. Lines carry no sequence number, so a genuinely repeated line at
 * the seam is the one ambiguity left.
 */
export class Seam {
  constructor() {
    this.tail = []; // the fetched lines
    this.streamed = [];
    this.candidates = null; // overlaps k still consistent; null until the fetch is in
    this.checked = 0; // streamed lines checked against every candidate
  }

  fetched(lines) {
    this.tail = lines;
    this.candidates = Array.from({ length: lines.length }, (_, i) => i + 1);
  }

  stream(lines) {
    this.streamed.push(...lines);
  }

  /** The streamed lines that are not in the fetch, or null while that is undecided. */
  settle(force) {
    const n = this.tail.length;
    const m = this.streamed.length;
    const same = (a, b) => a.text === b.text && a.stream === b.stream;
    this.candidates = this.candidates.filter((k) => {
      for (let i = this.checked; i < Math.min(k, m); i += 1) {
        if (!same(this.streamed[i], this.tail[n - k + i])) return false;
      }
      return true;
    });
    this.checked = m;
    const longest = this.candidates.length ? this.candidates[this.candidates.length - 1] : 0;
    if (longest > m && !force) return null;
    return this.streamed.slice(Math.min(longest, m));
  }
}
