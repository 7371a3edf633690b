/**
 * A connected worker as the API shows it (GET /api/status, the dashboard): one schema, which
 * the coordinator's builder is typed by and the client parses with. The builder reads the
 * session's public fields; the fields defaulted here were added after the first release.
 */
import { z } from "zod";
import type { WorkerSession } from "../workers/session.js";

export const WorkerViewSchema = z.object({
  /** The worker's persistent id (the same across reconnects), or the connection's before hello. */
  id: z.string(),
  name: z.string(),
  state: z.enum(["handshake", "ready", "draining", "closed"]),
  busy: z.boolean(),
  platform: z.string(),
  arch: z.string(),
  cpus: z.number(),
  memoryBytes: z.number(),
  runtime: z.object({ name: z.string(), version: z.string() }),
  /** The inference backend the worker reported (cpu, wasm, webgpu), when it did. */
  backend: z.string().nullable().default(null),
  /** A browser worker's user agent. */
  userAgent: z.string().nullable().default(null),
  threads: z.number(),
  slots: z.number(),
  virtual: z.boolean(),
  /** The peer's address and port as the coordinator sees it. */
  remote: z.string(),
  inflight: z.number(),
  shardsDone: z.number(),
  samplesDone: z.number(),
  shardErrors: z.number(),
  lastShardRows: z.number(),
  meanShardRows: z.number(),
  maxCpu: z.number(),
  computeMs: z.number(),
  samplesPerSec: z.number(),
  connectedAt: z.number(),
  lastSeen: z.number(),
  trust: z.number().default(0.5),
  agreements: z.number().default(0),
  disagreements: z.number().default(0),
  quarantined: z.boolean().default(false),
});
export type WorkerView = z.infer<typeof WorkerViewSchema>;

/** The public view of a worker session. */
export function workerView(w: WorkerSession): WorkerView {
  const h = w.hello;
  return {
    id: w.id,
    name: w.name,
    state: w.state,
    busy: w.inflight > 0,
    platform: h?.platform ?? "unknown",
    arch: h?.arch ?? "unknown",
    cpus: h?.cpus ?? 0,
    memoryBytes: h?.memoryBytes ?? 0,
    runtime: h ? { name: h.runtime.name, version: h.runtime.version } : { name: "unknown", version: "unknown" },
    backend: h?.backend ?? null,
    userAgent: h?.userAgent ?? null,
    threads: h?.threads ?? 0,
    slots: h?.slots ?? 0,
    virtual: w.virtual,
    remote: w.remote,
    inflight: w.inflight,
    shardsDone: w.shardsDone,
    samplesDone: w.samplesDone,
    shardErrors: w.shardErrors,
    lastShardRows: w.lastShardRows,
    meanShardRows: w.meanShardRows,
    maxCpu: h?.maxCpu ?? 100,
    computeMs: Math.round(w.computeMs),
    samplesPerSec: w.samplesPerSec,
    connectedAt: w.connectedAt,
    lastSeen: w.lastSeen,
    trust: w.trust,
    agreements: w.agreements,
    disagreements: w.disagreements,
    quarantined: w.quarantined,
  };
}
