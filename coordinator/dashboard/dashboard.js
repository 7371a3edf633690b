// The edgepool dashboard: renders the snapshots the coordinator streams on /api/events
// (see coordinator/dashboard/snapshot.ts for their shape) and keeps five minutes of pooled
// throughput for the chart. Plain ES module, no build step, nothing fetched from elsewhere.
// Worker names and error texts come from workers: they only ever reach the page as text
// (textContent, text nodes), never as markup.

const HISTORY_MS = 5 * 60_000;
/** The chart's time axis grows through these spans as history builds up, up to HISTORY_MS. */
const WINDOWS_MS = [60_000, 120_000, 180_000, HISTORY_MS];
/** A gap longer than this between snapshots breaks the chart's lines. */
const GAP_MS = 3_500;
/** With no snapshot for this long the page says so. */
const STALE_MS = 4_000;
const SVG_NS = "http://www.w3.org/2000/svg";

/** @type {{ t: number, s: number, g: number }[]} */
const history = [];
/** @type {any} */
let latest = null;
let lastReceived = 0;
/** @type {Map<string, HTMLLIElement>} */
const jobItems = new Map();

const $ = (/** @type {string} */ id) => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`dashboard: #${id} is missing`);
  return el;
};

/**
 * Creates an element; string children become text nodes.
 * @param {string} tag
 * @param {Record<string, string>} [attrs]
 * @param {(Node | string)[]} children
 */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) el.append(typeof c === "string" ? document.createTextNode(c) : c);
  return el;
}

/** @param {string} tag @param {Record<string, string | number>} attrs */
function s(tag, attrs = {}) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

// --- formatting ------------------------------------------------------------------------

const sig3 = new Intl.NumberFormat("en", { maximumSignificantDigits: 3 });
const whole = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });

/** @param {number} n */
function num(n) {
  if (!Number.isFinite(n)) return "–";
  if (n === 0) return "0";
  return Math.abs(n) >= 1000 ? whole.format(n) : sig3.format(n);
}

/** @param {number} n */
function compact(n) {
  if (Math.abs(n) >= 1e9) return `${sig3.format(n / 1e9)}G`;
  if (Math.abs(n) >= 1e6) return `${sig3.format(n / 1e6)}M`;
  if (Math.abs(n) >= 1e4) return `${sig3.format(n / 1e3)}k`;
  return num(n);
}

/** @param {number} sec */
function duration(sec) {
  if (!Number.isFinite(sec) || sec < 0) return "–";
  if (sec < 1) return "< 1 s";
  if (sec < 60) return `${Math.round(sec)} s`;
  if (sec < 3600) return `${Math.floor(sec / 60)} min ${Math.round(sec % 60)} s`;
  return `${Math.floor(sec / 3600)} h ${Math.round((sec % 3600) / 60)} min`;
}

/** @param {number} ms */
function ago(ms) {
  if (ms < 2000) return "just now";
  return `${duration(ms / 1000)} ago`;
}

/** @param {number} flops */
function flopsLabel(flops) {
  if (flops >= 1e9) return `${sig3.format(flops / 1e9)} GFLOP/sample`;
  if (flops >= 1e6) return `${sig3.format(flops / 1e6)} MFLOP/sample`;
  if (flops >= 1e3) return `${sig3.format(flops / 1e3)} kFLOP/sample`;
  return `${sig3.format(flops)} FLOP/sample`;
}

