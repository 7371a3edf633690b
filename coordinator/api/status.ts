/**
 * The pool as the API shows it: GET /api/status (workers, jobs, throughput, counters) and
 * GET /api/health. One schema each, which the coordinator's builders (observe/status.ts) are
 * typed by and the client parses with.
 */
import { z } from "zod";
import { JobViewSchema } from "./jobs.js";
import { WorkerViewSchema } from "./workers.js";

export const HealthViewSchema = z.object({ ok: z.boolean(), version: z.string(), protocol: z.number() });
export type HealthView = z.infer<typeof HealthViewSchema>;

export const StatusViewSchema = z.object({
  version: z.string(),
  protocol: z.number(),
  url: z.string(),
  uptimeSec: z.number(),
  workers: z.array(WorkerViewSchema),
  jobs: z.array(JobViewSchema),
  /** Real workers only; rates over the last 10 s. */
  throughput: z.object({
    shardsPerSec: z.number(),
    samplesPerSec: z.number(),
    gflopsPerSec: z.number(),
    totalShards: z.number(),
    totalSamples: z.number(),
    totalGflop: z.number(),
  }),
  /** Work by virtual (simulated) workers, kept apart from the real figures. */
  virtualThroughput: z.object({ totalShards: z.number(), totalSamples: z.number(), peakShardsPerSec: z.number() }),
  counters: z.record(z.string(), z.number()),
  failover: z.object({
    resends: z.number(),
    lastResentAt: z.number().nullable(),
    resendLatencyMs: z.object({ median: z.number(), max: z.number() }),
  }),
  memory: z.object({ rssBytes: z.number(), hostname: z.string() }),
});
export type StatusView = z.infer<typeof StatusViewSchema>;
