/**
 * What a coordinator knows about the work it has done, as `GET /api/report-data` returns it:
 * the measured half of the report. Real and virtual workers are kept apart by their
 * `virtual` flag; figures about real devices never include virtual ones.
 */
import { z } from "zod";

export const ModelStatsSchema = z.object({
  model: z.string(),
  shards: z.number().int().nonnegative(),
  samples: z.number().int().nonnegative(),
  /** Milliseconds of inference on the worker. */
  computeMs: z.number().nonnegative(),
  /** Milliseconds the worker idled to respect its CPU cap. */
  throttleMs: z.number().nonnegative(),
});
export type ModelStats = z.infer<typeof ModelStatsSchema>;

export const ReportWorkerSchema = z.object({
  id: z.string(),
  name: z.string(),
  platform: z.string(),
  arch: z.string(),
  cpus: z.number(),
  threads: z.number(),
  slots: z.number(),
  maxCpu: z.number(),
  virtual: z.boolean(),
  /** Virtual workers: the device tier they simulate. */
  profile: z.string().nullable(),
  runtime: z.object({ name: z.string(), version: z.string() }),
  connected: z.boolean(),
  perModel: z.array(ModelStatsSchema),
});
export type ReportWorker = z.infer<typeof ReportWorkerSchema>;

export const ReportJobSchema = z.object({
  id: z.string(),
  model: z.string(),
  state: z.string(),
  rows: z.number(),
  samplesDone: z.number(),
  startedAt: z.number().nullable(),
  finishedAt: z.number().nullable(),
  /** rows / (finishedAt - startedAt): the figure the coordinator logs as "job done". */
  samplesPerSec: z.number(),
  /** True when any shard of the job ran on a virtual worker. */
  virtual: z.boolean(),
});

export const ReportDataSchema = z.object({
  generatedAt: z.number(),
  coordinator: z.object({
    url: z.string(),
    version: z.string(),
    host: z.object({ cpus: z.number(), platform: z.string(), arch: z.string(), cpuModel: z.string() }),
    uptimeSec: z.number(),
    rssBytes: z.number(),
    connectedWorkers: z.number(),
    peakConnectedWorkers: z.number(),
    /** Highest shards/s over any 1 s window, real and virtual workers together. */
    peakShardsPerSec: z.number(),
  }),
  models: z.array(z.object({ sha256: z.string(), flopsPerSample: z.number(), name: z.string().nullable() })),
  workers: z.array(ReportWorkerSchema),
  jobs: z.array(ReportJobSchema),
});
export type ReportData = z.infer<typeof ReportDataSchema>;
