// The dashboard's model: every build it knows, newest first, kept in step with the
// server's WebSocket events (docs/server.md). No DOM here: the views ask which builds changed
// since they last drew and render them once per animation frame.

export const STATUSES = ["queued", "running", "completed", "failed", "cancelled"];
export const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const RANK = { queued: 0, running: 1, completed: 2, failed: 2, cancelled: 2 };
// Memory stays bounded however long the page is open: past this many builds, the
// oldest finished ones are forgotten (the server's history still has them).
const MAX_BUILDS = 5000;
const END_EVENTS = {
  build_completed: "completed",
  build_failed: "failed",
  build_cancelled: "cancelled",
};

/** Milliseconds since the epoch at which a build was submitted (its ordering key). */
export function createdMs(record) {
  if (record.createdTime) {
    const parsed = Date.parse(record.createdTime);
    if (!Number.isNaN(parsed)) return parsed;
  }
  // Build ids are <language>-<target>-<ms>-<suffix> (docs/server.md).
  const match = /-(\d{12,})-[0-9a-z]+$/.exec(record.buildId);
  return match ? Number(match[1]) : Date.now();
}

function newerFirst(a, b) {
  return b._created - a._created || (a.buildId < b.buildId ? 1 : a.buildId > b.buildId ? -1 : 0);
}

export class BuildStore {
  constructor() {
    this.builds = new Map();
    this.order = []; // records, newest first
    this.changed = new Set(); // ids whose record changed since the views last drew
    this.membership = true; // builds were added, removed or reordered
    this.onLog = () => {};
    this.onFinished = () => {};
  }

  get(id) {
    return this.builds.get(id);
  }

  /** Counts per status over every known build. */
  counts() {
    const counts = Object.fromEntries(STATUSES.map((s) => [s, 0]));
    for (const record of this.order) counts[record.status] = (counts[record.status] || 0) + 1;
    return counts;
  }

  /** The first `limit` builds (newest first) that `accept` keeps, and how many it keeps. */
  select(accept, limit) {
    const shown = [];
    let total = 0;
    for (const record of this.order) {
      if (!accept(record)) continue;
      total += 1;
      if (shown.length < limit) shown.push(record);
    }
    return { shown, total };
  }

  /** Takes the changes for the views: [ids changed, whether the list itself changed]. */
  drain() {
    const changed = this.changed;
    const membership = this.membership;
    this.changed = new Set();
    this.membership = false;
    return [changed, membership];
  }

  /**
   * `initial_status`: the server's state on (re)connection is the truth for the builds it
   * lists; earlier builds the page knows stay. Returns the ids of builds the page thought
   * were still queued or running that the snapshot does not mention (only the newest
   * are listed), whose fate the caller must ask the server about.
   */
  resync(builds) {
    const listed = new Set();
    for (const record of builds) {
      listed.add(record.buildId);
      this.put(record, true);
    }
    const unknown = [];
    for (const record of this.order) {
      if (!listed.has(record.buildId) && !TERMINAL.has(record.status)) unknown.push(record.buildId);
    }
    return unknown;
  }

  /** Records from the REST API (history, or a build's final record). */
  merge(builds) {
    for (const record of builds) this.put(record, false);
  }

  /** Forgets builds the server no longer knows. */
  remove(ids) {
    for (const id of ids) {
      if (this.builds.delete(id)) this.membership = true;
    }
    if (this.membership) this.order = this.order.filter((r) => this.builds.has(r.buildId));
  }

  /**
   * Stores a full record. A REST answer may be older than the events that arrived while
   * it was in flight, so unless `authoritative` it never moves a build backwards.
   */
  put(record, authoritative) {
    const current = this.builds.get(record.buildId);
    if (current && !authoritative) {
      const before = RANK[current.status] ?? 0;
      const after = RANK[record.status] ?? 0;
      if (
        after < before ||
        (after === before && (record.progress ?? 0) < (current.progress ?? 0))
      ) {
        return;
      }
    }
    const next = { ...record, _created: current ? current._created : createdMs(record) };
    if (record.eta !== null && record.eta !== undefined) next._etaAt = performance.now();
    this._set(next, current);
  }

