// The build list: at most `limit` rows, keyed by build id and reused, so a frame only
// touches the rows whose build changed (thousands of builds cost one filter pass).

import { formatMs, h } from "/_pf/common.js";
import { TERMINAL, durationMs, etaLeft } from "/_pf/dashboard-store.js";

const PAGE = 200; // rows shown at first, and added by "show more"
const TIMING_PARTS = ["queued", "compile", "store"];

/** "3 s left", "1 min 5 s left". */
export function formatEta(seconds) {
  if (seconds === null) return "";
  if (seconds < 1) return "finishing…";
  if (seconds < 60) return `~${Math.ceil(seconds)} s left`;
  return `~${Math.floor(seconds / 60)} min ${Math.ceil(seconds % 60)} s left`;
}

/** "queued 314 ms · compile 20 ms · store 1 ms". */
export function formatTimings(timings) {
  return TIMING_PARTS.filter((p) => timings && timings[p] !== undefined)
    .map((p) => `${p} ${formatMs(timings[p])}`)
    .join(" · ");
}

/** A build's label: its task name, or language → target. */
export function buildLabel(record) {
  if (record.kind === "task") return `task ${record.task || record.buildId}`;
  return `${record.language} → ${record.target}`;
}

// One formatter for every row: toLocaleTimeString builds a new one per call (slow).
const CLOCK = new Intl.DateTimeFormat([], {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hourCycle: "h23",
});

/** A build's submission time of day, "14:03:07". */
export function clockTime(ms) {
  return ms ? CLOCK.format(ms) : "";
}

class Row {
  constructor(id) {
    this.id = id;
    this.shown = {}; // last drawn values, so unchanged fields are not rewritten
    this.label = h("span", { class: "b-label" });
    this.status = h("span", { class: "status" });
    this.cached = h("span", { class: "badge b-cached", hidden: true }, "cached");
    this.project = h("span", { class: "b-project muted" });
    this.when = h("time", { class: "b-when muted" });
    this.fill = h("span", { class: "bar-fill" });
    this.bar = h(
      "span",
      { class: "bar", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100 },
      this.fill,
    );
    this.eta = h("span", { class: "b-eta muted" });
    this.duration = h("span", { class: "b-duration" });
    this.timings = h("span", { class: "timings" });
    this.cancel = h(
      "button",
      { type: "button", class: "small", "data-action": "cancel", hidden: true },
      "Cancel",
    );
    this.rebuild = h(
      "button",
      { type: "button", class: "small", "data-action": "rebuild", hidden: true },
      "Rebuild",
    );
    this.node = h(
      "li",
      { class: "build", "data-id": id },
      h(
        "button",
        {
          type: "button",
          class: "b-open",
          "data-action": "open",
          title: `Show build ${id}`,
        },
        this.label,
        this.status,
        this.cached,
        this.project,
        this.when,
      ),
      h("span", { class: "b-progress" }, this.bar, this.eta),
      this.duration,
      this.timings,
      h("span", { class: "b-actions" }, this.cancel, this.rebuild),
    );
  }

  _field(name, value, apply) {
    if (this.shown[name] === value) return;
    this.shown[name] = value;
    apply(value);
  }

