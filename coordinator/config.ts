/** Coordinator options: friendly input validated once into one normalized object. */
import os from "node:os";
import path from "node:path";
import { z } from "zod";
import { parseConfig } from "../shared/config.js";

export const CoordinatorConfigSchema = z.object({
  port: z.coerce.number().int().min(0).max(65535).default(7070),
  host: z.string().min(1).default("127.0.0.1"),
  dataDir: z.string().min(1).default(path.join(os.homedir(), ".edgepool", "coordinator")),
  /** Shards sent ahead of the ones running, per worker, so transfer hides behind compute. */
  prefetch: z.coerce.number().int().min(0).max(16).default(1),
  /** How often the throughput summary is logged while work runs. */
  statsIntervalMs: z.coerce.number().int().positive().default(5000),
  /** A connection that has not said hello by then is closed. */
  helloTimeoutMs: z.coerce.number().int().positive().default(10_000),
  /** Target duration of one shard on the worker that gets it; shard sizes follow from it. */
  targetShardMs: z.coerce.number().int().positive().default(500),
  /** Deadline for a shard on a worker not yet measured on its model. */
  probeTimeoutMs: z.coerce.number().int().positive().default(60_000),
  /** Slack added to every deadline predicted from a measured rate. */
  minShardTimeoutMs: z.coerce.number().int().positive().default(5_000),
  /** A worker silent this long (no message, no pong) is declared dead. */
  heartbeatTimeoutMs: z.coerce.number().int().min(500).default(10_000),
  /** Attempts per shard before its job fails. */
  maxShardAttempts: z.coerce.number().int().min(1).max(100).default(3),
  logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  logFormat: z.enum(["json", "pretty"]).default("json"),
});

export type CoordinatorConfig = z.infer<typeof CoordinatorConfigSchema>;
export type CoordinatorOptions = z.input<typeof CoordinatorConfigSchema>;

/** Validates coordinator options; a bad value becomes an E_CONFIG error naming the flag. */
export function parseCoordinatorConfig(input: unknown): CoordinatorConfig {
  const config = parseConfig(CoordinatorConfigSchema, input);
  return { ...config, dataDir: path.resolve(config.dataDir) };
}
