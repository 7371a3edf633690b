/**
 * Dispatch, with failure as the normal case.
 *
 * Credit: each ready worker may hold `credit` shards (slots + prefetch); `pump()` fills every
 * worker's free credit from the active jobs in turn (selection.ts picks the shard), so jobs
 * share the pool and a worker always has its next shard waiting. Shards are cut as they are
 * sent, sized to the worker (planner.ts); each copy in flight is a dispatch (dispatch.ts),
 * whose frame frames.ts reads and sends.
 *
 * Failure: a worker that goes away hands its shards back to the front of their jobs' queues.
 * A shard that errors, or gets no answer by its deadline (intake.ts), is withdrawn and retried
 * here (`withdraw`), preferring a worker that has not failed it, up to `maxShardAttempts`,
 * counted durably across restarts; then its job fails with every cause seen.
 *
 * Policies decide and scheduling acts: which late shards to copy onto idle workers
 * (stragglers.ts; the first result accepted wins in `commit`, the other copies are
 * cancelled), whether replicas agree and whom to quarantine (verification.ts), and what a
 * worker may get from a job with canaries (canary.ts); vetting.ts carries out the last two.
 */
import type { Logger } from "pino";
import { EdgepoolError, isErrorCode, toEdgepoolError } from "../../shared/errors.js";
import type { NamedTensor } from "../../shared/protocol/frame.js";
import { cancelMessage } from "../../shared/protocol/encode.js";
import type { Draining, ResultFrame, ResultHeader, ShardError } from "../../shared/protocol/messages.js";
import type { Job } from "../jobs/job.js";
import type { ShardTask } from "./shard-task.js";
import type { Canary } from "./canary.js";
import { zeroCounters } from "./counters.js";
import { DispatchTable, newDispatch, type Dispatch, type WithdrawCause } from "./dispatch.js";
import { Intake } from "./intake.js";
import { ShardFrames } from "./frames.js";
import { ShardSelection } from "./selection.js";
import { WorkerPool } from "./pool.js";
import { StragglerPolicy } from "./stragglers.js";
import { Vetting } from "./vetting.js";
import type { CoordinatorEvents } from "../observe/events.js";
import type { Throughput } from "../observe/throughput.js";
import type { WorkerSession } from "../workers/session.js";

export type { SchedulerCounters } from "./counters.js";

export interface SchedulerOptions {
  maxShardAttempts: number;
  targetShardMs: number;
  /** Deadline for a shard on a worker not yet measured on its model. */
  probeTimeoutMs: number;
  /** Slack added to every measured deadline. */
  minShardTimeoutMs: number;
}

/** What the job service must know that is not an event for everyone: a job left scheduling for good. */
export interface SchedulerHooks {
  jobFinished(job: Job): void;
}

export class Scheduler {
  private readonly pool = new WorkerPool();
  private readonly jobs: Job[] = [];
  private seq = 0;
  private readonly inflight = new DispatchTable();
  private readonly stragglers: StragglerPolicy;
  private readonly frames: ShardFrames;
  private readonly vetting: Vetting;
  private readonly selection: ShardSelection;
  private readonly intake: Intake;
  /** When each handed-back shard was handed back, for the resend latency figure. */
  private readonly handedBack = new WeakMap<ShardTask, number>();
  private stragglerTimer: NodeJS.Timeout | null = null;
  private pumpQueued = false;
  readonly counters = zeroCounters();

  constructor(
    private readonly log: Logger,
    private readonly events: CoordinatorEvents,
    private readonly throughput: { real: Throughput; virtual: Throughput },
    private readonly opts: SchedulerOptions,
    private readonly hooks: SchedulerHooks,
  ) {
    this.stragglers = new StragglerPolicy(opts.targetShardMs);
    this.vetting = new Vetting(log, events, this.counters, this.inflight, this.pool, opts.maxShardAttempts, {
      activeJobs: this.jobs,
      takeBack: (d) => this.withdraw(d, null, true),
      commit: (w, d, tensors, header) => this.commit(w, d, tensors, header, false),
      failJob: (job, error) => this.failJob(job, error),
    });
    this.selection = new ShardSelection(this.jobs, this.pool, this.vetting, opts.targetShardMs);
    this.intake = new Intake(log, this.counters, this.inflight, this.pool, this.vetting, {
      withdraw: (d, cause, notify) => this.withdraw(d, cause, notify),
      commit: (w, d, tensors, header) => this.commit(w, d, tensors, header, true),
      pump: () => this.pump(),
      pumpSoon: () => this.pumpSoon(),
    });
    this.frames = new ShardFrames({
      sent: (d, bytes) => this.sent(d, bytes),
      unreadable: (d, err) => {
        const { start, end } = d.task;
        this.failJob(d.job, new EdgepoolError("E_IO", `could not read input rows ${start}-${end}: ${toEdgepoolError(err, "E_IO").message}`, { cause: err }));
      },
      // It said it is leaving and will never see this shard: it goes back, no attempt counted.
      unsent: (d) => {
        this.withdraw(d, null);
        this.pumpSoon();
      },
    });
  }

