/**
 * What comes back from workers, and what does not: a `result` frame (parsed by the gateway),
 * a `shard_error`, and the silence of a dispatch past its deadline. A result frees its
 * worker's credit at once; a canary's or a verified job's answer goes to vetting.ts, any
 * other to the scheduler's commit. An error or a missed deadline is a failed attempt: the
 * scheduler's withdraw retries the shard elsewhere. An answer for a dispatch no longer in
 * flight (withdrawn, retried, or a copy that lost) is late: dropped and counted.
 */
import type { Logger } from "pino";
import type { NamedTensor } from "../../shared/protocol/frame.js";
import type { ResultFrame, ResultHeader, ShardError } from "../../shared/protocol/messages.js";
import type { WorkerSession } from "../workers/session.js";
import type { SchedulerCounters } from "./counters.js";
import type { Dispatch, DispatchTable, WithdrawCause } from "./dispatch.js";
import { updateRate } from "./planner.js";
import type { WorkerPool } from "./pool.js";
import type { Vetting } from "./vetting.js";

/** What intake needs the scheduler to do. */
export interface IntakeHost {
  /** Takes a dispatch back and retries its shard; `cause` counts as a failed attempt; `notify` cancels it on its worker. */
  withdraw(d: Dispatch, cause: WithdrawCause | null, notify: boolean): void;
  /** Writes an accepted answer (the first for its shard wins). */
  commit(w: WorkerSession, d: Dispatch, tensors: NamedTensor[], header: ResultHeader): void;
  pump(): void;
  /** Pumps once this turn's other results are in. */
  pumpSoon(): void;
}

export class Intake {
  constructor(
    private readonly log: Logger,
    private readonly counters: SchedulerCounters,
    private readonly inflight: DispatchTable,
    private readonly pool: WorkerPool,
    private readonly vetting: Vetting,
    private readonly host: IntakeHost,
  ) {}

  /** A `result` frame from `w`; `bytes` is its size on the wire. */
  result(w: WorkerSession, result: ResultFrame, bytes: number): void {
    const { header, tensors } = result;
    this.counters.bytesIn += bytes;
    const d = this.inflight.find(w, header.shardId);
    if (!d || d.job.id !== header.jobId) {
      this.counters.lateResults += 1;
      this.log.debug({ shardId: header.shardId, worker: w.name }, "late or unknown result dropped");
      return;
    }
    // Answered: off its worker (and no longer a straggler candidate) while its rows are written.
    this.inflight.remove(d);
    this.pool.freed(w);
    // The credit is free now, not once the rows are written: one pump for all the results of
    // this read, so their replacements leave together.
    this.host.pumpSoon();
    if (d.canary) {
      this.vetting.onCanary(w, d.job, d.canary, tensors);
      this.host.pump();
      return;
    }
    const { job, task } = d;
    const busyMs = header.computeMs + header.throttleMs;
    if (busyMs > 0) w.setRate(job.model.sha256, updateRate(w.rateOn(job.model.sha256), ((task.end - task.start) * 1000) / busyMs));
    if (job.verifying) this.vetting.onReplica(w, d, tensors, header);
    else this.host.commit(w, d, tensors, header);
    this.host.pump();
  }

  /** A `shard_error` from `w`: a failed attempt, retried elsewhere. */
  shardError(w: WorkerSession, msg: ShardError): void {
    const d = this.inflight.find(w, msg.shardId);
    if (!d) {
      this.counters.lateResults += 1;
      return;
    }
    w.recordShardError();
    this.counters.failed += 1;
    this.log.warn({ jobId: d.job.id, shardId: d.shardId, worker: w.name, code: msg.code, err: msg.message, attempt: d.task.attempts + 1 }, "shard failed");
    this.host.withdraw(d, msg, false);
    this.host.pump();
  }

  /** Gives up on dispatches past their deadline (each a failed attempt, cancelled on its worker). */
  deadlines(now: number): void {
    const expired: Dispatch[] = [];
    for (const d of this.inflight.all()) if (d.deadline <= now) expired.push(d);
    for (const d of expired) {
      if (!d.live) continue; // its job failed on an earlier one
      this.counters.timedOut += 1;
      const ms = now - d.sentAt;
      this.log.warn({ jobId: d.job.id, shardId: d.shardId, worker: d.worker.name, ms }, "shard timed out");
      this.host.withdraw(d, { code: "E_TIMEOUT", message: `no result within ${ms} ms` }, true);
    }
    if (expired.length > 0) this.host.pump();
  }
}