/** 1, 2 or 5 times a power of ten, at least `v`. */
function niceCeil(/** @type {number} */ v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// --- rendering -------------------------------------------------------------------------

/** @param {any} snap */
function render(snap) {
  const w = snap.workers;
  const t = snap.throughput;
  const v = snap.virtualThroughput;

  const realCount = $("real-worker-count");
  realCount.textContent = num(w.real);
  realCount.dataset.count = String(w.real);
  $("real-worker-note").textContent = w.real > 0 ? `${num(w.realBusy)} busy, ${num(w.real - w.realBusy)} idle` : "none connected";

  $("samples-per-sec").textContent = num(t.samplesPerSec);
  $("samples-total").textContent = `${compact(t.totalSamples)} samples in all`;
  $("gflops-per-sec").textContent = num(t.gflopsPerSec);
  $("gflop-total").textContent = `${compact(t.totalGflop)} GFLOP in all`;

  const h100 = t.h100;
  $("h100-label").textContent = h100 ? h100.label : "≈ H100s";
  $("h100-equivalents").textContent = h100 ? num(h100.equivalents) : "–";
  $("h100-note").textContent = h100
    ? `one H100 ≈ ${h100.h100GflopsPerSec >= 1000 ? `${num(h100.h100GflopsPerSec / 1000)} TFLOP/s` : `${num(h100.h100GflopsPerSec)} GFLOP/s`} on the models being run`
    : "appears once a job has run";

  const virtCount = $("virtual-worker-count");
  virtCount.textContent = num(w.virtual);
  virtCount.dataset.count = String(w.virtual);
  $("virtual-worker-note").textContent =
    w.virtual > 0 || v.totalSamples > 0
      ? `${num(w.virtualBusy)} busy · ${num(v.samplesPerSec)} samples/s simulated, kept out of real figures`
      : "simulated; never counted in real figures";

  renderJobs(snap);
  renderWorkers(snap);
  $("footer").textContent =
    `edgepool ${snap.version} · coordinator up ${duration(snap.uptimeSec)} · live over server-sent events. ` +
    "Virtual (simulated) work is kept out of every real figure.";
}

/** @param {any} snap */
function renderJobs(snap) {
  const list = $("jobs");
  const seen = new Set();
  /** @type {HTMLLIElement[]} */
  const order = [];
  for (const job of snap.jobs.listed) {
    seen.add(job.id);
    let li = jobItems.get(job.id);
    if (!li) {
      li = /** @type {HTMLLIElement} */ (h("li", { class: "job", "data-job-id": job.id }));
      jobItems.set(job.id, li);
    }
    updateJob(li, job);
    order.push(li);
  }
  for (const [id, li] of jobItems) {
    if (!seen.has(id)) {
      li.remove();
      jobItems.delete(id);
    }
  }
  // Reorder only when needed so bars keep animating smoothly.
  order.forEach((li, i) => {
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] ?? null);
  });
  $("jobs-empty").hidden = snap.jobs.total > 0;
  $("jobs-summary").textContent = snap.jobs.total > 0 ? `${num(snap.jobs.active)} active, ${num(snap.jobs.total)} in all` : "";
  const more = $("jobs-more");
  more.hidden = snap.jobs.unlisted === 0;
  more.textContent = `${num(snap.jobs.unlisted)} older jobs not listed.`;
}

/** @param {HTMLLIElement} li @param {any} job */
function updateJob(li, job) {
  if (li.childElementCount === 0) {
    // A stable skeleton: the bar element persists, so its width change animates.
    li.append(
      h("div", { class: "job-head" }),
      h("div", { class: "bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100" }, h("div", { class: "fill" })),
      h("div", { class: "job-meta" }),
      h("p", { class: "job-error" }),
    );
  }
  const [head, bar, meta, error] = /** @type {HTMLElement[]} */ ([...li.children]);
  const pct = Math.max(0, Math.min(1, job.progress)) * 100;
  li.dataset.state = job.state;
  li.dataset.progress = String(job.progress);
  li.classList.toggle("virtual", job.virtual);

  head.replaceChildren(h("span", { class: "job-id" }, `job ${job.id}`), h("span", { class: `badge ${job.state}` }, job.state));
  if (job.virtual) head.append(h("span", { class: "tag" }, "virtual"));

  /** @type {HTMLElement} */ (bar.firstElementChild).style.width = `${pct}%`;
  bar.setAttribute("aria-valuenow", pct.toFixed(1));
  bar.setAttribute("aria-label", `job ${job.id} progress`);

  const parts = [h("span", { class: "pct", "data-role": "percent" }, `${pct === 0 || pct === 100 ? pct.toFixed(0) : (Math.floor(pct * 10) / 10).toFixed(1)}%`)];
  parts.push(h("span", {}, `${num(job.samplesDone)} / ${num(job.rows)} samples`));
  if (job.samplesPerSec > 0) parts.push(h("span", {}, `${num(job.samplesPerSec)} samples/s`));
  if (job.etaSec !== null) parts.push(h("span", { "data-role": "eta" }, `ETA ${duration(job.etaSec)}`));
  else if (job.state === "done" && job.startedAt !== null && job.finishedAt !== null) {
    parts.push(h("span", {}, `took ${duration((job.finishedAt - job.startedAt) / 1000)}`));
  }
  parts.push(h("span", {}, `model ${job.model.slice(0, 12)}${job.flopsPerSample ? ` · ${flopsLabel(job.flopsPerSample)}` : ""}`));
  meta.replaceChildren(...parts);

  error.hidden = !job.error;
  error.textContent = job.error ?? "";
}