  /** Connected workers (handshake done). */
  get workers(): ReadonlySet<WorkerSession> {
    return this.pool.workers;
  }

  /** Quarantined worker ids (persistent ids, so a reconnect does not clear it) and why. */
  get quarantine(): ReadonlyMap<string, string> {
    return this.pool.quarantine;
  }

  /** Workers that have left, kept for the report (their work still counts). */
  get departed(): readonly WorkerSession[] {
    return this.pool.departed;
  }

  /** Most workers connected at once. */
  get peakWorkers(): number {
    return this.pool.peakWorkers;
  }

  get activeJobs(): readonly Job[] {
    return this.jobs;
  }

  addWorker(w: WorkerSession): void {
    this.pool.add(w);
    this.pump();
  }

  /** Forgets a worker; every shard it held that has no other copy goes back to its job. */
  removeWorker(w: WorkerSession): void {
    if (!this.pool.remove(w)) return;
    for (const d of this.inflight.onWorker(w)) this.withdraw(d, null);
    this.inflight.forgetWorker(w);
    this.pump();
  }

  /** A worker is leaving: it gets nothing new, and the shards it will not run go back now (no attempt counted). */
  onDraining(w: WorkerSession, msg: Draining): void {
    const first = this.pool.startDraining(w);
    for (const id of msg.released) {
      const d = this.inflight.find(w, id);
      if (d) this.withdraw(d, null);
    }
    // Once per worker at info: a peer repeating the message must not be able to fill the log.
    const line = { worker: w.name, released: msg.released.length, running: w.inflight };
    if (first) this.log.info(line, "worker draining");
    else this.log.debug(line, "worker draining");
    this.pump();
  }

  addJob(job: Job): void {
    this.jobs.push(job);
    this.vetting.addJob(job);
    // Attempts survive a restart: a shard that used them all before it fails the job now.
    const spent = job.exhausted(this.opts.maxShardAttempts);
    if (spent) {
      const error = `shard ${spent.idx} (rows ${spent.start}-${spent.end}) failed ${spent.attempts} times before the coordinator restarted (maxShardAttempts ${this.opts.maxShardAttempts})`;
      this.failJob(job, new EdgepoolError("E_INFERENCE", error));
      return;
    }
    this.pump();
  }

  /**
   * Takes a dispatch off its worker (if still on it), and retries: unless another copy of the
   * shard is still running, the shard goes back to the front of its job's queue; `cause` (if
   * any) counts as a failed attempt, and the last allowed one fails the job.
   */
  private withdraw(d: Dispatch, cause: WithdrawCause | null, notify = false): void {
    if (this.inflight.remove(d)) this.pool.freed(d.worker);
    if (notify) d.worker.send(cancelMessage(d.shardId, cause?.message ?? "withdrawn"));
    if (d.canary) {
      // A canary that got no answer is simply sent again (pump): nothing to put back.
      this.vetting.gate(d.job)?.withdrawn(d.worker.id);
      return;
    }
    const { job, task } = d;
    if (!job.active) return;
    if (cause) {
      const attempts = task.fail(`${d.worker.name}: ${cause.code} ${cause.message}`, d.worker.id);
      this.events.emit("shardRetried", { jobId: job.id, shard: task.idx, workerId: d.worker.id, code: cause.code, message: cause.message, attempts });
      if (attempts >= this.opts.maxShardAttempts) {
        const code = isErrorCode(cause.code) ? cause.code : "E_INFERENCE";
        this.failJob(job, new EdgepoolError(code, `shard ${task.idx} (rows ${task.start}-${task.end}) failed ${attempts} times: ${task.causes.join("; ")}`));
        return;
      }
    }
    if (this.inflight.copiesOf(task).length === 0 && !(job.verifying && job.isPending(task))) {
      job.putBack(task);
      this.handedBack.set(task, Date.now());
      this.counters.requeued += 1;
    } else {
      this.vetting.requestReplicas(job, task);
    }
  }

