/**
 * What the coordinator tells about itself: the status view (GET /api/status, the dashboard),
 * the measured half of the report (GET /api/report-data), the failover figures both show, and
 * the periodic "pool throughput" log line. Virtual (simulated) workers' work is always kept
 * apart from the real figures.
 */
import { createHash } from "node:crypto";
import os from "node:os";
import type { Logger } from "pino";
import { CATALOG } from "../../shared/onnx/catalog.js";
import { PROTOCOL_VERSION } from "../../shared/protocol/messages.js";
import { jobView } from "../api/jobs.js";
import type { StatusView } from "../api/status.js";
import { workerView } from "../api/workers.js";
import type { Viewer } from "../http/auth.js";
import type { JobService } from "../jobs/job-service.js";
import type { ModelStore } from "../jobs/model-store.js";
import type { ReportData } from "../report/report-data.js";
import type { Scheduler } from "../scheduling/scheduler.js";
import { VERSION } from "../../shared/version.js";
import type { CoordinatorEvents } from "./events.js";
import type { Throughput } from "./throughput.js";

/** Resend latencies kept for the median and max. */
const MAX_RESEND_SAMPLES = 1000;

/** Shards handed back (dead worker, timeout) and sent again: how long each waited. */
export class Failover {
  /** Milliseconds from a shard being handed back to it being sent again, the latest last. */
  readonly resendLatency: number[] = [];
  private lastResentAt: number | null = null;

  constructor(events: CoordinatorEvents) {
    events.on("shardResent", (e) => {
      this.resendLatency.push(e.afterMs);
      if (this.resendLatency.length > MAX_RESEND_SAMPLES) this.resendLatency.shift();
      this.lastResentAt = Date.now();
    });
  }

  view(): StatusView["failover"] {
    return { resends: this.resendLatency.length, lastResentAt: this.lastResentAt, resendLatencyMs: summarize(this.resendLatency) };
  }
}

/** What the views are built from; the coordinator wires it. */
export interface StatusSources {
  /** The coordinator's URL (known once it listens). */
  url: () => string;
  scheduler: Scheduler;
  jobs: JobService;
  models: ModelStore;
  throughput: Throughput;
  virtualThroughput: Throughput;
  failover: Failover;
  /** True for a job that had shards on virtual workers. */
  isVirtualJob: (jobId: string) => boolean;
}

/** Builds the status and report-data views; a client sees only its own jobs. */
export class StatusViews {
  constructor(private readonly s: StatusSources) {}

  /** Everything `status` shows. */
  status(viewer: Viewer): StatusView {
    const { scheduler, throughput, virtualThroughput } = this.s;
    const r = throughput.rates();
    return {
      version: VERSION,
      protocol: PROTOCOL_VERSION,
      url: this.s.url(),
      uptimeSec: Math.round(process.uptime()),
      workers: [...scheduler.workers].map(workerView),
      jobs: this.s.jobs.list(viewer).map(jobView),
      throughput: {
        shardsPerSec: r.shardsPerSec,
        samplesPerSec: r.samplesPerSec,
        gflopsPerSec: r.gflopsPerSec,
        totalShards: throughput.total.shards,
        totalSamples: throughput.total.samples,
        totalGflop: throughput.total.flops / 1e9,
      },
      virtualThroughput: {
        totalShards: virtualThroughput.total.shards,
        totalSamples: virtualThroughput.total.samples,
        peakShardsPerSec: virtualThroughput.peakShardsPerSec,
      },
      counters: { ...scheduler.counters },
      failover: this.s.failover.view(),
      memory: { rssBytes: process.memoryUsage().rss, hostname: os.hostname() },
    };
  }

