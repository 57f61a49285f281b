// The dashboard page: wires the build store to the WebSocket events, the REST API and the
// views. Events only change the store; the views draw the changes once per animation
// frame, so a burst of events (or a `batch` of hundreds) costs one pass over the DOM.

import { api, connectEvents, connectionBanner, h, sessionControls } from "/_pf/common.js";
import { BuildStore, STATUSES, TERMINAL } from "/_pf/dashboard-store.js";
import { BuildList } from "/_pf/dashboard-list.js";
import { Detail } from "/_pf/dashboard-detail.js";

const HISTORY_LIMIT = 1000; // the most /api/status lists at once
const FETCH_ONE_BY_ONE = 8; // past this many finished builds, one list request instead
const TICK_MS = 1000;
const FINISHED_DELAY_MS = 200; // finished builds are fetched together
const PLOT_EVERY_MS = 1000;

const $ = (id) => document.getElementById(id);
const store = new BuildStore();
const params = new URLSearchParams(location.search);
const filters = { language: params.get("language") || "", status: params.get("status") || "" };

let events = null;
let connected = false;
let following = null; // the build whose log lines the server sends us
let frameWanted = false;
let redrawAll = false;
let redrawDetail = false;
let tickDue = false;
let running = false; // a drawn build is running: its ETA and elapsed time move
let plots = null;
let plotsDirty = false;
let plottedAt = -Infinity;
let plotTimer = null;
const finished = new Set();
let finishedTimer = null;

const list = new BuildList($("build-list"), $("list-footer"), { onAction: act });
list.onMore = () => schedule(true);
const detail = new Detail($("detail"), {
  onClose: () => select(null),
  onAction: act,
  subscribe: follow,
  redraw: () => schedule(),
  onLogged: (id) => store.logged(id),
});

function schedule(all = false) {
  redrawAll ||= all;
  if (frameWanted) return;
  frameWanted = true;
  requestAnimationFrame(frame);
}

function accept(record) {
  if (filters.language && record.language !== filters.language) return false;
  if (filters.status === "active") return !TERMINAL.has(record.status);
  return !filters.status || record.status === filters.status;
}

function frame() {
  frameWanted = false;
  const [changed, membership] = store.drain();
  const { shown, total } = store.select(accept, list.limit);
  list.render(shown, total, changed, redrawAll);
  running = shown.some((r) => r.status === "running") || store.get(detail.id)?.status === "running";
  if (membership || changed.size || redrawAll) drawCounts();
  detail.render(store.get(detail.id), redrawDetail || redrawAll || changed.has(detail.id));
  if (tickDue) {
    list.tick(store);
    detail.tick(store.get(detail.id));
    tickDue = false;
  }
  redrawAll = false;
  redrawDetail = false;
  if (plots && plotsDirty) drawPlots();
}

/** Redraws the history plots at most once per PLOT_EVERY_MS. */
function drawPlots() {
  const wait = plottedAt + PLOT_EVERY_MS - performance.now();
  if (wait > 0) {
    plotTimer ??= setTimeout(() => {
      plotTimer = null;
      schedule();
    }, wait);
    return;
  }
  plotsDirty = false;
  plottedAt = performance.now();
  plots.history(store.order);
}

function drawCounts() {
  const counts = store.counts();
  $("counts").replaceChildren(
    ...STATUSES.filter((s) => counts[s]).map((s) =>
      h(
        "button",
        {
          type: "button",
          class: `count status status-${s}`,
          "data-status": s,
          title: `Show ${s} builds`,
        },
        `${counts[s]} ${s}`,
      ),
    ),
  );
}

// WebSocket ------------------------------------------------------------------------

function onMessage(message) {
  switch (message.type) {
    case "initial_status":
      resync(message.builds || []);
      break;
    case "subscribed":
      detail.subscribed(message.buildIds || []);
      break;
    case "error":
      say(`Server: ${message.error}`, true);
      break;
    default:
      store.apply(message);
      if (message.type !== "build_log" && message.type !== "build_progress") plots?.nudge();
  }
  schedule();
}

const banner = connectionBanner();
function onState(state, seconds) {
  banner(state, seconds);
  const live = $("live");
  live.dataset.state = state;
  live.textContent = { open: "live", connecting: "connecting", closed: "offline" }[state];
  connected = state === "open";
  if (connected) {
    // A new connection streams every build's log lines until told otherwise.
    following = null;
    send({ type: "subscribe", buildIds: [] });
    detail.resubscribe();
  }
}

/** Sends on the open connection only: every (re)connection subscribes afresh, so a
 * message queued while offline would only undo that. */
function send(message) {
  if (connected) events.send(message);
}

