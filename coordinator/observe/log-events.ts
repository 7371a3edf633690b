/**
 * The coordinator's log of what happens: one structured line per event (observe/events.ts),
 * each with `event: <name>` beside its fields, so that whoever reads a spawned coordinator's
 * log (tests/harness, shared/node/procs.ts) waits on the event by name and parses its fields
 * with the schema below instead of matching message text. Per-shard events are debug lines,
 * subscribed only when debug is on, so that with tiny shards (tens of thousands a second) no
 * payload is built for a line nobody writes.
 */
import type { Logger } from "pino";
import { z } from "zod";
import type { CoordinatorEventMap, CoordinatorEventName, CoordinatorEvents } from "./events.js";

/**
 * The fields of each event's log line (pino's own and `event` aside). A worker's name is
 * logged as `worker`: pino's `name` is the logger's.
 */
export const EVENT_LINES = {
  coordinatorListening: z.object({
    url: z.string(),
    dataDir: z.string(),
    protocol: z.number(),
    resumedJobs: z.number(),
    tls: z.boolean(),
    tokens: z.union([z.record(z.string(), z.number()), z.literal("none (open pool)")]),
  }),
  coordinatorStopped: z.object({ forced: z.boolean(), ms: z.number() }),
  workerJoined: z.object({ worker: z.string(), workerId: z.string(), platform: z.string(), cpus: z.number(), threads: z.number(), slots: z.number(), remote: z.string() }),
  workerLeft: z.object({ worker: z.string(), workerId: z.string(), code: z.number(), requeued: z.number() }),
  workerQuarantined: z.object({ worker: z.string(), workerId: z.string(), trust: z.number(), reason: z.string() }),
  jobStarted: z.object({ jobId: z.string() }),
  jobDone: z.object({ jobId: z.string(), rows: z.number(), shards: z.number(), seconds: z.number(), samplesPerSec: z.number(), virtual: z.boolean() }),
  jobFailed: z.object({ jobId: z.string(), code: z.string(), err: z.string() }),
  jobCancelled: z.object({ jobId: z.string() }),
  shardDispatched: z.object({ jobId: z.string(), shardId: z.string(), workerId: z.string(), start: z.number(), end: z.number(), duplicate: z.boolean() }),
  shardResent: z.object({ jobId: z.string(), shardId: z.string(), workerId: z.string(), afterMs: z.number() }),
  shardDone: z.object({ jobId: z.string(), shardId: z.string(), workerId: z.string(), rows: z.number(), ms: z.number() }),
  shardRetried: z.object({ jobId: z.string(), shard: z.number(), workerId: z.string(), code: z.string(), attempts: z.number() }),
} satisfies { [K in CoordinatorEventName]: z.ZodType };

/** What the log line of event `K` carries. */
export type EventLine<K extends CoordinatorEventName> = z.infer<(typeof EVENT_LINES)[K]>;

/** The same schemas, typed per name, so that looking one up by a generic name keeps its type. */
const LINE_SCHEMAS: { [K in CoordinatorEventName]: z.ZodType<EventLine<K>> } = EVENT_LINES;

/** Parses one log line (JSON, from unknown) as event `name`; undefined when it is another line. */
export function parseEventLine<K extends CoordinatorEventName>(line: unknown, name: K): EventLine<K> | undefined {
  if (typeof line !== "object" || line === null || !("event" in line) || line.event !== name) return undefined;
  const r = LINE_SCHEMAS[name].safeParse(line);
  return r.success ? r.data : undefined;
}

type Level = "debug" | "info" | "warn" | "error";

/** Subscribes the log to every event; returns the function that unsubscribes it. */
export function logEvents(events: CoordinatorEvents, log: Logger): () => void {
  /** One line for event `name`: its fields typed by its schema, and the event's name. */
  const on = <K extends CoordinatorEventName>(name: K, level: Level, msg: string, fields: (e: CoordinatorEventMap[K]) => EventLine<K>) =>
    events.on(name, (e) => {
      const line: Record<string, unknown> = { event: name, ...fields(e) };
      log[level](line, msg);
    });
  const offs = [
    on("coordinatorListening", "info", "coordinator listening", (e) => ({ url: e.url, dataDir: e.dataDir, protocol: e.protocol, resumedJobs: e.resumedJobs, tls: e.tls, tokens: e.tokens })),
    on("coordinatorStopped", "info", "coordinator stopped", (e) => ({ forced: e.forced, ms: e.ms })),
    on("workerJoined", "info", "worker joined", (e) => ({ worker: e.name, workerId: e.workerId, platform: e.platform, cpus: e.cpus, threads: e.threads, slots: e.slots, remote: e.remote })),
    on("workerLeft", "info", "worker left", (e) => ({ worker: e.name, workerId: e.workerId, code: e.code, requeued: e.requeued })),
    on("workerQuarantined", "warn", "worker quarantined", (e) => ({ worker: e.name, workerId: e.workerId, trust: e.trust, reason: e.reason })),
    on("jobStarted", "debug", "job started", (e) => ({ jobId: e.jobId })),
    on("jobDone", "info", "job done", (e) => ({ jobId: e.jobId, rows: e.rows, shards: e.shards, seconds: e.seconds, samplesPerSec: e.samplesPerSec, virtual: e.virtual })),
    on("jobFailed", "error", "job failed", (e) => ({ jobId: e.jobId, code: e.code, err: e.message })),
    on("jobCancelled", "info", "job cancelled", (e) => ({ jobId: e.jobId })),
  ];
  if (log.isLevelEnabled("debug")) {
    offs.push(
      on("shardDispatched", "debug", "shard sent", (e) => ({ jobId: e.jobId, shardId: e.shardId, workerId: e.workerId, start: e.start, end: e.end, duplicate: e.duplicate })),
      on("shardResent", "debug", "shard resent", (e) => ({ jobId: e.jobId, shardId: e.shardId, workerId: e.workerId, afterMs: e.afterMs })),
      on("shardDone", "debug", "shard done", (e) => ({ jobId: e.jobId, shardId: e.shardId, workerId: e.workerId, rows: e.rows, ms: e.ms })),
      on("shardRetried", "debug", "shard to be retried", (e) => ({ jobId: e.jobId, shard: e.shard, workerId: e.workerId, code: e.code, attempts: e.attempts })),
    );
  }
  return () => {
    for (const off of offs) off();
  };
}
