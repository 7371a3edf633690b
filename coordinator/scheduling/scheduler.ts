/**
 * Dispatch, with failure as the normal case.
 *
 * Credit: each ready worker may hold `credit` shards (slots + prefetch); `pump()` fills every
 * worker's free credit from the active jobs in round-robin order, so jobs share the pool and
 * a worker always has its next shard waiting. Shards are cut as they are sent, sized to the
 * worker (planner.ts).
 *
 * Failure: a worker that goes away hands its shards back to the front of their jobs' queues.
 * A shard that errors, or gets no answer by its deadline (derived from the worker's measured
 * rate), is withdrawn and retried, preferring a worker that has not failed it, up to
 * `maxShardAttempts`; then its job fails with every cause seen.
 *
 * Stragglers: when no job has anything left to send and a worker sits idle, the slowest
 * shard in flight (against what its worker's rate predicted) is duplicated on the idle
 * worker. The first result accepted wins; the other copies are cancelled and counted.
 * Results for withdrawn dispatches arrive late and are dropped and counted.
 *
 * Verification: a job with redundancy k keeps each shard queued until k different workers
 * hold or answered it; answers are compared (verify.ts) and only an agreed one is written.
 * Workers outside the agreed answer lose trust, and one caught twice with trust under 0.5 is
 * quarantined: it stays connected, gets no work, and stays quarantined if it reconnects.
 */
import type { Logger } from "pino";
import { EdgepoolError, isErrorCode, toEdgepoolError } from "../../shared/errors.js";
import { FramePool, type NamedTensor } from "../../shared/protocol/frame.js";
import { parseResultFrame, type Draining, type ResultHeader, type ShardError } from "../../shared/protocol/messages.js";
import type { Job, ShardTask } from "../jobs/job.js";
import { Limiter } from "../../shared/limiter.js";
import { shardRows, updateRate } from "./planner.js";
import type { Canary } from "./canary.js";
import type { CoordinatorEvents } from "../observe/events.js";
import type { Throughput } from "../observe/throughput.js";
import { Replicas, resultsAgree } from "./verification.js";
import type { Dispatch, WorkerSession } from "../workers/session.js";

export interface SchedulerCounters {
  dispatched: number;
  completed: number;
  failed: number;
  timedOut: number;
  requeued: number;
  duplicated: number;
  duplicatesCancelled: number;
  lateResults: number;
  bytesOut: number;
  bytesIn: number;
  /** Shards accepted after replicas agreed. */
  verified: number;
  /** Replicas that disagreed with the accepted answer. */
  replicaMismatches: number;
  quarantined: number;
  /** Canary shards answered right, and wrongly. */
  canariesPassed: number;
  canariesFailed: number;
}

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

/** Deadline multiple of the predicted time, per shard queued ahead on the worker. */
const DEADLINE_FACTOR = 4;
/** A shard this many times later than predicted may be copied onto an idle worker. */
const STRAGGLER_FACTOR = 1.5;
const MAX_CONCURRENT_READS = 64;
/** At most this share of in-flight shards (or 2) may have a second copy running. */
const MAX_COPIED_FRACTION = 0.1;
/**
 * Stragglers are looked for at most this often. A scan costs a step per shard in flight, and
 * once a job is fully cut every result would trigger one: with tens of thousands of workers
 * that was most of the coordinator's CPU. A shard is only "late" after 1.5x its predicted
 * time, so looking a few times a second loses nothing.
 */
const STRAGGLER_SCAN_MS = 100;
/** Deep worker queues only while more than this many shards per ready worker remain. */
const DEEP_QUEUE_SHARDS_PER_WORKER = 8;

export class Scheduler {
  readonly workers = new Set<WorkerSession>();
  /**
   * Frames being read from disk at once. A large idle pool would otherwise take a whole job
   * in one burst: every frame in memory together, and the event loop starved for seconds.
   */
  private readonly reading = new Limiter(MAX_CONCURRENT_READS);
  /** Shard frame buffers: large ones reused, small ones cut from slabs. */
  private readonly frames = new FramePool(64 * 2 ** 20);
  /** Ready workers that may have free credit (see pump). */
  private readonly hungry = new Set<WorkerSession>();
  private drainingCount = 0;
  private readonly jobs: Job[] = [];
  private rr = 0;
  private seq = 0;
  /** When each handed-back shard was handed back, for the resend latency figure. */
  private readonly handedBack = new WeakMap<ShardTask, number>();
  private lastStragglerScan = 0;
  private stragglerTimer: NodeJS.Timeout | null = null;
  readonly counters: SchedulerCounters = {
    dispatched: 0, completed: 0, failed: 0, timedOut: 0, requeued: 0, duplicated: 0, duplicatesCancelled: 0, lateResults: 0, bytesOut: 0, bytesIn: 0,
    verified: 0, replicaMismatches: 0, quarantined: 0, canariesPassed: 0, canariesFailed: 0,
  };
  /** Quarantined worker ids (persistent ids, so a reconnect does not clear it) and why. */
  readonly quarantine = new Map<string, string>();