  update(record, selected) {
    const active = !TERMINAL.has(record.status);
    this._field("selected", selected, (v) => this.node.classList.toggle("selected", v));
    this._field("label", buildLabel(record), (v) => (this.label.textContent = v));
    this._field("status", record.status, (v) => {
      this.node.dataset.status = v;
      this.status.className = `status status-${v}`;
      this.status.textContent = v;
      this.cancel.hidden = TERMINAL.has(v);
    });
    this._field("cached", Boolean(record.cached), (v) => (this.cached.hidden = !v));
    this._field("project", record.project || (record.kind === "task" ? "" : "inline"), (v) => {
      this.project.textContent = v;
    });
    this._field("created", record._created, (v) => (this.when.textContent = clockTime(v)));
    this._field("progress", record.progress ?? 0, (v) => {
      this.fill.style.width = `${v}%`;
      this.bar.setAttribute("aria-valuenow", String(v));
    });
    const eta = active ? etaLeft(record) : null;
    const phase = active && record.phase && record.phase !== record.status ? record.phase : "";
    const etaText = [phase, formatEta(eta)].filter(Boolean).join(" · ");
    this._field("eta", etaText, (v) => (this.eta.textContent = v));
    this._field("duration", formatMs(durationMs(record)), (v) => (this.duration.textContent = v));
    this._field("timings", JSON.stringify(record.timings || {}), () =>
      this._timings(record.timings),
    );
    this._field("rebuild", active ? false : canRebuild(record), (v) => (this.rebuild.hidden = !v));
  }

  _timings(timings) {
    const total = TIMING_PARTS.reduce((sum, p) => sum + (timings?.[p] || 0), 0);
    this.timings.replaceChildren(
      ...TIMING_PARTS.filter((p) => timings?.[p]).map((p) =>
        h("span", { class: `t-${p}`, style: `flex-grow:${(timings[p] / total).toFixed(4)}` }),
      ),
    );
    const text = formatTimings(timings);
    this.timings.title = text;
    this.timings.setAttribute("aria-label", text || "no timings yet");
  }
}

/** Whether the dashboard can submit a build again: inline sources are not kept. */
export function canRebuild(record) {
  return record.kind === "task" ? Boolean(record.task) : Boolean(record.project);
}

export class BuildList {
  constructor(listNode, footerNode, { onAction }) {
    this.node = listNode;
    this.footer = footerNode;
    this.rows = new Map();
    this.limit = PAGE;
    this.footerText = null;
    this.selected = null;
    this.visible = [];
    this.more = h("button", { type: "button", class: "small" }, "Show more");
    this.more.addEventListener("click", () => {
      this.limit += PAGE;
      this.onMore();
    });
    this.onMore = () => {};
    listNode.addEventListener("click", (event) => {
      const target = event.target.closest("[data-action]");
      const item = event.target.closest("li.build");
      if (target && item) onAction(target.dataset.action, item.dataset.id);
    });
  }

  /** The ids drawn now, in order. */
  ids() {
    return this.visible;
  }

  /** Draws `shown` (newest first), updating only rows in `changed` or not drawn yet. */
  render(shown, total, changed, force) {
    const keep = new Set();
    let previous = null;
    for (const record of shown) {
      const id = record.buildId;
      keep.add(id);
      let row = this.rows.get(id);
      const fresh = !row;
      if (fresh) {
        row = new Row(id);
        this.rows.set(id, row);
      }
      if (fresh || force || changed.has(id)) row.update(record, id === this.selected);
      const expected = previous ? previous.nextSibling : this.node.firstChild;
      if (expected !== row.node) this.node.insertBefore(row.node, expected);
      previous = row.node;
    }
    for (const [id, row] of this.rows) {
      if (!keep.has(id)) {
        row.node.remove();
        this.rows.delete(id);
      }
    }
    this.visible = shown.map((r) => r.buildId);
    let text = `${total} build${total === 1 ? "" : "s"}.`;
    if (total === 0) text = "No builds match.";
    else if (total > shown.length) text = `Showing ${shown.length} of ${total} builds. `;
    // Only when it changes: a footer rebuilt on every frame would take the button away
    // from under a click that lands between two frames.
    if (text !== this.footerText) {
      this.footerText = text;
      if (total > shown.length) this.footer.replaceChildren(text, this.more);
      else this.footer.replaceChildren(text);
    }
  }

  /** Redraws the rows whose time-dependent fields (ETA, elapsed) move on their own. */
  tick(store) {
    for (const id of this.visible) {
      const record = store.get(id);
      if (record && record.status === "running")
        this.rows.get(id)?.update(record, id === this.selected);
    }
  }

  select(id) {
    this.selected = id;
  }
}
