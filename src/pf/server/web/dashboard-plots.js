// Trends under the build list, drawn with uPlot (npm, served by pf at /_pf/vendor/):
// build durations per language and the cache hit ratio from the build history, and the
// queue depth sampled from /api/metrics while the page is open.

import uPlot from "/_pf/vendor/uplot/uPlot.esm.js";
import { api, formatBytes, formatMs, h } from "/_pf/common.js";

const HEIGHT = 170;
const LANGUAGE_COLOURS = {
  rust: "#e8590c",
  c: "#1971c2",
  fortran: "#7048e8",
  wat: "#2b8a3e",
  task: "#868e96",
};
const HIT_WINDOW = 20; // builds in the rolling cache hit ratio
const MAX_SAMPLES = 300; // queue-depth samples kept (10 minutes at the poll interval)
const POLL_BUSY_MS = 1000; // while builds are queued or running
const POLL_IDLE_MS = 5000;

function cssVar(name, fallback) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

function axes(yLabel, format) {
  const stroke = cssVar("--muted", "#606672");
  const grid = { stroke: cssVar("--border", "#d9dce3"), width: 1 };
  return [
    { stroke, grid, ticks: grid },
    { stroke, grid, ticks: grid, label: yLabel, size: 56, values: (_, ticks) => ticks.map(format) },
  ];
}

/** An x range over the data of at least `span` seconds, ending at the newest point. */
function timeRange(span) {
  return (plot) => {
    const xs = plot.data[0];
    const last = xs.length ? xs[xs.length - 1] : Date.now() / 1000;
    const first = xs.length ? xs[0] : last;
    return [Math.min(first, last - span), last + (last - first) * 0.02];
  };
}

function endSeconds(record) {
  const ms = Date.parse(record.endTime);
  return Number.isNaN(ms) ? null : ms / 1000;
}

class Chart {
  constructor(node, options, data) {
    this.node = node;
    this.plot = new uPlot({ ...options, width: this._width(), height: HEIGHT }, data, node);
    this.resize = new ResizeObserver(() =>
      this.plot.setSize({ width: this._width(), height: HEIGHT }),
    );
    this.resize.observe(node);
  }

  destroy() {
    this.resize.disconnect();
    this.plot.destroy();
  }

  _width() {
    return Math.max(200, Math.floor(this.node.clientWidth));
  }
}

export class Plots {
  constructor({ durations, cache, queue, stats }) {
    this.nodes = { durations, cache, queue };
    this.stats = stats;
    this.languages = [];
    this.durations = null;
    this.cache = null;
    this.queue = new Chart(
      queue,
      {
        scales: {
          x: { time: true, range: timeRange(60) },
          y: { range: (_, min, max) => [0, Math.max(4, max ?? 0)] },
        },
        axes: axes("builds", (v) => String(v)),
        series: [
          {},
          {
            label: "queued",
            stroke: cssVar("--warn", "#e67700"),
            width: 2,
            paths: uPlot.paths.stepped({ align: 1 }),
          },
          {
            label: "running",
            stroke: cssVar("--run", "#1971c2"),
            width: 2,
            paths: uPlot.paths.stepped({ align: 1 }),
          },
        ],
      },
      [[], [], []],
    );
    this.samples = [[], [], []];
    this.timer = null;
    this.nextAt = 0;
    this.polledAt = 0;
    this.busy = () => false;
  }

  /** Polls /api/metrics while the page is visible, faster while `busy()` says builds run. */
  start(busy) {
    this.busy = busy;
    this._poll();
  }

  async _poll() {
    this.timer = null;
    this.polledAt = performance.now();
    let active = false;
    if (!document.hidden) {
      try {
        const metrics = await api("GET", "/api/metrics");
        this._metrics(metrics);
        active = metrics.queuedBuilds + metrics.activeBuilds > 0;
      } catch (error) {
        this.stats.dataset.error = error.message; // the connection banner tells the user
      }
    }
    this._next(active || this.busy() ? POLL_BUSY_MS : POLL_IDLE_MS);
  }

  _next(wait) {
    this.nextAt = performance.now() + wait;
    this.timer = setTimeout(() => this._poll(), wait);
  }

