/**
 * The dashboard's view of the pool: a compact snapshot built from the status view (api/status.ts),
 * small enough to send every second to every open dashboard whatever the pool's size.
 * Worker and job lists are capped (real workers listed before virtual ones) and come with
 * counts; virtual (simulated) work is kept in fields of its own and never enters a real figure.
 */
import { DEFAULT_PROFILES, type Profiles } from "../report/reference-profiles.js";
import { H100_MEASURED, h100SamplesPerSec } from "../report/claim.js";
import type { Rates } from "../observe/throughput.js";
import type { JobView } from "../api/jobs.js";
import type { StatusView } from "../api/status.js";
import type { WorkerView } from "../api/workers.js";

/** Most workers listed in one snapshot; the rest are only counted. */
export const MAX_LISTED_WORKERS = 200;
/** Most unfinished jobs listed, and most finished ones listed after them. */
export const MAX_ACTIVE_JOBS = 50;
export const MAX_FINISHED_JOBS = 20;
const MAX_ERROR_CHARS = 300;

/** The part of the status view a snapshot is built from. */
export type StatusInput = Pick<StatusView, "version" | "uptimeSec" | "workers" | "jobs" | "throughput" | "virtualThroughput">;

/** What the snapshot needs beyond the status: model costs, virtual jobs, the virtual rate. */
export interface SnapshotContext {
  flopsPerSample: (model: string) => number | null;
  isVirtualJob: (jobId: string) => boolean;
  virtualRates: Rates;
  profiles?: Profiles;
  now?: number;
}

export interface WorkerRow {
  id: string;
  name: string;
  platform: string;
  arch: string;
  virtual: boolean;
  state: string;
  busy: boolean;
  shardsDone: number;
  samplesPerSec: number;
  maxCpu: number;
  lastSeen: number;
}

export interface JobRow {
  id: string;
  state: string;
  model: string;
  flopsPerSample: number | null;
  rows: number;
  samplesDone: number;
  progress: number;
  samplesPerSec: number;
  /** Seconds left at the job's average rate so far; null when unknown or finished. */
  etaSec: number | null;
  virtual: boolean;
  error: string | null;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
}

export interface H100Figure {
  /** Pooled real GFLOP/s divided by `h100GflopsPerSec`. */
  equivalents: number;
  /** One H100's effective GFLOP/s on the models being run. */
  h100GflopsPerSec: number;
  method: "measured (MLPerf)" | "peak x utilization, assumed";
  /** How the page labels the figure. */
  label: string;
}

export interface DashboardSnapshot {
  /** Server time (ms since the epoch) the snapshot was taken; `lastSeen` values are on this clock. */
  at: number;
  version: string;
  uptimeSec: number;
  workers: {
    real: number;
    realBusy: number;
    virtual: number;
    virtualBusy: number;
    /** Real workers first, then virtual ones, at most MAX_LISTED_WORKERS. */
    listed: WorkerRow[];
    unlisted: { real: number; virtual: number };
  };
  /** Real workers only. */
  throughput: {
    samplesPerSec: number;
    gflopsPerSec: number;
    shardsPerSec: number;
    totalSamples: number;
    totalGflop: number;
    h100: H100Figure | null;
  };
  /** Simulated workers only, never added to `throughput`. */
  virtualThroughput: { samplesPerSec: number; shardsPerSec: number; totalSamples: number; totalShards: number };
  jobs: {
    total: number;
    active: number;
    /** Unfinished jobs (oldest first), then the most recently finished. */
    listed: JobRow[];
    unlisted: number;
  };
}

const FINISHED = new Set(["done", "failed", "cancelled"]);

/** Builds the compact snapshot the dashboard renders. */
export function buildSnapshot(status: StatusInput, ctx: SnapshotContext): DashboardSnapshot {
  const now = ctx.now ?? Date.now();
  const workers = workerSummary(status.workers);
  const jobs = status.jobs.map((j) => jobRow(j, ctx));
  const active = jobs.filter((j) => !FINISHED.has(j.state)).sort((a, b) => a.createdAt - b.createdAt);
  const finished = jobs
    .filter((j) => FINISHED.has(j.state))
    .sort((a, b) => (b.finishedAt ?? b.createdAt) - (a.finishedAt ?? a.createdAt));
  const listedJobs = [...active.slice(0, MAX_ACTIVE_JOBS), ...finished.slice(0, MAX_FINISHED_JOBS)];
  const t = status.throughput;
  return {
    at: now,
    version: status.version,
    uptimeSec: status.uptimeSec,
    workers,
    throughput: {
      samplesPerSec: t.samplesPerSec,
      gflopsPerSec: t.gflopsPerSec,
      shardsPerSec: t.shardsPerSec,
      totalSamples: t.totalSamples,
      totalGflop: t.totalGflop,
      h100: h100Figure(t.gflopsPerSec, jobs, ctx.profiles ?? DEFAULT_PROFILES),
    },
    virtualThroughput: {
      samplesPerSec: ctx.virtualRates.samplesPerSec,
      shardsPerSec: ctx.virtualRates.shardsPerSec,
      totalSamples: status.virtualThroughput.totalSamples,
      totalShards: status.virtualThroughput.totalShards,
    },
    jobs: { total: jobs.length, active: active.length, listed: listedJobs, unlisted: jobs.length - listedJobs.length },
  };
}