  /** Drops a job from scheduling: withdraws (and cancels) every dispatch of it, canaries too. */
  private withdrawJob(job: Job, reason: string): void {
    this.drop(job);
    job.clearPending();
    for (const d of this.inflight.ofJob(job)) {
      this.inflight.remove(d);
      this.pool.freed(d.worker);
      d.worker.send(cancelMessage(d.shardId, reason));
    }
    this.pump();
  }

  private drop(job: Job): boolean {
    const i = this.jobs.indexOf(job);
    if (i < 0) return false;
    this.jobs.splice(i, 1);
    return true;
  }

  /** Pumps once the current turn's work is done (many results in one socket read: one pump). */
  private pumpSoon(): void {
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    queueMicrotask(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  /**
   * Fills free credit on the workers that may have some; idle workers left over take straggler
   * copies. Only workers whose credit was freed since they were last full are visited, so a
   * result costs work in proportion to what it freed, not to the size of the pool.
   */
  pump(): void {
    if (this.jobs.length === 0) return;
    const ready = this.pool.ready;
    const deep = this.selection.deepQueues(ready);
    const hungry = this.pool.hungry;
    for (const w of hungry) {
      if (!this.selection.anyWork()) break;
      while (w.freeCredit > 0 && (deep || w.inflight < w.baseCredit)) {
        const pick = this.selection.next(w, ready);
        if (!pick) break;
        this.dispatch(w, pick.job, pick.task, false, pick.canary);
      }
      if (w.freeCredit === 0 || (!deep && w.inflight >= w.baseCredit)) hungry.delete(w);
    }
    if (!this.selection.anyWork()) this.scanForStragglers();
  }

  /** Copies late shards onto idle workers now, or once the scan interval has passed since the last scan. */
  private scanForStragglers(): void {
    const wait = this.stragglers.scanWait(Date.now());
    if (wait > 0) {
      this.stragglerTimer ??= setTimeout(() => {
        this.stragglerTimer = null;
        this.pump();
      }, wait);
      this.stragglerTimer.unref();
      return;
    }
    for (const { of, onto } of this.stragglers.plan(this.inflight.shards(), this.pool.hungry, Date.now())) {
      this.counters.duplicated += 1;
      this.log.debug({ jobId: of.job.id, shard: of.task.idx, worker: onto.name, slowWorker: of.worker.name }, "straggler duplicated");
      this.dispatch(onto, of.job, of.task, true, null);
    }
  }

  private dispatch(w: WorkerSession, job: Job, task: ShardTask, duplicate: boolean, canary: Canary | null): void {
    const handedBackAt = this.handedBack.get(task);
    if (handedBackAt !== undefined) this.handedBack.delete(task);
    const d = newDispatch(`${job.id}.${task.idx}.${++this.seq}`, job, task, w, duplicate, canary, handedBackAt ?? null, this.opts, Date.now());
    this.inflight.add(d);
    if (canary) this.vetting.gate(job)?.sent(w.id);
    else if (!duplicate) this.vetting.requestReplicas(job, task);
    if (job.state === "queued") {
      job.transition("running");
      this.events.emit("jobStarted", { jobId: job.id });
    }
    this.frames.send(d);
  }

  /** A dispatch's frame went out. */
  private sent(d: Dispatch, bytes: number): void {
    this.counters.dispatched += 1;
    this.counters.bytesOut += bytes;
    // Emitted apart from shardDispatched, which only debug logs listen to: the failover figure
    // is always kept, and must not cost every shard a payload.
    if (d.handedBackAt !== null) this.events.emit("shardResent", { jobId: d.job.id, shardId: d.shardId, workerId: d.worker.id, afterMs: d.sentAt - d.handedBackAt });
    if (this.events.listening("shardDispatched")) {
      this.events.emit("shardDispatched", {
        jobId: d.job.id, shardId: d.shardId, workerId: d.worker.id, start: d.task.start, end: d.task.end, duplicate: d.duplicate,
      });
    }
  }

  /** Gives up on dispatches past their deadline (each a failed attempt); called periodically. */
  checkDeadlines(now = Date.now()): void {
    this.intake.deadlines(now);
  }

  /** Handles a `result` frame from a worker (parsed by the gateway; `bytes` is its size on the wire). */
  onResult(w: WorkerSession, result: ResultFrame, bytes: number): void {
    this.intake.result(w, result, bytes);
  }

  /** Handles a `shard_error` from a worker: a failed attempt, retried elsewhere. */
  onShardError(w: WorkerSession, msg: ShardError): void {
    this.intake.shardError(w, msg);
  }

  /** Writes an accepted answer; the first one for a shard wins and its other copies are cancelled. */
  private commit(w: WorkerSession, d: Dispatch, tensors: NamedTensor[], header: ResultHeader, recordWorker: boolean): void {
    const { job, task } = d;
    const rows = task.end - task.start;
    // The result's own credit was freed (and pumped) when it arrived: pump again only when
    // writing it frees more (cancelled copies, a finished job) or puts the shard back.
    job
      .accept(task, tensors)
      .then((fresh) => {
        if (!fresh) {
          this.counters.lateResults += 1;
          return;
        }
        if (job.verifying) this.vetting.committed(task);
        const copies = this.inflight.copiesOf(task);
        if (copies.length > 0) {
          this.pumpSoon();
          for (const other of [...copies]) {
            this.inflight.remove(other);
            this.pool.freed(other.worker);
            other.worker.send(cancelMessage(other.shardId, "another copy finished first"));
            this.counters.duplicatesCancelled += 1;
          }
        }
        if (recordWorker) {
          w.recordDone(job.model.sha256, rows, header.computeMs, header.throttleMs);
          if (w.virtual) job.markTouchedByVirtual();
        }
        this.counters.completed += 1;
        (w.virtual ? this.throughput.virtual : this.throughput.real).record(rows, rows * job.flopsPerSample);
        if (this.events.listening("shardDone")) {
          this.events.emit("shardDone", { jobId: job.id, shardId: header.shardId, workerId: w.id, rows, ms: Date.now() - d.sentAt, virtual: w.virtual });
        }
        if (job.complete && job.active) {
          this.finishJob(job);
          this.pumpSoon();
        }
      })
      .catch((err: unknown) => {
        const e = toEdgepoolError(err, "E_IO");
        if (e.code === "E_IO" || e.code === "E_INTERNAL") {
          this.failJob(job, new EdgepoolError(e.code, `could not write rows ${task.start}-${task.end}: ${e.message}`, { cause: err }));
        } else {
          this.counters.failed += 1;
          this.withdraw(d, e);
        }
        this.pumpSoon();
      });
  }

  private finishJob(job: Job): void {
    // Two results whose rows land together can both find the job complete (it stays active
    // until its files are closed): only the first finishes it. A second finish used to throw
    // "cannot go from done to failed" from its catch, an unhandled rejection that ended the process.
    if (!this.drop(job)) return;
    job
      .closeFiles()
      .then(() => {
        job.transition("done");
        const row = job.stored();
        const secs = ((row.finishedAt ?? 0) - (row.startedAt ?? 0)) / 1000;
        const samplesPerSec = secs > 0 ? row.rows / secs : 0;
        this.events.emit("jobDone", { jobId: job.id, rows: row.rows, shards: row.shardsDone, seconds: secs, samplesPerSec: Math.round(samplesPerSec * 100) / 100, virtual: job.touchedByVirtual });
      })
      .catch((err: unknown) => {
        const e = toEdgepoolError(err, "E_IO");
        const message = `could not finish writing outputs: ${e.message}`;
        job.transition("failed", message);
        this.events.emit("jobFailed", { jobId: job.id, code: e.code, message, virtual: job.touchedByVirtual });
      })
      .finally(() => this.hooks.jobFinished(job));
  }

  /** Fails a job: withdraws its shards, records the reason, removes partial outputs. */
  failJob(job: Job, error: EdgepoolError): void {
    if (!job.active) return;
    this.withdrawJob(job, "job failed");
    job.transition("failed", error.message);
    this.events.emit("jobFailed", { jobId: job.id, code: error.code, message: error.message, virtual: job.touchedByVirtual });
    this.cleanUp(job, "failure");
  }

  /** Cancels a job at a client's request; its workers are free at once. */
  cancelJob(job: Job): void {
    if (!job.active) throw new EdgepoolError("E_STATE", `job ${job.id} is already ${job.state}`);
    this.withdrawJob(job, "job cancelled");
    job.transition("cancelled", "cancelled by request");
    this.events.emit("jobCancelled", { jobId: job.id, virtual: job.touchedByVirtual });
    this.cleanUp(job, "cancel");
  }

  private cleanUp(job: Job, why: string): void {
    void job
      .closeFiles()
      .then(() => job.discardOutputs())
      .catch((err: unknown) => this.log.warn({ jobId: job.id, err: toEdgepoolError(err).message }, `cleanup after ${why}`))
      .finally(() => this.hooks.jobFinished(job));
  }

  busyWorkers(): number {
    return this.pool.busy();
  }
}