  /** Builds started or ended: poll at the busy pace from now on. */
  nudge() {
    if (this.timer === null || this.nextAt - performance.now() <= POLL_BUSY_MS) return;
    clearTimeout(this.timer);
    this._next(Math.max(0, this.polledAt + POLL_BUSY_MS - performance.now()));
  }

  _metrics(m) {
    const now = Date.now() / 1000;
    const [xs, queued, running] = this.samples;
    xs.push(now);
    queued.push(m.queuedBuilds);
    running.push(m.activeBuilds);
    if (xs.length > MAX_SAMPLES) for (const series of this.samples) series.shift();
    this.queue.plot.setData(this.samples);
    const lookups = m.cacheHits + m.cacheMisses;
    const ratio = lookups ? `${Math.round((100 * m.cacheHits) / lookups)}%` : "–";
    const tiles = [
      ["builds", m.buildCount],
      ["running", m.activeBuilds],
      ["queued", m.queuedBuilds],
      ["cache hits", `${m.cacheHits} / ${lookups} (${ratio})`],
      ["WebSocket clients", m.wsConnections],
      ["avg request", formatMs(m.avgRequestTime)],
      ["server RSS", formatBytes(m.memoryUsage?.rss)],
    ];
    this.stats.replaceChildren(
      ...tiles.map(([label, value]) =>
        h(
          "div",
          { class: "stat" },
          h("span", { class: "stat-value" }, String(value)),
          h("span", { class: "muted" }, label),
        ),
      ),
    );
  }

  /** Redraws the history charts from the finished builds the page knows. */
  history(records) {
    const done = records
      .filter((r) => r.status === "completed" && !r._partial && r.endTime)
      .sort((a, b) => Date.parse(a.endTime) - Date.parse(b.endTime));
    this._durations(done.filter((r) => !r.cached && r.duration !== null));
    this._cache(done.filter((r) => r.kind !== "task"));
  }

  _durations(builds) {
    this.nodes.durations.toggleAttribute("data-empty", builds.length === 0);
    const languages = [...new Set(builds.map((r) => r.language))].sort();
    const xs = [];
    const ys = languages.map(() => []);
    const index = new Map(languages.map((l, i) => [l, i]));
    for (const record of builds) {
      const x = endSeconds(record);
      if (x === null) continue;
      xs.push(x);
      ys.forEach((series, i) =>
        series.push(i === index.get(record.language) ? record.duration : null),
      );
    }
    if (!this.durations || languages.join() !== this.languages.join()) {
      this.languages = languages;
      this.durations?.destroy();
      this.durations = new Chart(
        this.nodes.durations,
        {
          scales: { x: { time: true, range: timeRange(60) } },
          axes: axes("ms", (v) => formatMs(v)),
          series: [
            {},
            ...languages.map((language) => ({
              label: language,
              stroke: LANGUAGE_COLOURS[language] || "#868e96",
              width: 1.5,
              spanGaps: true,
              points: { show: true, size: 5 },
              value: (_, v) => (v === null ? "–" : formatMs(v)),
            })),
          ],
        },
        [xs, ...ys],
      );
      return;
    }
    this.durations.plot.setData([xs, ...ys]);
  }

  _cache(builds) {
    this.nodes.cache.toggleAttribute("data-empty", builds.length === 0);
    const xs = [];
    const ratio = [];
    let hits = 0;
    for (let i = 0; i < builds.length; i += 1) {
      hits += builds[i].cached ? 1 : 0;
      if (i >= HIT_WINDOW) hits -= builds[i - HIT_WINDOW].cached ? 1 : 0;
      const x = endSeconds(builds[i]);
      if (x === null) continue;
      xs.push(x);
      ratio.push((100 * hits) / Math.min(i + 1, HIT_WINDOW));
    }
    const data = [xs, ratio];
    if (!this.cache) {
      this.cache = new Chart(
        this.nodes.cache,
        {
          scales: { x: { time: true, range: timeRange(60) }, y: { range: [0, 100] } },
          axes: axes("%", (v) => `${v}%`),
          series: [
            {},
            {
              label: "hit ratio",
              stroke: cssVar("--ok", "#2b8a3e"),
              fill: "rgba(43, 138, 62, 0.12)",
              width: 2,
              value: (_, v) => (v === null ? "–" : `${Math.round(v)}%`),
            },
          ],
        },
        data,
      );
      return;
    }
    this.cache.plot.setData(data);
  }
}