  /**
   * A build that logged has started, whatever its events still on their way say: the
   * stored log, read over HTTP, can arrive before the WebSocket's progress event.
   */
  logged(id) {
    const current = this.builds.get(id);
    if (!current || current.status !== "queued") return;
    this._set(
      { ...current, status: "running", startTime: new Date().toISOString(), _startGuessed: true },
      current,
    );
  }

  /** Applies one WebSocket event (batches arrive already unpacked). */
  apply(event) {
    const id = event.buildId;
    if (!id) return;
    const current = this.builds.get(id);
    switch (event.type) {
      case "build_started": {
        if (current) return;
        const created = createdMs({ buildId: id });
        this._set(
          {
            buildId: id,
            kind: event.language === "task" ? "task" : "compile",
            task: event.language === "task" ? event.target : undefined, // a task run's name
            language: event.language,
            target: event.target,
            project: event.project,
            status: "queued",
            progress: 0,
            phase: "queued",
            eta: null,
            createdTime: new Date(created).toISOString(),
            startTime: null,
            endTime: null,
            duration: null,
            error: null,
            cached: false,
            artifacts: [],
            timings: {},
            diagnostics: [],
            options: {},
            _created: created,
            _partial: true, // fields beyond the event's are still unknown
          },
          undefined,
        );
        return;
      }
      case "build_progress": {
        if (!current || TERMINAL.has(current.status)) return;
        const next = {
          ...current,
          status: event.status || current.status,
          progress: Math.max(current.progress ?? 0, event.progress ?? 0),
          phase: event.phase ?? current.phase,
          eta: event.eta ?? null,
          _etaAt: performance.now(),
        };
        if (next.status === "running" && !next.startTime) {
          next.startTime = new Date().toISOString();
          next._startGuessed = true;
        }
        this._set(next, current);
        return;
      }
      case "build_log": {
        this.onLog(id, event.lines || []);
        return;
      }
      default: {
        const status = END_EVENTS[event.type];
        if (!status) return;
        const base = current || {
          buildId: id,
          _created: createdMs({ buildId: id }),
          _partial: true,
        };
        const next = {
          ...base,
          status,
          progress: status === "completed" ? 100 : (base.progress ?? 0),
          eta: null,
          cached: event.cached ?? base.cached ?? false,
          error: event.error ?? base.error ?? null,
          _partial: true, // duration, timings and artifacts come with the record
        };
        this._set(next, current);
        this.onFinished(id);
      }
    }
  }

  _set(next, current) {
    this.builds.set(next.buildId, next);
    this.changed.add(next.buildId);
    if (current) {
      const at = this._index(current);
      this.order[at] = next;
      return;
    }
    this.membership = true;
    // New builds are nearly always the newest: the search ends at once.
    let low = 0;
    let high = this.order.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (newerFirst(this.order[mid], next) <= 0) low = mid + 1;
      else high = mid;
    }
    this.order.splice(low, 0, next);
    if (this.order.length > MAX_BUILDS) this._trim();
  }

  _index(record) {
    // Binary search by ordering key; the record's own slot holds an equal key.
    let low = 0;
    let high = this.order.length - 1;
    while (low <= high) {
      const mid = (low + high) >> 1;
      const cmp = newerFirst(this.order[mid], record);
      if (cmp === 0) return mid;
      if (cmp < 0) low = mid + 1;
      else high = mid - 1;
    }
    return this.order.findIndex((r) => r.buildId === record.buildId);
  }

  _trim() {
    const keep = [];
    let excess = this.order.length - MAX_BUILDS;
    for (let i = this.order.length - 1; i >= 0; i -= 1) {
      const record = this.order[i];
      if (excess > 0 && TERMINAL.has(record.status)) {
        this.builds.delete(record.buildId);
        excess -= 1;
      } else {
        keep.push(record);
      }
    }
    this.order = keep.reverse();
  }
}

/** Seconds left for a running build, counting down from its last `eta`. */
export function etaLeft(record, now = performance.now()) {
  if (record.eta === null || record.eta === undefined || TERMINAL.has(record.status)) return null;
  const since = record._etaAt ? (now - record._etaAt) / 1000 : 0;
  return Math.max(0, record.eta - since);
}

/** Elapsed or final duration in ms (running builds count up from their start). */
export function durationMs(record, now = Date.now()) {
  if (record.duration !== null && record.duration !== undefined) return record.duration;
  if (record.status === "running" && record.startTime) {
    return Math.max(0, now - Date.parse(record.startTime));
  }
  return null;
}