function workerSummary(all: readonly WorkerView[]): DashboardSnapshot["workers"] {
  const real: WorkerView[] = [];
  const virtual: WorkerView[] = [];
  let realBusy = 0;
  let virtualBusy = 0;
  for (const w of all) {
    if (w.virtual) {
      virtual.push(w);
      if (w.busy) virtualBusy++;
    } else {
      real.push(w);
      if (w.busy) realBusy++;
    }
  }
  // Oldest connection first, so rows keep their places from one second to the next. The
  // registry already holds workers in connection order; the sort only guards that.
  const byAge = (a: WorkerView, b: WorkerView) => a.connectedAt - b.connectedAt;
  const listedReal = real.sort(byAge).slice(0, MAX_LISTED_WORKERS);
  const listedVirtual = virtual.sort(byAge).slice(0, MAX_LISTED_WORKERS - listedReal.length);
  return {
    real: real.length,
    realBusy,
    virtual: virtual.length,
    virtualBusy,
    listed: [...listedReal, ...listedVirtual].map(workerRow),
    unlisted: { real: real.length - listedReal.length, virtual: virtual.length - listedVirtual.length },
  };
}

function workerRow(w: WorkerView): WorkerRow {
  return {
    id: w.id,
    name: w.name,
    platform: w.platform,
    arch: w.arch,
    virtual: w.virtual,
    state: w.state,
    busy: w.busy,
    shardsDone: w.shardsDone,
    samplesPerSec: round(w.samplesPerSec),
    maxCpu: w.maxCpu,
    lastSeen: w.lastSeen,
  };
}

function jobRow(j: JobView, ctx: SnapshotContext): JobRow {
  const running = !FINISHED.has(j.state);
  const left = j.rows - j.samplesDone;
  return {
    id: j.id,
    state: j.state,
    model: j.model,
    flopsPerSample: ctx.flopsPerSample(j.model),
    rows: j.rows,
    samplesDone: j.samplesDone,
    progress: j.progress,
    samplesPerSec: round(j.samplesPerSec),
    etaSec: running && j.samplesPerSec > 0 ? round(left / j.samplesPerSec) : null,
    virtual: ctx.isVirtualJob(j.id),
    error: j.error === null ? null : j.error.slice(0, MAX_ERROR_CHARS),
    createdAt: j.createdAt,
    startedAt: j.startedAt,
    finishedAt: j.finishedAt,
  };
}

/**
 * Pooled real GFLOP/s over one H100's effective GFLOP/s on the models being run (the
 * unfinished jobs' models, else the latest job's). The numerator counts real workers' work
 * only, so a job that virtual workers also touched still names a model real workers ran.
 * An H100 at peak x utilization runs any model at the same GFLOP/s; only ResNet-50-like
 * models have a measured (MLPerf) rate, used when every model in play is one. Null when no
 * job has a known model cost.
 */
export function h100Figure(poolGflopsPerSec: number, jobs: readonly JobRow[], p: Profiles): H100Figure | null {
  const known = jobs.filter((j) => j.flopsPerSample !== null && j.flopsPerSample > 0);
  const unfinished = known.filter((j) => !FINISHED.has(j.state));
  const latest = known.reduce<JobRow | null>((best, j) => (best === null || j.createdAt > best.createdAt ? j : best), null);
  const inPlay = unfinished.length > 0 ? unfinished : latest ? [latest] : [];
  const flops = [...new Set(inPlay.map((j) => j.flopsPerSample!))];
  if (flops.length === 0) return null;
  const rates = flops.map((f) => ({ f, rate: h100SamplesPerSec(f, p) }));
  const allMeasured = rates.every((r) => r.rate.method === H100_MEASURED);
  const used = allMeasured ? rates : rates.filter((r) => r.rate.method !== H100_MEASURED);
  const h100Gflops = used.reduce((acc, r) => acc + (r.rate.samplesPerSec * r.f) / 1e9, 0) / used.length;
  const method = used[0]!.rate.method;
  return {
    equivalents: h100Gflops > 0 ? poolGflopsPerSec / h100Gflops : 0,
    h100GflopsPerSec: h100Gflops,
    method,
    label: method === H100_MEASURED ? "≈ H100s (MLPerf measured)" : "≈ H100s (peak × utilization, assumed)",
  };
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