  constructor(
    private readonly log: Logger,
    private readonly events: CoordinatorEvents,
    private readonly throughput: { real: Throughput; virtual: Throughput },
    private readonly opts: SchedulerOptions,
    private readonly hooks: SchedulerHooks,
  ) {}

  get activeJobs(): readonly Job[] {
    return this.jobs;
  }

  /** Most workers connected at once. */
  peakWorkers = 0;
  /** Workers that have left, kept for the report (their work still counts). */
  readonly departed: WorkerSession[] = [];

  addWorker(w: WorkerSession): void {
    if (this.quarantine.has(w.id)) w.quarantined = true;
    this.workers.add(w);
    this.freed(w);
    if (this.workers.size > this.peakWorkers) this.peakWorkers = this.workers.size;
    this.pump();
  }

  /** Forgets a worker; every shard it held that has no other copy goes back to its job. */
  removeWorker(w: WorkerSession): void {
    if (!this.workers.delete(w)) return;
    this.hungry.delete(w);
    if (w.state === "draining" || w.drained) this.drainingCount -= 1;
    if (w.shardsDone > 0) this.departed.push(w);
    for (const d of [...w.inflight.values()]) this.withdraw(d, null);
    this.pump();
  }

  /** A worker is leaving: it gets nothing new, and the shards it will not run go back now. */
  onDraining(w: WorkerSession, msg: Draining): void {
    const first = w.state === "ready";
    if (w.state === "ready") {
      w.state = "draining";
      w.drained = true;
      this.drainingCount += 1;
      this.hungry.delete(w);
    }
    for (const id of msg.released) {
      const d = w.inflight.get(id);
      if (d) this.withdraw(d, null);
    }
    // Once per worker at info: a peer repeating the message must not be able to fill the log.
    const line = { worker: w.name, released: msg.released.length, running: w.inflight.size };
    if (first) this.log.info(line, "worker draining");
    else this.log.debug(line, "worker draining");
    this.pump();
  }

  addJob(job: Job): void {
    this.jobs.push(job);
    this.pump();
  }

  /**
   * Takes a dispatch off its worker. Unless another copy of the shard is still running, the
   * shard goes back to the front of its job's queue; `cause` (if any) counts as an attempt.
   */
  private withdraw(d: Dispatch, cause: { code: string; message: string } | null, notify = false): void {
    d.worker.inflight.delete(d.shardId);
    this.freed(d.worker);
    if (notify) d.worker.send(JSON.stringify({ type: "cancel", shardId: d.shardId, reason: cause?.message ?? "withdrawn" }));
    if (d.canary) {
      // A canary that got no answer is simply sent again (pump): nothing to put back.
      d.job.canaryPending.delete(d.worker.id);
      return;
    }
    const { job, task } = d;
    const copies = (job.inflight.get(task.idx) ?? []).filter((c) => c !== d);
    if (copies.length > 0) job.inflight.set(task.idx, copies);
    else job.inflight.delete(task.idx);
    if (!job.active) return;
    if (cause) {
      task.attempts += 1;
      task.failedOn.add(d.worker.id);
      task.causes.push(`${d.worker.name}: ${cause.code} ${cause.message}`);
      this.events.emit("shardRetried", { jobId: job.id, shard: task.idx, workerId: d.worker.id, code: cause.code, message: cause.message, attempts: task.attempts });
      if (task.attempts >= this.opts.maxShardAttempts) {
        const code = isErrorCode(cause.code) ? cause.code : "E_INFERENCE";
        this.failJob(job, new EdgepoolError(code, `shard ${task.idx} (rows ${task.start}-${task.end}) failed ${task.attempts} times: ${task.causes.join("; ")}`));
        return;
      }
    }
    if (copies.length === 0 && !(job.verifying && job.pending.includes(task))) {
      job.putBack(task);
      this.handedBack.set(task, Date.now());
      this.counters.requeued += 1;
    } else {
      this.requestReplicas(job, task);
    }
  }

