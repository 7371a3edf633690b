/**
 * The coordinator's log of what happens: one structured line per event (observe/events.ts).
 * Per-shard events are debug lines, subscribed only when debug is on, so that with tiny
 * shards (tens of thousands a second) no payload is built for a line nobody writes.
 */
import type { Logger } from "pino";
import type { CoordinatorEvents } from "./events.js";

/** Subscribes the log to every event; returns the function that unsubscribes it. */
export function logEvents(events: CoordinatorEvents, log: Logger): () => void {
  const offs = [
    events.on("workerJoined", (e) => log.info({ worker: e.name, workerId: e.workerId, platform: e.platform, cpus: e.cpus, threads: e.threads, slots: e.slots, remote: e.remote }, "worker joined")),
    events.on("workerLeft", (e) => log.info({ worker: e.name, workerId: e.workerId, code: e.code, requeued: e.requeued }, "worker left")),
    events.on("workerQuarantined", (e) => log.warn({ worker: e.name, workerId: e.workerId, trust: e.trust, reason: e.reason }, "worker quarantined")),
    events.on("jobStarted", (e) => log.debug({ jobId: e.jobId }, "job started")),
    events.on("jobDone", (e) => log.info({ jobId: e.jobId, rows: e.rows, shards: e.shards, seconds: e.seconds, samplesPerSec: e.samplesPerSec, virtual: e.virtual }, "job done")),
    events.on("jobFailed", (e) => log.error({ jobId: e.jobId, code: e.code, err: e.message }, "job failed")),
    events.on("jobCancelled", (e) => log.info({ jobId: e.jobId }, "job cancelled")),
  ];
  if (log.isLevelEnabled("debug")) {
    offs.push(
      events.on("shardDispatched", (e) => log.debug({ jobId: e.jobId, shardId: e.shardId, workerId: e.workerId, start: e.start, end: e.end, duplicate: e.duplicate }, "shard sent")),
      events.on("shardDone", (e) => log.debug({ jobId: e.jobId, shardId: e.shardId, workerId: e.workerId, rows: e.rows, ms: e.ms }, "shard done")),
      events.on("shardRetried", (e) => log.debug({ jobId: e.jobId, shard: e.shard, workerId: e.workerId, code: e.code, attempts: e.attempts }, "shard to be retried")),
    );
  }
  return () => {
    for (const off of offs) off();
  };
}