  /** The measured half of the report: per worker and model, jobs, capacity. */
  reportData(viewer: Viewer): ReportData {
    const { scheduler, throughput, virtualThroughput } = this.s;
    const rows = this.s.jobs.list(viewer);
    const models = [...new Set(rows.map((j) => j.model))].flatMap((sha) => {
      const m = this.s.models.get(sha);
      return m ? [{ sha256: sha, flopsPerSample: m.info.flopsPerSample, name: catalogNameOf(sha) }] : [];
    });
    const cpus = os.cpus();
    return {
      generatedAt: Date.now(),
      coordinator: {
        url: this.s.url(),
        version: VERSION,
        host: { cpus: cpus.length, platform: process.platform, arch: process.arch, cpuModel: cpus[0]?.model ?? "unknown" },
        uptimeSec: Math.round(process.uptime()),
        rssBytes: process.memoryUsage().rss,
        connectedWorkers: scheduler.workers.size,
        peakConnectedWorkers: scheduler.peakWorkers,
        peakShardsPerSec: Math.max(throughput.peakShardsPerSec, virtualThroughput.peakShardsPerSec),
      },
      models,
      workers: [...[...scheduler.workers].map((w) => w.toReport(true)), ...scheduler.departed.map((w) => w.toReport(false))],
      jobs: rows.map((row) => {
        const v = jobView(row);
        return {
          id: v.id, model: v.model, state: v.state, rows: v.rows, samplesDone: v.samplesDone,
          startedAt: v.startedAt, finishedAt: v.finishedAt, samplesPerSec: v.samplesPerSec,
          virtual: this.s.isVirtualJob(v.id),
        };
      }),
    };
  }
}

/** What the throughput line counts from. */
export interface ThroughputSources {
  scheduler: Scheduler;
  throughput: Throughput;
  virtualThroughput: Throughput;
}

/**
 * One info line per interval while work runs: workers, busy workers and rates over the
 * interval. Virtual workers' work is reported in fields of its own, never in the real rates.
 * A rescheduled, unref'd timeout: it never overlaps itself nor keeps the process alive.
 */
export class ThroughputLog {
  private timer: NodeJS.Timeout | null = null;
  private last = { shards: 0, samples: 0, flops: 0, virtualShards: 0, virtualSamples: 0, at: Date.now() };

  constructor(
    private readonly log: Logger,
    private readonly s: ThroughputSources,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    this.stop();
    this.last = { ...this.s.throughput.total, virtualShards: this.s.virtualThroughput.total.shards, virtualSamples: this.s.virtualThroughput.total.samples, at: Date.now() };
    this.schedule();
  }

  /** Safe to call twice. */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      this.write();
      this.schedule();
    }, this.intervalMs);
    this.timer.unref();
  }

  private write(): void {
    const { scheduler } = this.s;
    const now = Date.now();
    const total = this.s.throughput.total;
    const vtotal = this.s.virtualThroughput.total;
    const last = this.last;
    const working = scheduler.activeJobs.length > 0 || total.shards !== last.shards || vtotal.shards !== last.virtualShards;
    const secs = Math.max(1e-3, (now - last.at) / 1000);
    this.last = { ...total, virtualShards: vtotal.shards, virtualSamples: vtotal.samples, at: now };
    if (!working) return;
    let virtualWorkers = 0;
    for (const w of scheduler.workers) if (w.virtual) virtualWorkers++;
    this.log.info(
      {
        workers: scheduler.workers.size - virtualWorkers,
        busyWorkers: scheduler.busyWorkers(),
        jobs: scheduler.activeJobs.length,
        shardsPerSec: round((total.shards - last.shards) / secs),
        samplesPerSec: round((total.samples - last.samples) / secs),
        gflopsPerSec: round((total.flops - last.flops) / secs / 1e9),
        ...(virtualWorkers > 0 || vtotal.shards > 0
          ? {
              virtualWorkers,
              virtualShardsPerSec: round((vtotal.shards - last.virtualShards) / secs),
              virtualSamplesPerSec: round((vtotal.samples - last.virtualSamples) / secs),
            }
          : {}),
      },
      "pool throughput",
    );
  }
}

let catalogShas: Map<string, string> | null = null;

/** The catalog name of a model, when its bytes are a catalog build (computed once, lazily). */
function catalogNameOf(sha: string): string | null {
  catalogShas ??= new Map(CATALOG.map((m) => [createHash("sha256").update(m.build()).digest("hex"), m.name]));
  return catalogShas.get(sha) ?? null;
}

function summarize(xs: readonly number[]): { median: number; max: number } {
  if (xs.length === 0) return { median: 0, max: 0 };
  const sorted = [...xs].sort((a, b) => a - b);
  return { median: sorted[Math.floor(sorted.length / 2)]!, max: sorted[sorted.length - 1]! };
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