  /** Keeps a verified shard queued while it needs replicas beyond those running or answered. */
  private requestReplicas(job: Job, task: ShardTask): void {
    if (!job.verifying || !job.active) return;
    const target = task.replicas?.target ?? job.row.verification.redundancy;
    const have = (task.replicas?.received ?? 0) + (job.inflight.get(task.idx)?.length ?? 0);
    if (have < target && !job.pending.includes(task)) job.pending.unshift(task);
  }

  /** True when `w` holds a copy of the shard or already answered it: replicas need other workers. */
  private holds(w: WorkerSession, job: Job, task: ShardTask): boolean {
    if (!job.verifying) return false;
    return (task.replicas?.has(w.id) ?? false) || (job.inflight.get(task.idx) ?? []).some((d) => d.worker === w);
  }

  /** Withdraws every dispatch of a job and drops it from scheduling. */
  private withdrawJob(job: Job, reason: string): void {
    const i = this.jobs.indexOf(job);
    if (i >= 0) this.jobs.splice(i, 1);
    job.pending.length = 0;
    // Canaries are not in job.inflight (they write nothing), but they go too.
    for (const d of [...[...job.inflight.values()].flat(), ...job.canaryPending.values()]) {
      d.worker.inflight.delete(d.shardId);
      this.freed(d.worker);
      d.worker.send(JSON.stringify({ type: "cancel", shardId: d.shardId, reason }));
    }
    job.inflight.clear();
    job.canaryPending.clear();
    this.pump();
  }

