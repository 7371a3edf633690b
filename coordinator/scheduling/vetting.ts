/**
 * The scheduler's side of answers that must be vetted before they count: a verified job's
 * replicas (verification.ts decides whether they agree and whom to quarantine), a job's
 * canaries (canary.ts decides what a worker may get and whether it answered right), and
 * quarantine itself. Decisions come from those policies; this is where the scheduler carries
 * them out: it queues replicas, records agreements on the sessions, counts, quarantines, and
 * hands an agreed answer to the scheduler's commit.
 */
import type { Logger } from "pino";
import { EdgepoolError } from "../../shared/errors.js";
import type { NamedTensor } from "../../shared/protocol/frame.js";
import type { ResultHeader } from "../../shared/protocol/messages.js";
import type { Job } from "../jobs/job.js";
import type { ShardTask } from "./shard-task.js";
import type { CoordinatorEvents } from "../observe/events.js";
import type { WorkerSession } from "../workers/session.js";
import { CanaryGate, type Canary } from "./canary.js";
import type { Dispatch, DispatchTable } from "./dispatch.js";
import type { WorkerPool } from "./pool.js";
import type { SchedulerCounters } from "./counters.js";
import { Verifier, quarantineReason } from "./verification.js";

/** What vetting needs the scheduler to do. */
export interface VettingHost {
  readonly activeJobs: readonly Job[];
  /** Takes a dispatch back and cancels it on its worker; its shard goes elsewhere, no attempt counted. */
  takeBack(d: Dispatch): void;
  /** Writes an agreed answer (the first for its shard wins). */
  commit(w: WorkerSession, d: Dispatch, tensors: NamedTensor[], header: ResultHeader): void;
  failJob(job: Job, error: EdgepoolError): void;
}

export class Vetting {
  private readonly verifier = new Verifier<ShardTask, WorkerSession>();
  /**
   * The canary policy of each job that has canaries, kept weakly: a canary's answer still
   * counts after its job finished (a slow worker's may come last), and the gate goes with the job.
   */
  private readonly gates = new WeakMap<Job, CanaryGate>();

  constructor(
    private readonly log: Logger,
    private readonly events: CoordinatorEvents,
    private readonly counters: SchedulerCounters,
    private readonly inflight: DispatchTable,
    private readonly pool: WorkerPool,
    private readonly maxShardAttempts: number,
    private readonly host: VettingHost,
  ) {}

  addJob(job: Job): void {
    if (job.canaries.length > 0) this.gates.set(job, new CanaryGate(job.id, job.canaries, job.row.verification));
  }

  /** The canary gate of `job`, if it has canaries. */
  gate(job: Job): CanaryGate | undefined {
    return job.canaries.length > 0 ? this.gates.get(job) : undefined;
  }

  /** Keeps a verified shard queued while it needs replicas beyond those running or answered. */
  requestReplicas(job: Job, task: ShardTask): void {
    if (!job.verifying || !job.active) return;
    if (this.verifier.wantsMore(task, this.inflight.copiesOf(task).length, job.row.verification.redundancy)) job.wantReplica(task);
  }

  /** True when `w` holds a copy of a verified shard or already answered it: its replicas need other workers. */
  holds(w: WorkerSession, job: Job, task: ShardTask): boolean {
    return job.verifying && (this.verifier.answered(task, w.id) || this.inflight.holds(w, task));
  }

  /** A verified shard's answer is written: its replicas are done with. */
  committed(task: ShardTask): void {
    this.verifier.forget(task);
  }

  /** A canary's answer: the worker gets the job's real shards if it matches, quarantine if not. */
  onCanary(w: WorkerSession, job: Job, canary: Canary, tensors: NamedTensor[]): void {
    const verdict = this.gates.get(job)?.judge(w.id, canary, tensors);
    if (!verdict) return;
    if (verdict.kind === "passed") {
      w.recordAgreement();
      this.counters.canariesPassed += 1;
      return;
    }
    w.recordDisagreement();
    this.counters.canariesFailed += 1;
    this.log.warn({ jobId: job.id, row: canary.row, worker: w.name, workerId: w.id }, "worker answered a canary shard wrongly");
    if (!w.quarantined) this.quarantine(w, verdict.reason);
  }

  /** A verified job's answer: kept until replicas agree, then the agreed one is committed. */
  onReplica(w: WorkerSession, d: Dispatch, tensors: NamedTensor[], header: ResultHeader): void {
    const { job, task } = d;
    const decision = this.verifier.judge(task, w, tensors, job.row.verification);
    if (decision.kind === "repeat") {
      this.counters.lateResults += 1; // the same worker again (after a reconnect): one vote each
      return;
    }
    // The worker did the work whatever the verdict: its own figures count it.
    w.recordDone(job.model.sha256, task.end - task.start, header.computeMs, header.throttleMs);
    if (w.virtual) job.markTouchedByVirtual();
    if (decision.kind === "wait") {
      this.requestReplicas(job, task);
      return;
    }
    if (decision.kind === "retry") {
      const attempts = task.fail(decision.cause, null);
      this.counters.failed += 1;
      this.log.warn({ jobId: job.id, shard: task.idx, groups: decision.groups }, "replicas disagree; starting over");
      if (attempts >= this.maxShardAttempts) {
        this.host.failJob(job, new EdgepoolError("E_INFERENCE", `shard ${task.idx} (rows ${task.start}-${task.end}) could not be verified: ${task.causes.join("; ")}`));
        return;
      }
      this.requestReplicas(job, task);
      return;
    }
    job.unqueue(task);
    this.counters.verified += 1;
    for (const x of decision.agree) x.recordAgreement();
    for (const x of decision.disagree) {
      x.recordDisagreement();
      this.counters.replicaMismatches += 1;
      this.log.warn({ jobId: job.id, shard: task.idx, worker: x.name, workerId: x.id, trust: x.trust }, "worker returned a result the other replicas disagree with");
      const reason = quarantineReason(x);
      if (reason !== null) this.quarantine(x, reason);
    }
    this.host.commit(w, d, decision.tensors, header);
  }

  /**
   * Stops giving work to a worker caught returning wrong results: its shards go elsewhere and
   * its answers still waiting for a verdict no longer count.
   */
  quarantine(w: WorkerSession, reason: string): void {
    this.pool.quarantined(w, reason);
    this.counters.quarantined += 1;
    this.events.emit("workerQuarantined", { workerId: w.id, name: w.name, trust: w.trust, reason });
    for (const d of this.inflight.onWorker(w)) this.host.takeBack(d);
    for (const job of this.host.activeJobs) {
      if (!job.verifying) continue;
      const tasks = new Set(job.pendingTasks());
      for (const copies of this.inflight.shards()) if (copies[0]?.job === job) tasks.add(copies[0].task);
      for (const t of tasks) {
        this.verifier.drop(t, w.id);
        this.requestReplicas(job, t);
      }
    }
  }
}
