/**
 * Which shard a worker gets next. Jobs take turns (round robin, so jobs share the pool); within
 * a job, a canary comes first where the job has them (canary.ts), then a shard waiting in its
 * queue that this worker may take, then a new shard cut from its uncut rows, sized to the
 * worker (planner.ts). A retried shard goes to a worker it has not failed on while such a
 * worker is ready, and a verified shard's replicas go to workers that have not answered it.
 */
import type { Job } from "../jobs/job.js";
import { ShardTask } from "./shard-task.js";
import type { WorkerSession } from "../workers/session.js";
import type { Canary } from "./canary.js";
import { shardRows } from "./planner.js";
import type { WorkerPool } from "./pool.js";
import type { Vetting } from "./vetting.js";

/** A decision: send `task` of `job` to the worker; a canary (a one-row shard never written) when `canary` is set. */
export interface Pick {
  readonly job: Job;
  readonly task: ShardTask;
  readonly canary: Canary | null;
}

/** Deep worker queues only while more than this many shards per ready worker remain. */
const DEEP_QUEUE_SHARDS_PER_WORKER = 8;

export class ShardSelection {
  private rr = 0;

  constructor(
    private readonly jobs: readonly Job[],
    private readonly pool: WorkerPool,
    private readonly vetting: Vetting,
    private readonly targetShardMs: number,
  ) {}

  /** True while some job has a shard to send. */
  anyWork(): boolean {
    for (const job of this.jobs) if (job.hasWork) return true;
    return false;
  }

  /**
   * True when workers may queue deeply (session.ts): deep queues are for many short shards;
   * when there are not many more shards than workers, one deep queue would starve the others.
   */
  deepQueues(readyWorkers: number): boolean {
    let n = 0;
    for (const job of this.jobs) {
      n += job.pendingCount;
      // Adaptive jobs with rows left count as unbounded.
      if (job.uncut > 0) n += job.row.fixedShardSize ? Math.ceil(job.uncut / job.row.fixedShardSize) : Number.POSITIVE_INFINITY;
    }
    return n > DEEP_QUEUE_SHARDS_PER_WORKER * readyWorkers;
  }

  /** The next shard for `w` (taken off its job's queue, or cut now), or undefined when no job has one for it. */
  next(w: WorkerSession, readyWorkers: number): Pick | undefined {
    const n = this.jobs.length;
    for (let k = 0; k < n; k++) {
      const job = this.jobs[(this.rr + k) % n]!;
      if (!job.hasWork) continue;
      const gate = this.vetting.gate(job);
      if (gate) {
        const admission = gate.admit(w.id);
        if (admission.kind === "wait") continue;
        if (admission.kind === "canary") {
          this.rr = (this.rr + k + 1) % n;
          const { canary } = admission;
          return { job, task: new ShardTask(-1, canary.row, canary.row + 1, null), canary };
        }
      }
      const task = this.pendingFor(w, job) ?? this.cut(w, job, readyWorkers);
      if (!task) continue;
      this.rr = (this.rr + k + 1) % n;
      return { job, task, canary: null };
    }
    return undefined;
  }

  /**
   * The first waiting shard `w` should take: a retried shard goes to a worker it has not failed
   * on while such a worker is ready; once it has failed on every ready worker, anyone may retry it.
   */
  private pendingFor(w: WorkerSession, job: Job): ShardTask | undefined {
    if (job.pendingCount === 0) return undefined;
    return job.takePending((t) => !this.vetting.holds(w, job, t) && (!t.failedOn(w.id) || !this.pool.anotherReady(w, (id) => !t.failedOn(id))));
  }

  private cut(w: WorkerSession, job: Job, readyWorkers: number): ShardTask | undefined {
    const rows = shardRows({
      fixed: job.row.fixedShardSize,
      rate: w.rateOn(job.model.sha256),
      targetShardMs: this.targetShardMs,
      flopsPerSample: job.flopsPerSample,
      bytesPerRow: job.bytesPerRow(),
      remaining: job.uncut,
      workers: readyWorkers,
    });
    return job.cut(rows);
  }
}
