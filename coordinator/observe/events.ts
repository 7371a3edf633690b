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
import { z } from "zod";
import { isErrorCode, type ErrorCode } from "../../shared/errors.js";

/**
 * Every event's payload, one schema each: the types below are inferred from them, and a
 * spawned coordinator's log lines are parsed back with them (log-events.ts).
 */
export const EVENT_SCHEMAS = {
  /** The coordinator listens and has resumed the jobs its data directory held. */
  coordinatorListening: z.object({
    url: z.string(),
    dataDir: z.string(),
    protocol: z.number(),
    /** Unfinished jobs found in the data directory and queued again. */
    resumedJobs: z.number(),
    tls: z.boolean(),
    /** Tokens per role (counts only, never a token), or that the pool is open. */
    tokens: z.union([z.record(z.string(), z.number()), z.literal("none (open pool)")]),
  }),
  /** The coordinator has closed: every socket, the job files and the database. */
  coordinatorStopped: z.object({
    /** The grace period ran out and open connections were cut. */
    forced: z.boolean(),
    /** Ms from close() being called to the end. */
    ms: z.number(),
  }),
  workerJoined: z.object({
    workerId: z.string(),
    name: z.string(),
    platform: z.string(),
    cpus: z.number(),
    threads: z.number(),
    slots: z.number(),
    virtual: z.boolean(),
    remote: z.string(),
  }),
  workerLeft: z.object({
    workerId: z.string(),
    name: z.string(),
    /** WebSocket close code. */
    code: z.number(),
    /** Shards it held that went back to their jobs. */
    requeued: z.number(),
  }),
  workerQuarantined: z.object({ workerId: z.string(), name: z.string(), trust: z.number(), reason: z.string() }),
  shardDispatched: z.object({
    jobId: z.string(),
    shardId: z.string(),
    workerId: z.string(),
    start: z.number(),
    end: z.number(),
    /** A straggler's speculative copy. */
    duplicate: z.boolean(),
  }),
  /** A shard that had been handed back (dead worker, timeout, error) went out again: the failover figure. */
  shardResent: z.object({
    jobId: z.string(),
    shardId: z.string(),
    workerId: z.string(),
    /** Ms from being handed back to being sent again. */
    afterMs: z.number(),
  }),
  shardDone: z.object({
    jobId: z.string(),
    shardId: z.string(),
    workerId: z.string(),
    rows: z.number(),
    /** Ms from the shard frame being sent to its result being accepted. */
    ms: z.number(),
    virtual: z.boolean(),
  }),
  shardRetried: z.object({
    jobId: z.string(),
    /** The shard's index in its job. */
    shard: z.number(),
    workerId: z.string(),
    code: z.string(),
    message: z.string(),
    /** Failed attempts so far, this one included. */
    attempts: z.number(),
  }),
  jobStarted: z.object({ jobId: z.string() }),
  jobDone: z.object({
    jobId: z.string(),
    rows: z.number(),
    shards: z.number(),
    seconds: z.number(),
    samplesPerSec: z.number(),
    /** Some shard ran on a virtual worker. */
    virtual: z.boolean(),
  }),
  jobFailed: z.object({ jobId: z.string(), code: z.custom<ErrorCode>(isErrorCode), message: z.string(), virtual: z.boolean() }),
  jobCancelled: z.object({ jobId: z.string(), virtual: z.boolean() }),
};

export type CoordinatorEventMap = { [K in keyof typeof EVENT_SCHEMAS]: z.infer<(typeof EVENT_SCHEMAS)[K]> };
export type CoordinatorListening = CoordinatorEventMap["coordinatorListening"];

export type CoordinatorEventName = keyof CoordinatorEventMap;
export type Listener<K extends CoordinatorEventName> = (event: CoordinatorEventMap[K]) => void;

/** A small typed emitter: listeners per event name, called in order, each guarded. */
export class CoordinatorEvents {
  private readonly listeners: { [K in CoordinatorEventName]?: ReadonlyArray<Listener<K>> } = {};

  constructor(private readonly log: Logger) {}

  /** Subscribes; returns the function that unsubscribes. */
  on<K extends CoordinatorEventName>(name: K, fn: Listener<K>): () => void {
    // Lists are replaced, never changed in place, so emit (per shard, hot) needs no copy to
    // stay correct when a listener unsubscribes while it runs.
    const listeners = this.listeners as { [N in K]?: ReadonlyArray<Listener<N>> };
    listeners[name] = [...(listeners[name] ?? []), fn];
    return () => {
      listeners[name] = (listeners[name] ?? []).filter((x) => x !== fn);
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
    const list = this.listeners[name] as ReadonlyArray<Listener<K>> | undefined;
    if (!list) return;
    for (const fn of list) {
      try {
        fn(event);
      } catch (err) {
        this.log.error({ listenerOf: name, err: err instanceof Error ? err.message : String(err) }, "a coordinator event listener threw");
      }
    }
  }
}
