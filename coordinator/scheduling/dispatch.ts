/**
 * A shard in flight: one `Dispatch` per copy of a shard sent to a worker (more than one when
 * a straggler is copied or replicas are verified), and the table of them, by shard id, by
 * worker and by shard. A dispatch is in the table from the moment it is made until it is
 * answered or withdrawn; `live` says which, so the frame reader and the sender can tell a
 * dispatch withdrawn meanwhile without a lookup. Each shard id names one dispatch, so a late
 * answer to a withdrawn, retried or copied dispatch is recognised and dropped.
 */
import type { Job } from "../jobs/job.js";
import type { ShardTask } from "./shard-task.js";
import type { WorkerSession } from "../workers/session.js";
import type { Canary } from "./canary.js";

export interface Dispatch {
  readonly shardId: string;
  readonly job: Job;
  readonly task: ShardTask;
  readonly worker: WorkerSession;
  /** When the frame was handed to the connection (until then, when the dispatch was made). */
  sentAt: number;
  /** When this dispatch is given up on if no answer came (ms since epoch). */
  readonly deadline: number;
  /** What the rate on record predicted, in ms (0 when the worker was not yet measured). */
  readonly expectedMs: number;
  /** A speculative copy of a shard already running elsewhere. */
  readonly duplicate: boolean;
  /** A canary shard: its answer is checked against this, and never written. */
  readonly canary: Canary | null;
  /** When its shard was last handed back (dead worker, timeout, error), if it was: for the resend latency. */
  readonly handedBackAt: number | null;
  /** True while in the table (DispatchTable sets it; nothing else may). */
  live: boolean;
}

/** Why a dispatch was withdrawn, when that counts as a failed attempt (a worker's shard_error, a timeout, a bad result). */
export interface WithdrawCause {
  code: string;
  message: string;
}

/** Deadline multiple of the predicted time, per shard queued ahead on the worker. */
const DEADLINE_FACTOR = 4;

export interface DeadlineOptions {
  /** Deadline for a shard on a worker not yet measured on its model. */
  probeTimeoutMs: number;
  /** Slack added to every measured deadline. */
  minShardTimeoutMs: number;
}

/** Makes the dispatch of `task` to `worker`, its deadline derived from the worker's measured rate on the job's model. */
export function newDispatch(
  shardId: string,
  job: Job,
  task: ShardTask,
  worker: WorkerSession,
  duplicate: boolean,
  canary: Canary | null,
  handedBackAt: number | null,
  opts: DeadlineOptions,
  now: number,
): Dispatch {
  const rate = worker.rateOn(job.model.sha256);
  const expectedMs = rate ? ((task.end - task.start) * 1000) / rate : 0;
  // A shard may wait behind the others this worker holds, so the allowance scales with credit.
  const deadline = rate ? now + opts.minShardTimeoutMs + DEADLINE_FACTOR * expectedMs * worker.credit : now + opts.probeTimeoutMs;
  return { shardId, job, task, worker, sentAt: now, deadline, expectedMs, duplicate, canary, handedBackAt, live: false };
}

const NONE: readonly Dispatch[] = [];

/** The dispatches in flight. Canaries are kept by id and worker, not by shard: they write nothing. */
export class DispatchTable {
  private readonly byId = new Map<string, Dispatch>();
  private readonly byWorker = new Map<WorkerSession, Set<Dispatch>>();
  private readonly byShard = new Map<ShardTask, Dispatch[]>();

  /** Dispatches in flight. */
  get size(): number {
    return this.byId.size;
  }

  /** Records a dispatch made (and counts it on its worker). */
  add(d: Dispatch): void {
    d.live = true;
    this.byId.set(d.shardId, d);
    let mine = this.byWorker.get(d.worker);
    if (!mine) {
      mine = new Set();
      this.byWorker.set(d.worker, mine);
    }
    mine.add(d);
    if (d.canary === null) {
      const copies = this.byShard.get(d.task);
      if (copies) copies.push(d);
      else this.byShard.set(d.task, [d]);
    }
    d.worker.hold(d.task.end - d.task.start);
  }

  /** Takes a dispatch out (answered or withdrawn); false when it was not in flight. */
  remove(d: Dispatch): boolean {
    if (!d.live) return false;
    d.live = false;
    this.byId.delete(d.shardId);
    this.byWorker.get(d.worker)?.delete(d);
    if (d.canary === null) {
      const copies = this.byShard.get(d.task);
      if (copies) {
        if (copies.length === 1) this.byShard.delete(d.task);
        else copies.splice(copies.indexOf(d), 1);
      }
    }
    d.worker.release();
    return true;
  }

  /** The dispatch `shardId` in flight on `worker`, if any. */
  find(worker: WorkerSession, shardId: string): Dispatch | undefined {
    const d = this.byId.get(shardId);
    return d !== undefined && d.worker === worker ? d : undefined;
  }

  /** The copies of a shard in flight (empty when none). */
  copiesOf(task: ShardTask): readonly Dispatch[] {
    return this.byShard.get(task) ?? NONE;
  }

  /** True when `worker` holds a copy of `task`. */
  holds(worker: WorkerSession, task: ShardTask): boolean {
    for (const d of this.copiesOf(task)) if (d.worker === worker) return true;
    return false;
  }

  /** The dispatches on `worker`, as a list of their own (the caller may withdraw them as it goes). */
  onWorker(worker: WorkerSession): Dispatch[] {
    const mine = this.byWorker.get(worker);
    return mine ? [...mine] : [];
  }

  /** Forgets a worker that has left (its dispatches withdrawn first). */
  forgetWorker(worker: WorkerSession): void {
    if ((this.byWorker.get(worker)?.size ?? 0) === 0) this.byWorker.delete(worker);
  }

  /** The dispatches of `job`, canaries included, as a list of their own. */
  ofJob(job: Job): Dispatch[] {
    const out: Dispatch[] = [];
    for (const d of this.byId.values()) if (d.job === job) out.push(d);
    return out;
  }

  /** Every shard in flight, as its copies (canaries not included). */
  shards(): IterableIterator<readonly Dispatch[]> {
    return this.byShard.values();
  }

  /** Every dispatch in flight. */
  all(): IterableIterator<Dispatch> {
    return this.byId.values();
  }
}