/** Sends only the log lines of build `id` from now on. */
function follow(id) {
  if (following && following !== id) send({ type: "unsubscribe", buildIds: [following] });
  following = id;
  send({ type: "subscribe", buildIds: [id] });
}

async function resync(builds) {
  const unknown = store.resync(builds);
  document.body.dataset.syncs = String(Number(document.body.dataset.syncs || 0) + 1);
  plotsDirty = true;
  redrawDetail = true;
  // Builds that were running when the connection dropped may have ended meanwhile.
  if (unknown.length) {
    const listed = await loadHistory();
    store.remove(unknown.filter((id) => !listed.has(id)));
    schedule();
  }
}

/** The newest builds from the history; returns their ids. */
async function loadHistory(query = {}) {
  const search = new URLSearchParams({ limit: HISTORY_LIMIT, ...query });
  const { builds } = await api("GET", `/api/status?${search}`);
  store.merge(builds);
  plotsDirty = true;
  schedule();
  return new Set(builds.map((b) => b.buildId));
}

/** A finished build's record (duration, timings, artifacts) is fetched once it ends. */
store.onFinished = (id) => {
  finished.add(id);
  finishedTimer ??= setTimeout(fetchFinished, FINISHED_DELAY_MS);
};
store.onLog = (id, lines) => {
  store.logged(id);
  if (detail.lines(id, lines)) schedule();
};

async function fetchFinished() {
  finishedTimer = null;
  const ids = [...finished].filter((id) => store.get(id));
  finished.clear();
  try {
    if (ids.length <= FETCH_ONE_BY_ONE) {
      const records = await Promise.all(
        ids.map((id) => api("GET", `/api/builds/${encodeURIComponent(id)}`)),
      );
      store.merge(records);
    } else {
      // Many at once: one list of the newest builds that reaches back to the oldest of them.
      const wanted = new Set(ids);
      let deepest = 0;
      store.order.forEach((record, at) => {
        if (wanted.has(record.buildId)) deepest = at;
      });
      const { builds } = await api(
        "GET",
        `/api/status?limit=${Math.min(HISTORY_LIMIT, deepest + 16)}`,
      );
      store.merge(builds);
    }
  } catch (error) {
    say(`Could not load finished builds: ${error.message}`, true);
  }
  plotsDirty = true;
  schedule();
}

// Actions --------------------------------------------------------------------------

function say(text, failed = false) {
  const node = $("build-message");
  node.textContent = text;
  node.classList.toggle("fail", failed);
}

function select(id) {
  const previous = detail.id;
  if (previous === id) return;
  if (previous && following === previous) {
    send({ type: "unsubscribe", buildIds: [previous] });
    following = null;
  }
  list.select(id);
  detail.open(id);
  for (const changed of [previous, id]) if (changed) store.changed.add(changed);
  const url = new URL(location.href);
  url.hash = id ? `build=${id}` : "";
  window.history.replaceState(null, "", url);
  redrawDetail = true;
  schedule();
  // A build linked from elsewhere may be older than the history the page loaded.
  if (id && !store.get(id)) {
    api("GET", `/api/builds/${encodeURIComponent(id)}`)
      .then((record) => {
        store.merge([record]);
        schedule();
      })
      .catch((error) => say(`Build ${id}: ${error.message}`, true));
  }
}

async function act(action, id) {
  if (action === "open") {
    select(id);
    return;
  }
  const record = store.get(id);
  try {
    if (action === "cancel") {
      store.merge([await api("DELETE", `/api/builds/${encodeURIComponent(id)}`)]);
      say(`Cancelled ${id}`);
    } else if (action === "rebuild" && record) {
      const answer = await rebuild(record);
      say(`Rebuild queued: ${answer.buildId}`);
      select(answer.buildId);
    }
  } catch (error) {
    say(`${action} failed: ${error.message}`, true);
  }
  schedule();
}

function rebuild(record) {
  if (record.kind === "task") {
    return api("POST", `/api/tasks/${encodeURIComponent(record.task)}`, {
      params: record.params || {},
    });
  }
  const options = Object.fromEntries(
    Object.entries(record.options || {}).filter(([, v]) => v !== null),
  );
  return api("POST", `/api/build/${encodeURIComponent(record.language)}`, {
    ...options,
    target: record.target,
    project: record.project,
  });
}

// The build form -------------------------------------------------------------------

let system = null;
let projects = [];

