/**
 * The coordinator's log of what happens: one structured line per event (observe/events.ts),
 * the event's payload with `event: <name>` beside it, so that whoever reads a spawned
 * coordinator's log (harness/procs.ts) waits on the event by name and parses it back with
 * the event's own schema instead of matching message text. Two fields are renamed on the way,
 * since pino gives them meanings of their own: a worker's `name` is logged as `worker` (pino's
 * `name` is the logger's) and a `message` as `err`. Per-shard events are debug lines,
 * subscribed only when debug is on, so that with tiny shards (tens of thousands a second) no
 * line is built that nobody writes.
 */
import type { Logger } from "pino";
import { EVENT_SCHEMAS, type CoordinatorEventMap, type CoordinatorEventName, type CoordinatorEvents } from "./events.js";

type Level = "debug" | "info" | "warn" | "error";

/** Each event's level and message; the fields are the payload's. */
const LINES: { [K in CoordinatorEventName]: { level: Level; msg: string } } = {
  coordinatorListening: { level: "info", msg: "coordinator listening" },
  coordinatorStopped: { level: "info", msg: "coordinator stopped" },
  workerJoined: { level: "info", msg: "worker joined" },
  workerLeft: { level: "info", msg: "worker left" },
  workerQuarantined: { level: "warn", msg: "worker quarantined" },
  jobStarted: { level: "debug", msg: "job started" },
  jobDone: { level: "info", msg: "job done" },
  jobFailed: { level: "error", msg: "job failed" },
  jobCancelled: { level: "info", msg: "job cancelled" },
  shardDispatched: { level: "debug", msg: "shard sent" },
  shardResent: { level: "debug", msg: "shard resent" },
  shardDone: { level: "debug", msg: "shard done" },
  shardRetried: { level: "debug", msg: "shard to be retried" },
};

/** Per-shard events: subscribed only when debug lines are written. */
const PER_SHARD = new Set<CoordinatorEventName>(["shardDispatched", "shardResent", "shardDone", "shardRetried"]);

/** The log line of an event: its payload, renamed where pino's own fields would clash. */
function lineOf(name: CoordinatorEventName, payload: object): Record<string, unknown> {
  const line: Record<string, unknown> = { event: name };
  for (const [k, v] of Object.entries(payload)) line[k === "name" ? "worker" : k === "message" ? "err" : k] = v;
  return line;
}

/** Parses one log line (JSON, from unknown) as event `name`, back into its payload; undefined when it is another line. */
export function parseEventLine<K extends CoordinatorEventName>(line: unknown, name: K): CoordinatorEventMap[K] | undefined {
  if (typeof line !== "object" || line === null || !("event" in line) || line.event !== name) return undefined;
  const fields: Record<string, unknown> = { ...line };
  // pino's `name` (the logger's) gives way to the worker's; `err` was the payload's message.
  if ("worker" in fields) fields.name = fields.worker;
  if ("err" in fields) fields.message = fields.err;
  const r = EVENT_SCHEMAS[name].safeParse(fields);
  return r.success ? (r.data as CoordinatorEventMap[K]) : undefined;
}

/** Subscribes the log to every event; returns the function that unsubscribes it. */
export function logEvents(events: CoordinatorEvents, log: Logger): () => void {
  const debug = log.isLevelEnabled("debug");
  const offs: Array<() => void> = [];
  for (const name of Object.keys(LINES) as CoordinatorEventName[]) {
    if (PER_SHARD.has(name) && !debug) continue;
    const { level, msg } = LINES[name];
    offs.push(events.on(name, (e) => log[level](lineOf(name, e), msg)));
  }
  return () => {
    for (const off of offs) off();
  };
}
