/**
 * The coordinator's typed events: what happened to workers, shards and jobs, as plain data.
 * The parts that do the work (gateway, scheduler) emit them; logs, metrics, the dashboard
 * feed and tests subscribe. Payloads hold ids and figures, never live objects, so a
 * subscriber cannot reach into the scheduler's state, and this file imports nothing of the
 * coordinator's. `emit` is safe: a listener that throws is logged and never reaches the
 * emitter. Per-shard events are hot (tens of thousands a second): emitters check
 * `listening(name)` before building their payload.
 */
import type { Logger } from "pino";
import type { ErrorCode } from "../../shared/errors.js";

export interface WorkerJoined {
  workerId: string;
  name: string;
  platform: string;
  cpus: number;
  threads: number;
  slots: number;
  virtual: boolean;
  remote: string;
}

export interface WorkerLeft {
  workerId: string;
  name: string;
  /** WebSocket close code. */
  code: number;
  /** Shards it held that went back to their jobs. */
  requeued: number;
}

export interface WorkerQuarantined {
  workerId: string;
  name: string;
  trust: number;
  reason: string;
}

export interface ShardDispatched {
  jobId: string;
  shardId: string;
  workerId: string;
  start: number;
  end: number;
  /** A straggler's speculative copy. */
  duplicate: boolean;
  /** Ms since the shard was handed back (dead worker, timeout, error), when it was. */
  resentAfterMs: number | null;
}

/** A shard that had been handed back (dead worker, timeout, error) went out again: the failover figure. */
export interface ShardResent {
  jobId: string;
  shardId: string;
  workerId: string;
  /** Ms from being handed back to being sent again. */
  afterMs: number;
}

export interface ShardDone {
  jobId: string;
  shardId: string;
  workerId: string;
  rows: number;
  /** Ms from the shard frame being sent to its result being accepted. */
  ms: number;
  virtual: boolean;
}

export interface ShardRetried {
  jobId: string;
  /** The shard's index in its job. */
  shard: number;
  workerId: string;
  code: string;
  message: string;
  /** Failed attempts so far, this one included. */
  attempts: number;
}

export interface JobStarted {
  jobId: string;
}

export interface JobDone {
  jobId: string;
  rows: number;
  shards: number;
  seconds: number;
  samplesPerSec: number;
  /** Some shard ran on a virtual worker. */
  virtual: boolean;
}

export interface JobFailed {
  jobId: string;
  code: ErrorCode;
  message: string;
  virtual: boolean;
}

export interface JobCancelled {
  jobId: string;
  virtual: boolean;
}

/** The coordinator listens and has resumed the jobs its data directory held. */
export interface CoordinatorListening {
  url: string;
  dataDir: string;
  protocol: number;
  /** Unfinished jobs found in the data directory and queued again. */
  resumedJobs: number;
  tls: boolean;
  /** Tokens per role (counts only, never a token), or that the pool is open. */
  tokens: Record<string, number> | "none (open pool)";
}

/** The coordinator has closed: every socket, the job files and the database. */
export interface CoordinatorStopped {
  /** The grace period ran out and open connections were cut. */
  forced: boolean;
  /** Ms from close() being called to the end. */
  ms: number;
}

export interface CoordinatorEventMap {
  coordinatorListening: CoordinatorListening;
  coordinatorStopped: CoordinatorStopped;
  workerJoined: WorkerJoined;
  workerLeft: WorkerLeft;
  workerQuarantined: WorkerQuarantined;
  shardDispatched: ShardDispatched;
  shardResent: ShardResent;
  shardDone: ShardDone;
  shardRetried: ShardRetried;
  jobStarted: JobStarted;
  jobDone: JobDone;
  jobFailed: JobFailed;
  jobCancelled: JobCancelled;
}

export type CoordinatorEventName = keyof CoordinatorEventMap;
export type Listener<K extends CoordinatorEventName> = (event: CoordinatorEventMap[K]) => void;

/** A small typed emitter: listeners per event name, called in order, each guarded. */
export class CoordinatorEvents {
  private readonly listeners: { [K in CoordinatorEventName]?: Array<Listener<K>> } = {};

  constructor(private readonly log: Logger) {}

  /** Subscribes; returns the function that unsubscribes. */
  on<K extends CoordinatorEventName>(name: K, fn: Listener<K>): () => void {
    const list = (this.listeners[name] ??= []) as Array<Listener<K>>;
    list.push(fn);
    return () => {
      const i = list.indexOf(fn);
      if (i >= 0) list.splice(i, 1);
    };
  }

  /** Resolves with the first event of `name` that `match` accepts (tests wait on events, not sleeps). */
  next<K extends CoordinatorEventName>(name: K, match: (e: CoordinatorEventMap[K]) => boolean = () => true): Promise<CoordinatorEventMap[K]> {
    return new Promise((resolve) => {
      const off = this.on(name, (e) => {
        if (!match(e)) return;
        off();
        resolve(e);
      });
    });
  }

  /** True when someone listens: hot emitters skip building a payload nobody reads. */
  listening(name: CoordinatorEventName): boolean {
    return (this.listeners[name]?.length ?? 0) > 0;
  }

  /** Calls every listener of `name`; one that throws is logged, the rest still run. */
  emit<K extends CoordinatorEventName>(name: K, event: CoordinatorEventMap[K]): void {
    const list = this.listeners[name] as Array<Listener<K>> | undefined;
    if (!list) return;
    for (const fn of [...list]) {
      try {
        fn(event);
      } catch (err) {
        this.log.error({ event: name, err: err instanceof Error ? err.message : String(err) }, "a coordinator event listener threw");
      }
    }
  }
}