async function loadForm() {
  [system, { projects }] = await Promise.all([
    api("GET", "/api/system"),
    api("GET", "/api/projects"),
  ]);
  const project = $("f-project");
  project.replaceChildren(...projects.map((p) => h("option", { value: p.name }, p.name)));
  $("f-target").replaceChildren(...system.buildTargets.map((t) => h("option", { value: t }, t)));
  $("filter-language").append(
    ...[...system.availableLanguages, "task"].map((l) => h("option", { value: l }, l)),
  );
  $("filter-language").value = filters.language;
  project.addEventListener("change", languagesForProject);
  $("f-language").addEventListener("change", targetsForLanguage);
  languagesForProject();
}

function languagesForProject() {
  const chosen = projects.find((p) => p.name === $("f-project").value);
  const languages = chosen ? chosen.languages : system.availableLanguages;
  $("f-language").replaceChildren(...languages.map((l) => h("option", { value: l }, l)));
  $("build-all").disabled = languages.length === 0;
  targetsForLanguage();
}

function targetsForLanguage() {
  const language = $("f-language").value;
  const pairs = system.toolchains[language] || {};
  for (const option of $("f-target").options) {
    const pair = pairs[option.value];
    option.disabled = Boolean(pair && !pair.available);
    option.title =
      pair && !pair.available
        ? pair.reason || "no toolchain"
        : `${pair?.tool ?? ""} ${pair?.version ?? ""}`;
  }
  $("build-one").textContent = language ? `Build ${language}` : "Build language";
  $("build-one").disabled = !language;
}

function formBody() {
  const form = $("build-form");
  const data = new FormData(form);
  const body = {
    target: data.get("target"),
    project: data.get("project") || undefined,
    opt_level: data.get("opt_level"),
    parallel: form.elements.parallel.checked,
    debug: form.elements.debug.checked,
  };
  const passes = String(data.get("passes") || "").trim();
  if (passes) body.passes = passes;
  const exports = String(data.get("exports") || "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (exports.length) body.exports = exports;
  return body;
}

async function submit(all) {
  const buttons = [$("build-one"), $("build-all")];
  for (const b of buttons) b.disabled = true;
  try {
    if (all) {
      const answer = await api("POST", "/api/build/all", formBody());
      say(`${answer.message} (${answer.target}, ${answer.project})`);
    } else {
      const language = $("f-language").value;
      const answer = await api("POST", `/api/build/${encodeURIComponent(language)}`, formBody());
      say(`${answer.message}: ${answer.buildId}`);
      select(answer.buildId);
    }
  } catch (error) {
    say(error.message, true);
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

$("build-form").addEventListener("submit", (event) => {
  event.preventDefault();
  submit(false);
});
$("build-all").addEventListener("click", () => submit(true));

// Filters --------------------------------------------------------------------------

function setFilter(name, value) {
  filters[name] = value;
  $(`filter-${name}`).value = value;
  const url = new URL(location.href);
  if (value) url.searchParams.set(name, value);
  else url.searchParams.delete(name);
  window.history.replaceState(null, "", url);
  schedule(true);
  loadFiltered();
}

/** The newest builds that pass the filters, which may be older than the history loaded. */
function loadFiltered() {
  const query = {};
  if (filters.language) query.language = filters.language;
  if (STATUSES.includes(filters.status)) query.status = filters.status;
  if (Object.keys(query).length === 0) return;
  loadHistory(query).catch((error) => say(`Could not load the builds: ${error.message}`, true));
}

$("filter-status").value = filters.status;
$("filter-language").addEventListener("change", (e) => setFilter("language", e.target.value));
$("filter-status").addEventListener("change", (e) => setFilter("status", e.target.value));
$("counts").addEventListener("click", (event) => {
  const chip = event.target.closest("[data-status]");
  if (chip) setFilter("status", filters.status === chip.dataset.status ? "" : chip.dataset.status);
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && detail.id) select(null);
});

// Start ----------------------------------------------------------------------------

setInterval(() => {
  if (!running) return;
  tickDue = true;
  schedule();
}, TICK_MS);

events = connectEvents({ onMessage, onState });
const linked = /^#build=(.+)$/.exec(location.hash);
if (linked) select(decodeURIComponent(linked[1]));
loadForm().catch((error) => say(`Could not load the build options: ${error.message}`, true));
loadHistory().catch((error) => say(`Could not load the build history: ${error.message}`, true));
loadFiltered();
import("/_pf/dashboard-plots.js")
  .then(({ Plots }) => {
    plots = new Plots({
      durations: $("plot-durations"),
      cache: $("plot-cache"),
      queue: $("plot-queue"),
      stats: $("stats"),
    });
    plots.start(() => running || store.order.some((r) => r.status === "queued"));
    plotsDirty = true;
    schedule();
  })
  .catch((error) => say(`Plots unavailable: ${error.message}`, true));

sessionControls();
