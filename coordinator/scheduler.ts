/**
 * Credit-based dispatch. Each ready worker may hold `credit` shards (slots + prefetch);
 * `pump()` fills every worker's free credit from the active jobs in round-robin order, so
 * jobs share the pool and a worker always has its next shard waiting. Shards of a worker
 * that goes away go back to the front of their job's queue; a shard that fails is retried
 * (on another worker where one exists) up to `maxShardAttempts`, then its job fails with
 * every cause seen. Late answers to withdrawn dispatches are dropped and counted.
 */
import type { Logger } from "pino";
import { EdgepoolError, toEdgepoolError } from "../shared/errors.js";
import { parseResultFrame, type ShardError } from "../shared/protocol.js";
import type { Job, ShardTask } from "./job.js";
import type { Throughput } from "./throughput.js";
import type { Dispatch, WorkerSession } from "./worker-session.js";

export interface SchedulerCounters {
  dispatched: number;
  completed: number;
  failed: number;
  requeued: number;
  lateResults: number;
  bytesOut: number;
  bytesIn: number;
}

export interface SchedulerEvents {
  jobFinished(job: Job): void;
}

export class Scheduler {
  readonly workers = new Set<WorkerSession>();
  private readonly jobs: Job[] = [];
  private rr = 0;
  private seq = 0;
  readonly counters: SchedulerCounters = { dispatched: 0, completed: 0, failed: 0, requeued: 0, lateResults: 0, bytesOut: 0, bytesIn: 0 };

  constructor(
    private readonly log: Logger,
    private readonly throughput: Throughput,
    private readonly maxShardAttempts: number,
    private readonly events: SchedulerEvents,
  ) {}

  get activeJobs(): readonly Job[] {
    return this.jobs;
  }

  addWorker(w: WorkerSession): void {
    this.workers.add(w);
    this.pump();
  }

  /** Forgets a worker; everything it held goes back to its job's queue. */
  removeWorker(w: WorkerSession): void {
    if (!this.workers.delete(w)) return;
    for (const d of w.inflight.values()) this.requeue(d, false);
    w.inflight.clear();
    this.pump();
  }

  addJob(job: Job): void {
    this.jobs.push(job);
    this.pump();
  }

  /** Withdraws every dispatch of a job and drops it from scheduling. */
  withdrawJob(job: Job, reason: string): void {
    const i = this.jobs.indexOf(job);
    if (i >= 0) this.jobs.splice(i, 1);
    job.queue.length = 0;
    for (const w of this.workers) {
      for (const d of [...w.inflight.values()]) {
        if (d.job !== job) continue;
        w.inflight.delete(d.shardId);
        job.inflight.delete(d.task.idx);
        w.send(JSON.stringify({ type: "cancel", shardId: d.shardId, reason }));
      }
    }
    this.pump();
  }

  /** Fills free credit on every ready worker. */
  pump(): void {
    if (this.jobs.length === 0) return;
    for (const w of this.workers) {
      while (w.freeCredit > 0) {
        const next = this.nextTask(w);
        if (!next) break;
        this.dispatch(w, next.job, next.task);
      }
    }
  }

  private nextTask(w: WorkerSession): { job: Job; task: ShardTask } | undefined {
    for (let k = 0; k < this.jobs.length; k++) {
      const job = this.jobs[(this.rr + k) % this.jobs.length]!;
      if (!job.active || job.queue.length === 0) continue;
      // A retried shard prefers a worker that has not failed it yet.
      let pick = 0;
      const first = job.queue[0]!;
      if (first.causes.length > 0 && first.causes.some((c) => c.startsWith(`${w.name}:`)) && this.workers.size > 1) {
        const alt = job.queue.findIndex((t) => !t.causes.some((c) => c.startsWith(`${w.name}:`)));
        if (alt < 0) continue;
        pick = alt;
      }
      this.rr = (this.rr + k + 1) % this.jobs.length;
      const [task] = job.queue.splice(pick, 1);
      return { job, task: task! };
    }
    return undefined;
  }

  private dispatch(w: WorkerSession, job: Job, task: ShardTask): void {
    const shardId = `${job.id}.${task.idx}.${++this.seq}`;
    const d: Dispatch = { shardId, job, task, worker: w, sentAt: Date.now() };
    w.inflight.set(shardId, d);
    job.inflight.add(task.idx);
    if (job.state === "queued") job.transition("running");
    job
      .buildShardFrame(task, shardId)
      .then((frame) => {
        if (w.inflight.get(shardId) !== d) return; // withdrawn while reading
        if (!w.send(frame)) return; // the socket went; removeWorker requeues it
        d.sentAt = Date.now();
        this.counters.dispatched += 1;
        this.counters.bytesOut += frame.byteLength;
        this.log.debug({ jobId: job.id, shardId, worker: w.name, start: task.start, end: task.end }, "shard sent");
      })
      .catch((err: unknown) => {
        if (w.inflight.get(shardId) !== d) return;
        w.inflight.delete(shardId);
        job.inflight.delete(task.idx);
        this.failJob(job, `could not read input rows ${task.start}-${task.end}: ${toEdgepoolError(err, "E_IO").message}`);
      });
  }