/** @param {any} snap */
function renderWorkers(snap) {
  const w = snap.workers;
  const real = [];
  const virtual = [];
  for (const row of w.listed) (row.virtual ? virtual : real).push(workerRow(row, snap.at));
  $("real-workers").replaceChildren(...real);
  $("workers-empty").hidden = w.real > 0;
  $("workers-summary").textContent = w.real > 0 ? `${num(w.real)} real, ${num(w.realBusy)} busy` : "";
  const realMore = $("real-more");
  realMore.hidden = w.unlisted.real === 0;
  realMore.textContent = `…and ${num(w.unlisted.real)} more real workers not listed.`;

  const section = $("virtual-section");
  section.hidden = w.virtual === 0;
  $("virtual-workers").replaceChildren(...virtual);
  $("virtual-summary").textContent = `${num(w.virtual)} connected, ${num(w.virtualBusy)} busy`;
  const vMore = $("virtual-more");
  vMore.hidden = w.unlisted.virtual === 0;
  vMore.textContent = `Showing ${num(virtual.length)} of ${num(w.virtual)}; ${num(w.unlisted.virtual)} more virtual workers not listed.`;
}

/** @param {any} row @param {number} now */
function workerRow(row, now) {
  const state = row.state === "draining" ? "draining" : row.busy ? "busy" : "idle";
  const tr = h(
    "tr",
    { "data-worker-id": row.id, "data-state": state },
    h("td", { class: "name" }, row.name),
    h("td", { class: "muted", "data-label": "platform" }, `${row.platform}/${row.arch}`),
    h("td", { class: "num", "data-label": "speed" }, row.samplesPerSec > 0 ? `${num(row.samplesPerSec)} samples/s` : "not measured"),
    h("td", { class: "state" }, h("span", { class: `badge ${state}` }, state)),
    h("td", { class: "num", "data-label": "shards" }, num(row.shardsDone)),
    h("td", { class: "muted", "data-label": "seen" }, ago(now - row.lastSeen)),
  );
  if (row.maxCpu < 100) tr.children[1]?.append(document.createTextNode(` · cpu ≤ ${row.maxCpu}%`));
  return tr;
}

// --- chart -----------------------------------------------------------------------------

function renderChart() {
  const box = $("chart");
  const width = Math.max(280, Math.round(box.clientWidth));
  const narrow = width < 520;
  const panelH = narrow ? 110 : 130;
  const top = 22;
  const gap = 26;
  const left = narrow ? 44 : 54;
  const right = 10;
  const bottom = 22;
  const height = top + panelH + gap + panelH + bottom;
  const now = latest ? latest.at : Date.now();
  const span = history.length > 0 ? now - history[0].t : 0;
  const windowMs = WINDOWS_MS.find((w) => w >= span) ?? HISTORY_MS;
  const t0 = now - windowMs;
  const x = (/** @type {number} */ t) => left + ((t - t0) / windowMs) * (width - left - right);
  $("chart-window").textContent = `real workers, last ${windowMs === 60_000 ? "minute" : `${windowMs / 60_000} minutes`}`;

  const svg = s("svg", { id: "throughput-chart", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "data-points": history.length });
  const title = s("title");
  title.textContent = "Pooled samples/s and GFLOP/s of real workers over the last five minutes";
  svg.append(title);

  const last = history[history.length - 1];
  const panels = [
    { key: "s", cls: "samples", title: "samples/s", y0: top, value: last ? last.s : 0 },
    { key: "g", cls: "gflops", title: "GFLOP/s", y0: top + panelH + gap, value: last ? last.g : 0 },
  ];
  for (const p of panels) {
    const max = niceCeil(Math.max(0, ...history.map((pt) => pt[/** @type {"s"|"g"} */ (p.key)])));
    const y = (/** @type {number} */ val) => p.y0 + panelH - (val / max) * panelH;
    const titleText = s("text", { x: left, y: p.y0 - 8, class: "title" });
    titleText.textContent = `${p.title} `;
    const valueSpan = s("tspan", { class: `${p.cls} title-value` });
    valueSpan.textContent = num(p.value);
    titleText.append(valueSpan);
    svg.append(titleText);
    for (const frac of [0, 0.5, 1]) {
      const gy = y(max * frac);
      svg.append(s("line", { x1: left, x2: width - right, y1: gy, y2: gy, class: "grid" }));
      const label = s("text", { x: left - 6, y: gy + 4, "text-anchor": "end", class: "axis-label" });
      label.textContent = compact(max * frac);
      svg.append(label);
    }
    // One polyline per run of points without a gap (a reconnect leaves a hole, not a ramp).
    /** @type {{t:number,s:number,g:number}[][]} */
    const runs = [];
    for (const pt of history) {
      const run = runs[runs.length - 1];
      if (run && pt.t - run[run.length - 1].t <= GAP_MS) run.push(pt);
      else runs.push([pt]);
    }
    for (const run of runs) {
      const pts = run.map((pt) => `${x(pt.t).toFixed(1)},${y(pt[/** @type {"s"|"g"} */ (p.key)]).toFixed(1)}`);
      if (run.length > 1) {
        const base = y(0).toFixed(1);
        svg.append(s("polygon", { points: `${x(run[0].t).toFixed(1)},${base} ${pts.join(" ")} ${x(run[run.length - 1].t).toFixed(1)},${base}`, class: `area ${p.cls}` }));
      }
      svg.append(s("polyline", { points: pts.join(" "), class: `line ${p.cls}`, "data-series": p.cls }));
    }
    if (last) svg.append(s("circle", { cx: x(last.t).toFixed(1), cy: y(p.value).toFixed(1), r: 3, class: `dot ${p.cls}` }));
  }
  const axisY = height - 6;
  const tickMs = windowMs <= 60_000 ? 15_000 : windowMs <= 120_000 ? 30_000 : 60_000;
  const ticks = windowMs / tickMs;
  for (let i = ticks; i >= 0; i--) {
    // On a narrow screen, every other label (always "now").
    if (narrow && ticks > 3 && i % 2 === 1) continue;
    const back = i * tickMs;
    const anchor = i === ticks ? "start" : i === 0 ? "end" : "middle";
    const label = s("text", { x: x(now - back), y: axisY, "text-anchor": anchor, class: "axis-label" });
    label.textContent = back === 0 ? "now" : back % 60_000 === 0 ? `−${back / 60_000} min` : `−${back / 1000} s`;
    svg.append(label);
  }
  box.replaceChildren(svg);
}