  private pumpQueued = false;

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
    const ready = this.workers.size - this.drainingCount;
    // Deep queues (worker-session.ts) are for many short shards; when there are not many more
    // shards than workers, a deep queue on one worker would starve the idle others.
    const deepAllowed = this.remainingShards() > DEEP_QUEUE_SHARDS_PER_WORKER * ready;
    for (const w of this.hungry) {
      if (!this.jobs.some((j) => j.hasWork)) break;
      while (w.freeCredit > 0 && (deepAllowed || w.inflight.size < w.baseCredit)) {
        const next = this.nextTask(w, ready);
        if (!next) break;
        if (next.canary) this.dispatch(w, next.job, { idx: -1, start: next.canary.row, end: next.canary.row + 1, attempts: 0, causes: [], failedOn: new Set() }, false, next.canary);
        else this.dispatch(w, next.job, next.task, false);
      }
      if (w.freeCredit === 0 || (!deepAllowed && w.inflight.size >= w.baseCredit)) this.hungry.delete(w);
    }
    if (!this.jobs.some((j) => j.hasWork)) this.scanForStragglers();
  }

  /** Shards still to send, over all jobs; adaptive jobs with rows left count as unbounded. */
  private remainingShards(): number {
    let n = 0;
    for (const job of this.jobs) {
      n += job.pending.length;
      if (job.uncut > 0) n += job.row.fixedShardSize ? Math.ceil(job.uncut / job.row.fixedShardSize) : Number.POSITIVE_INFINITY;
    }
    return n;
  }


  /** Runs the straggler scan now, or once the scan interval has passed since the last one. */
  private scanForStragglers(): void {
    const wait = this.lastStragglerScan + STRAGGLER_SCAN_MS - Date.now();
    if (wait <= 0) {
      this.lastStragglerScan = Date.now();
      this.assignStragglers();
      return;
    }
    this.stragglerTimer ??= setTimeout(() => {
      this.stragglerTimer = null;
      this.pump();
    }, wait);
    this.stragglerTimer.unref();
  }

  /** Marks a worker as possibly having free credit. */
  private freed(w: WorkerSession): void {
    if (w.state === "ready" && this.workers.has(w)) this.hungry.add(w);
  }

  /**
   * Duplicates shards that are behind their prediction onto idle workers, most behind first:
   * candidates are ranked once per call and idle workers visited only while there are copies
   * to place, so the cost follows the shards in flight, not the size of the pool.
   */
  private assignStragglers(): void {
    const now = Date.now();
    const late: Array<{ d: Dispatch; score: number }> = [];
    let inflight = 0;
    let copied = 0;
    for (const job of this.jobs) {
      // A verified shard already runs on several workers, and a copy must not count twice.
      if (job.verifying) continue;
      for (const copies of job.inflight.values()) {
        inflight += 1;
        if (copies.length > 1) copied += 1;
        if (copies.length !== 1) continue;
        const d = copies[0]!;
        // A shard may wait behind the others its worker holds, so "behind" allows for credit.
        const expected = (d.expectedMs > 0 ? d.expectedMs : this.opts.targetShardMs) * d.worker.credit;
        const elapsed = now - d.sentAt;
        if (elapsed > STRAGGLER_FACTOR * expected + 50) late.push({ d, score: elapsed / expected });
      }
    }
    // Copies are insurance against a few slow devices; when many shards look late, the
    // coordinator itself is the bottleneck and copies would only add to its load.
    let budget = Math.max(2, Math.ceil(inflight * MAX_COPIED_FRACTION)) - copied;
    if (late.length === 0 || budget <= 0) return;
    late.sort((a, b) => b.score - a.score);
    let next = 0;
    // Idle workers are found lazily: with a large pool most are idle, and a visit costs a step.
    for (const w of this.hungry) {
      if (!w.idle) continue;
      if (budget-- <= 0) return;
      while (next < late.length && late[next]!.d.worker === w) next++;
      const pick = late[next++];
      if (!pick) return;
      this.counters.duplicated += 1;
      this.log.debug({ jobId: pick.d.job.id, shard: pick.d.task.idx, worker: w.name, slowWorker: pick.d.worker.name }, "straggler duplicated");
      this.dispatch(w, pick.d.job, pick.d.task, true);
    }
  }

  private nextTask(w: WorkerSession, readyWorkers: number): { job: Job; task: ShardTask; canary?: undefined } | { job: Job; canary: Canary; task?: undefined } | undefined {
    for (let k = 0; k < this.jobs.length; k++) {
      const job = this.jobs[(this.rr + k) % this.jobs.length]!;
      if (!job.hasWork) continue;
      // A job with canaries gives a worker its real shards only once its canary matched.
      if (job.canaries.length > 0 && !job.canaryPassed.has(w.id)) {
        if (job.canaryPending.has(w.id)) continue;
        this.rr = (this.rr + k + 1) % this.jobs.length;
        return { job, canary: job.canaries[(job.canaryPassed.size + job.canaryPending.size) % job.canaries.length]! };
      }
      const task = this.pendingFor(w, job) ?? this.cut(w, job, readyWorkers);
      if (!task) continue;
      this.rr = (this.rr + k + 1) % this.jobs.length;
      return { job, task };
    }
    return undefined;
  }


  /**
   * The first pending shard `w` should take: a retried shard goes to a worker it has not failed
   * on while such a worker is ready; once it has failed on every ready worker, anyone may retry it.
   */
  private pendingFor(w: WorkerSession, job: Job): ShardTask | undefined {
    const i = job.pending.findIndex((t) => !this.holds(w, job, t) && (!t.failedOn.has(w.id) || !this.someoneElseCouldTake(t, w)));
    if (i < 0) return undefined;
    return job.pending.splice(i, 1)[0];
  }

  private someoneElseCouldTake(t: ShardTask, w: WorkerSession): boolean {
    for (const x of this.workers) if (x !== w && x.state === "ready" && !t.failedOn.has(x.id)) return true;
    return false;
  }

  private cut(w: WorkerSession, job: Job, readyWorkers: number): ShardTask | undefined {
    const rows = shardRows({
      fixed: job.row.fixedShardSize,
      rate: w.rates.get(job.model.sha256),
      targetShardMs: this.opts.targetShardMs,
      flopsPerSample: job.flopsPerSample,
      bytesPerRow: job.bytesPerRow(),
      remaining: job.uncut,
      workers: readyWorkers,
    });
    return job.cut(rows);
  }

  private dispatch(w: WorkerSession, job: Job, task: ShardTask, duplicate: boolean, canary?: Canary): void {
    const shardId = `${job.id}.${task.idx}.${++this.seq}`;
    const rows = task.end - task.start;
    const rate = w.rates.get(job.model.sha256);
    const expectedMs = rate ? (rows * 1000) / rate : 0;
    const now = Date.now();
    // A shard may wait behind the others this worker holds, so the allowance scales with credit.
    const deadline = rate
      ? now + this.opts.minShardTimeoutMs + DEADLINE_FACTOR * expectedMs * w.credit
      : now + this.opts.probeTimeoutMs;
    const d: Dispatch = { shardId, job, task, worker: w, sentAt: now, deadline, expectedMs, duplicate, ...(canary ? { canary } : {}) };
    w.inflight.set(shardId, d);
    if (canary) {
      job.canaryPending.set(w.id, d);
    } else {
      job.inflight.set(task.idx, [...(job.inflight.get(task.idx) ?? []), d]);
      if (!duplicate) this.requestReplicas(job, task);
    }
    w.shardsSent += 1;
    w.rowsSent += rows;
    w.lastShardRows = rows;
    if (job.state === "queued") {
      job.transition("running");
      this.events.emit("jobStarted", { jobId: job.id });
    }
    const handedBackAt = this.handedBack.get(task);
    if (handedBackAt !== undefined) this.handedBack.delete(task);
    this.reading
      .run(() => (w.inflight.get(shardId) === d ? job.buildShardFrame(task, shardId, this.frames.take) : Promise.resolve(null)))
      .then((frame) => {
        if (!frame) return; // withdrawn before its turn to be read
        if (w.inflight.get(shardId) !== d) return; // withdrawn while reading
        // Once written out, a large frame's buffer serves a later shard.
        if (!w.send(frame, frame.byteLength >= this.frames.minBytes ? () => this.frames.give(frame) : undefined)) return; // the socket went; removeWorker hands it back
        d.sentAt = Date.now();
        w.noteFrameBytes(frame.byteLength);
        this.counters.dispatched += 1;
        this.counters.bytesOut += frame.byteLength;
        if (this.events.listening("shardDispatched")) {
          this.events.emit("shardDispatched", {
            jobId: job.id, shardId, workerId: w.id, start: task.start, end: task.end, duplicate,
            resentAfterMs: handedBackAt === undefined ? null : d.sentAt - handedBackAt,
          });
        }
      })
      .catch((err: unknown) => {
        if (w.inflight.get(shardId) !== d) return;
        this.failJob(job, new EdgepoolError("E_IO", `could not read input rows ${task.start}-${task.end}: ${toEdgepoolError(err, "E_IO").message}`, { cause: err }));
      });
  }

  /** Gives up on dispatches past their deadline; called periodically. */
  checkDeadlines(now = Date.now()): void {
    let expired = 0;
    for (const w of this.workers) {
      for (const d of [...w.inflight.values()]) {
        if (d.deadline > now) continue;
        expired += 1;
        this.counters.timedOut += 1;
        const ms = now - d.sentAt;
        this.log.warn({ jobId: d.job.id, shardId: d.shardId, worker: w.name, ms }, "shard timed out");
        this.withdraw(d, { code: "E_TIMEOUT", message: `no result within ${ms} ms` }, true);
      }
    }
    if (expired > 0) this.pump();
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
    this.freed(w);
    // The credit is free now, not once the rows are written: one pump for all the results of
    // this read, so their replacements leave together.
    this.pumpSoon();
    if (d.canary) {
      this.onCanary(w, d, d.canary, tensors);
      this.pump();
      return;
    }
    const { job, task } = d;
    const rows = task.end - task.start;
    // Answered: no longer a straggler candidate while its rows are written.
    const others = (job.inflight.get(task.idx) ?? []).filter((c) => c !== d);
    if (others.length > 0) job.inflight.set(task.idx, others);
    else job.inflight.delete(task.idx);
    const busyMs = header.computeMs + header.throttleMs;
    if (busyMs > 0) w.rates.set(job.model.sha256, updateRate(w.rates.get(job.model.sha256), (rows * 1000) / busyMs));
    if (job.verifying) this.onReplica(w, d, tensors, header);
    else this.commit(w, d, tensors, header, true);
    this.pump();
  }

  /** A canary's answer: the worker gets the job's real shards if it matches, quarantine if not. */
  private onCanary(w: WorkerSession, d: Dispatch, canary: Canary, tensors: NamedTensor[]): void {
    const { job } = d;
    job.canaryPending.delete(w.id);
    if (resultsAgree(tensors, canary.outputs, job.row.verification)) {
      job.canaryPassed.add(w.id);
      w.agreements += 1;
      this.counters.canariesPassed += 1;
      return;
    }
    w.disagreements += 1;
    this.counters.canariesFailed += 1;
    this.log.warn({ jobId: job.id, row: canary.row, worker: w.name, workerId: w.id }, "worker answered a canary shard wrongly");
    if (!w.quarantined) this.quarantineWorker(w, `answered canary row ${canary.row} of job ${job.id} wrongly`);
  }

  /** A verified job's answer: kept until replicas agree, then the agreed one is committed. */
  private onReplica(w: WorkerSession, d: Dispatch, tensors: NamedTensor[], header: ResultHeader): void {
    const { job, task } = d;
    const rows = task.end - task.start;
    const v = job.row.verification;
    task.replicas ??= new Replicas<WorkerSession>(v.redundancy, 2 * v.redundancy + 1, v);
    if (task.replicas.has(w.id)) {
      this.counters.lateResults += 1; // the same worker again (after a reconnect): one vote each
      return;
    }
    // The worker did the work whatever the verdict: its own figures count it.
    w.recordDone(job.model.sha256, rows, header.computeMs, header.throttleMs);
    if (w.virtual) job.touchedByVirtual = true;
    const verdict = task.replicas.add(w, tensors);
    if (verdict.kind === "pending") {
      this.requestReplicas(job, task);
      return;
    }
    if (verdict.kind === "undecided") {
      task.replicas = undefined;
      task.attempts += 1;
      task.causes.push(`${2 * v.redundancy + 1} replicas gave ${verdict.groups} different answers`);
      this.counters.failed += 1;
      this.log.warn({ jobId: job.id, shard: task.idx, groups: verdict.groups }, "replicas disagree; starting over");
      if (task.attempts >= this.opts.maxShardAttempts) {
        this.failJob(job, new EdgepoolError("E_INFERENCE", `shard ${task.idx} (rows ${task.start}-${task.end}) could not be verified: ${task.causes.join("; ")}`));
        return;
      }
      this.requestReplicas(job, task);
      return;
    }
    const queued = job.pending.indexOf(task);
    if (queued >= 0) job.pending.splice(queued, 1);
    this.counters.verified += 1;
    for (const x of verdict.agree) x.agreements += 1;
    for (const x of verdict.disagree) {
      x.disagreements += 1;
      this.counters.replicaMismatches += 1;
      this.log.warn({ jobId: job.id, shard: task.idx, worker: x.name, workerId: x.id, trust: x.trust }, "worker returned a result the other replicas disagree with");
      if (!x.quarantined && x.disagreements >= 2 && x.trust < 0.5) this.quarantineWorker(x, `${x.disagreements} results disagreed with the verified answer`);
    }
    this.commit(w, d, verdict.tensors, header, false);
  }

  /**
   * Stops giving work to a worker caught returning wrong results: its shards go elsewhere and
   * its answers still waiting for a verdict no longer count.
   */
  private quarantineWorker(w: WorkerSession, reason: string): void {
    w.quarantined = true;
    this.quarantine.set(w.id, reason);
    this.counters.quarantined += 1;
    this.hungry.delete(w);
    this.events.emit("workerQuarantined", { workerId: w.id, name: w.name, trust: w.trust, reason });
    for (const d of [...w.inflight.values()]) this.withdraw(d, null, true);
    for (const job of this.jobs) {
      if (!job.verifying) continue;
      const tasks = new Set([...job.pending, ...[...job.inflight.values()].flatMap((copies) => copies.map((c) => c.task))]);
      for (const t of tasks) {
        t.replicas?.drop(w.id);
        this.requestReplicas(job, t);
      }
    }
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
        const copies = job.inflight.get(task.idx) ?? [];
        if (copies.length > 0) this.pumpSoon();
        job.inflight.delete(task.idx);
        for (const other of copies) {
          other.worker.inflight.delete(other.shardId);
          this.freed(other.worker);
          other.worker.send(JSON.stringify({ type: "cancel", shardId: other.shardId, reason: "another copy finished first" }));
          this.counters.duplicatesCancelled += 1;
        }
        if (recordWorker) {
          w.recordDone(job.model.sha256, rows, header.computeMs, header.throttleMs);
          if (w.virtual) job.touchedByVirtual = true;
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

  /** Handles a `shard_error` from a worker. */
  onShardError(w: WorkerSession, msg: ShardError): void {
    const d = w.inflight.get(msg.shardId);
    if (!d) {
      this.counters.lateResults += 1;
      return;
    }
    w.shardErrors += 1;
    this.counters.failed += 1;
    this.log.warn({ jobId: d.job.id, shardId: d.shardId, worker: w.name, code: msg.code, err: msg.message, attempt: d.task.attempts + 1 }, "shard failed");
    this.withdraw(d, msg);
    this.pump();
  }

  private finishJob(job: Job): void {
    const i = this.jobs.indexOf(job);
    // Two results whose rows land together can both find the job complete (it stays active
    // until its files are closed): only the first finishes it. A second finish used to throw
    // "cannot go from done to failed" from its catch, an unhandled rejection that ended the process.
    if (i < 0) return;
    this.jobs.splice(i, 1);
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
    let n = 0;
    for (const w of this.workers) if (w.inflight.size > 0) n++;
    return n;
  }
}
