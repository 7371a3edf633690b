/**
 * Prometheus metrics for one coordinator (`GET /metrics`), on a registry of its own so that
 * several coordinators in one process never share or clash over series.
 *
 * The scheduler and the throughput counters already keep every total; they stay the source of
 * truth and are copied into the exposition when a scrape asks (`collect()`), so the per-shard
 * path gains nothing but one histogram observation (`shardAccepted`). Work done by virtual
 * (simulated) workers carries `kind="virtual"`, never mixed into `kind="real"`.
 */
import type { ServerResponse } from "node:http";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Job } from "../jobs/job.js";
import type { SchedulerCounters } from "../scheduling/scheduler.js";
import type { Throughput } from "./throughput.js";
import type { WorkerSession } from "../workers/session.js";
import type { CoordinatorEvents } from "./events.js";

export type WorkerKind = "real" | "virtual";
const KINDS: readonly WorkerKind[] = ["real", "virtual"];

/** Shard round trips from a few ms (tiny shards on loopback) to the slowest allowed devices. */
export const SHARD_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** What the metrics read at scrape time; the coordinator's own objects satisfy it. */
export interface MetricsSources {
  scheduler: {
    readonly counters: SchedulerCounters;
    readonly workers: ReadonlySet<WorkerSession>;
    readonly activeJobs: readonly Job[];
  };
  throughput: Record<WorkerKind, Throughput>;
  /** Shard round trips and finished jobs are counted from these. */
  events: CoordinatorEvents;
}

export class CoordinatorMetrics {
  readonly registry = new Registry();
  private readonly shardDuration: Histogram<"kind">;
  private readonly jobsFinished: Counter<"state">;
  constructor(src: MetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });

    const c = () => src.scheduler.counters;
    const scalar = (name: string, help: string, read: () => number) =>
      new Counter({
        name, help, registers,
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    const byKind = (name: string, help: string, read: (kind: WorkerKind) => number) =>
      new Counter({
        name, help, registers, labelNames: ["kind"] as const,
        collect() {
          this.reset();
          for (const kind of KINDS) this.inc({ kind }, read(kind));
        },
      });

    scalar("edgepool_shards_dispatched_total", "Shard frames sent to workers, copies and resends included.", () => c().dispatched);
    byKind("edgepool_shards_completed_total", "Shard results accepted (each shard once), by kind of worker (real or virtual).", (k) => src.throughput[k].total.shards);
    scalar("edgepool_shards_failed_total", "Shards a worker answered with an error, or whose result was rejected.", () => c().failed);
    scalar(
      "edgepool_shards_retried_total",
      "Shards handed back to their job's queue to be sent again: worker gone or draining, error, or timeout.",
      () => c().requeued,
    );
    scalar("edgepool_shards_timed_out_total", "Dispatches given up on at their deadline (each is also retried unless its job failed).", () => c().timedOut);
    scalar("edgepool_shards_duplicated_total", "Straggler shards copied onto an idle worker.", () => c().duplicated);
    scalar("edgepool_shard_copies_cancelled_total", "Copies of a shard cancelled because another copy finished first.", () => c().duplicatesCancelled);
    scalar("edgepool_shard_results_dropped_total", "Results that came too late (withdrawn dispatch or shard already accepted) and were dropped.", () => c().lateResults);
    byKind("edgepool_samples_completed_total", "Samples (rows) in accepted shard results, by kind of worker.", (k) => src.throughput[k].total.samples);
    byKind("edgepool_flops_completed_total", "Floating-point operations of accepted shards (rows x the model's FLOPs per sample), by kind of worker.", (k) => src.throughput[k].total.flops);
    scalar("edgepool_network_received_bytes_total", "Bytes of shard result frames received from workers.", () => c().bytesIn);
    scalar("edgepool_network_sent_bytes_total", "Bytes of shard frames sent to workers.", () => c().bytesOut);

    this.jobsFinished = new Counter({
      name: "edgepool_jobs_finished_total",
      help: "Jobs that reached a terminal state since this coordinator started, by state (done, failed, cancelled).",
      labelNames: ["state"] as const,
      registers,
    });

    this.shardDuration = new Histogram({
      name: "edgepool_shard_duration_seconds",
      help: "Shard round trip, from its frame being sent to its result being accepted, by kind of worker.",
      labelNames: ["kind"] as const,
      buckets: SHARD_DURATION_BUCKETS,
      registers,
    });
    // Every series exists from the first scrape, so rate() and absent() see zeros, not gaps.
    for (const kind of KINDS) this.shardDuration.zero({ kind });
    for (const state of ["done", "failed", "cancelled"]) this.jobsFinished.inc({ state }, 0);

    new Gauge({
      name: "edgepool_workers",
      help: "Connected workers by platform from their hello (an OS such as linux, or virtual) and state (busy, idle, draining).",
      labelNames: ["platform", "state"] as const,
      registers,
      collect() {
        this.reset();
        const counts = new Map<string, { platform: string; state: string; n: number }>();
        for (const w of src.scheduler.workers) {
          const platform = w.hello?.platform ?? "unknown";
          const state = w.state === "draining" ? "draining" : w.inflight > 0 ? "busy" : "idle";
          const key = `${platform}\0${state}`;
          const entry = counts.get(key) ?? { platform, state, n: 0 };
          entry.n += 1;
          counts.set(key, entry);
        }
        for (const { platform, state, n } of counts.values()) this.set({ platform, state }, n);
      },
    });

    new Gauge({
      name: "edgepool_jobs",
      help: "Jobs being worked on, by state (queued, running); finished jobs are counted by edgepool_jobs_finished_total.",
      labelNames: ["state"] as const,
      registers,
      collect() {
        let queued = 0;
        let running = 0;
        for (const j of src.scheduler.activeJobs) {
          if (j.state === "queued") queued++;
          else if (j.state === "running") running++;
        }
        this.set({ state: "queued" }, queued);
        this.set({ state: "running" }, running);
      },
    });

    // Only jobs being worked on get a series, so the job label stays low-cardinality.
    new Gauge({
      name: "edgepool_job_progress_ratio",
      help: "Share of a queued or running job's rows accepted so far (0 to 1).",
      labelNames: ["job"] as const,
      registers,
      collect() {
        this.reset();
        for (const j of src.scheduler.activeJobs) this.set({ job: j.id }, j.row.rows > 0 ? j.samplesDone / j.row.rows : 0);
      },
    });

    new Gauge({
      name: "edgepool_job_rows",
      help: "Rows (samples) in each queued or running job.",
      labelNames: ["job"] as const,
      registers,
      collect() {
        this.reset();
        for (const j of src.scheduler.activeJobs) this.set({ job: j.id }, j.row.rows);
      },
    });
    this.subscribe(src.events);
  }

  /** Counts shard round trips and jobs reaching a terminal state (each emits one terminal event). */
  private subscribe(events: CoordinatorEvents): void {
    events.on("shardDone", (e) => this.shardDuration.observe({ kind: e.virtual ? "virtual" : "real" }, e.ms / 1000));
    events.on("jobDone", () => this.jobsFinished.inc({ state: "done" }));
    events.on("jobFailed", () => this.jobsFinished.inc({ state: "failed" }));
    events.on("jobCancelled", () => this.jobsFinished.inc({ state: "cancelled" }));
  }

  /** Answers a scrape in the Prometheus text format. */
  async respond(res: ServerResponse): Promise<void> {
    const body = await this.registry.metrics();
    res.writeHead(200, { "content-type": this.registry.contentType, "content-length": Buffer.byteLength(body) });
    res.end(body);
  }
}