  private requeue(d: Dispatch, countAttempt: boolean): void {
    d.job.inflight.delete(d.task.idx);
    if (!d.job.active) return;
    if (countAttempt) d.task.attempts += 1;
    d.job.queue.unshift(d.task);
    this.counters.requeued += 1;
  }

  /** Handles a binary `result` frame from a worker. */
  onResult(w: WorkerSession, bytes: Uint8Array): void {
    const { header, tensors } = parseResultFrame(bytes);
    this.counters.bytesIn += bytes.byteLength;
    const d = w.inflight.get(header.shardId);
    if (!d || d.job.id !== header.jobId) {
      this.counters.lateResults += 1;
      this.log.debug({ shardId: header.shardId, worker: w.name }, "late or unknown result dropped");
      return;
    }
    w.inflight.delete(header.shardId);
    const { job, task } = d;
    const rows = task.end - task.start;
    job
      .accept(task, tensors)
      .then((fresh) => {
        job.inflight.delete(task.idx);
        if (!fresh) {
          this.counters.lateResults += 1;
          return;
        }
        w.shardsDone += 1;
        w.samplesDone += rows;
        w.computeMs += header.computeMs;
        this.counters.completed += 1;
        this.throughput.record(rows, rows * job.flopsPerSample);
        this.log.debug({ jobId: job.id, shardId: header.shardId, worker: w.name, rows, ms: Date.now() - d.sentAt }, "shard done");
        if (job.complete && job.active) this.finishJob(job);
      })
      .catch((err: unknown) => {
        const e = toEdgepoolError(err, "E_IO");
        if (e.code === "E_IO" || e.code === "E_INTERNAL") {
          this.failJob(job, `could not write rows ${task.start}-${task.end}: ${e.message}`);
        } else {
          this.shardFailed(d, w, e.code, e.message);
        }
      })
      .finally(() => this.pump());
    this.pump();
  }

  /** Handles a `shard_error` from a worker. */
  onShardError(w: WorkerSession, msg: ShardError): void {
    const d = w.inflight.get(msg.shardId);
    if (!d) {
      this.counters.lateResults += 1;
      return;
    }
    w.inflight.delete(msg.shardId);
    w.shardErrors += 1;
    this.shardFailed(d, w, msg.code, msg.message);
    this.pump();
  }

  private shardFailed(d: Dispatch, w: WorkerSession, code: string, message: string): void {
    const { job, task } = d;
    this.counters.failed += 1;
    task.causes.push(`${w.name}: ${code} ${message}`);
    this.log.warn({ jobId: job.id, shardId: d.shardId, worker: w.name, code, err: message, attempt: task.attempts + 1 }, "shard failed");
    job.inflight.delete(task.idx);
    if (!job.active) return;
    task.attempts += 1;
    if (task.attempts >= this.maxShardAttempts) {
      this.failJob(
        job,
        `shard ${task.idx} (rows ${task.start}-${task.end}) failed ${task.attempts} times: ${task.causes.join("; ")}`,
      );
      return;
    }
    job.queue.unshift(task);
    this.counters.requeued += 1;
  }

  private finishJob(job: Job): void {
    const i = this.jobs.indexOf(job);
    if (i >= 0) this.jobs.splice(i, 1);
    job
      .closeFiles()
      .then(() => {
        job.transition("done");
        this.log.info({ jobId: job.id, rows: job.row.rows, shards: job.row.shardCount }, "job done");
      })
      .catch((err: unknown) => {
        job.transition("failed", `could not finish writing outputs: ${toEdgepoolError(err).message}`);
      })
      .finally(() => this.events.jobFinished(job));
  }

  /** Fails a job: withdraws its shards, records the reason, removes partial outputs. */
  failJob(job: Job, reason: string): void {
    if (!job.active) return;
    this.withdrawJob(job, "job failed");
    job.transition("failed", reason);
    this.log.error({ jobId: job.id, err: reason }, "job failed");
    void job
      .closeFiles()
      .then(() => job.discardOutputs())
      .catch((err: unknown) => this.log.warn({ jobId: job.id, err: toEdgepoolError(err).message }, "cleanup after failure"))
      .finally(() => this.events.jobFinished(job));
  }

  /** Cancels a job at a client's request. */
  cancelJob(job: Job): void {
    if (!job.active) throw new EdgepoolError("E_STATE", `job ${job.id} is already ${job.state}`);
    this.withdrawJob(job, "job cancelled");
    job.transition("cancelled", "cancelled by request");
    this.log.info({ jobId: job.id }, "job cancelled");
    void job
      .closeFiles()
      .then(() => job.discardOutputs())
      .catch((err: unknown) => this.log.warn({ jobId: job.id, err: toEdgepoolError(err).message }, "cleanup after cancel"))
      .finally(() => this.events.jobFinished(job));
  }

  busyWorkers(): number {
    let n = 0;
    for (const w of this.workers) if (w.inflight.size > 0) n++;
    return n;
  }
}