// --- connection ------------------------------------------------------------------------

/** @param {"connecting" | "live" | "reconnecting" | "stale"} state @param {string} text */
function setConnection(state, text) {
  const el = $("connection");
  el.dataset.state = state;
  $("connection-text").textContent = text;
}

/** @param {any} snap */
function onSnapshot(snap) {
  latest = snap;
  lastReceived = Date.now();
  history.push({ t: snap.at, s: snap.throughput.samplesPerSec, g: snap.throughput.gflopsPerSec });
  while (history.length > 0 && history[0].t < snap.at - HISTORY_MS) history.shift();
  setConnection("live", "live");
  render(snap);
  renderChart();
}

// On a coordinator with tokens the page is opened as /?token=<client or admin token>:
// EventSource cannot send an Authorization header, so the feed gets the token in its query.
// The token is then taken out of the address bar (and this history entry).
const pageToken = new URLSearchParams(location.search).get("token");
if (pageToken) history.replaceState(null, "", location.pathname + location.hash);
const eventsUrl = pageToken ? `/api/events?token=${encodeURIComponent(pageToken)}` : "/api/events";

function connect() {
  const source = new EventSource(eventsUrl);
  source.addEventListener("snapshot", (e) => {
    let snap;
    try {
      snap = JSON.parse(/** @type {MessageEvent<string>} */ (e).data);
    } catch {
      return;
    }
    if (snap && typeof snap === "object" && snap.workers && snap.throughput && snap.jobs) onSnapshot(snap);
  });
  source.addEventListener("open", () => setConnection("live", "live"));
  source.addEventListener("error", () => {
    // EventSource reconnects by itself unless the server answered with an error.
    if (source.readyState === EventSource.CLOSED) {
      setConnection("reconnecting", "disconnected; retrying…");
      setTimeout(connect, 3000);
    } else {
      setConnection("reconnecting", "reconnecting…");
    }
  });
}

$("join-command").textContent = `npx edgepool worker --coordinator ${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;
setInterval(() => {
  if (lastReceived > 0 && Date.now() - lastReceived > STALE_MS && $("connection").dataset.state === "live") {
    setConnection("stale", "no update for a while…");
  }
}, 1000);
let resizeFrame = 0;
window.addEventListener("resize", () => {
  cancelAnimationFrame(resizeFrame);
  resizeFrame = requestAnimationFrame(renderChart);
});
renderChart();
connect();
