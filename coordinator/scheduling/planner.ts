/**
 * How many rows the next shard for a worker gets. Shards are cut from a job's uncut rows as
 * workers ask for work, sized to the asking worker: its measured rate on this model times
 * the target shard duration, so fast workers get big shards and slow ones small ones, and
 * per-shard overhead stays a small part of each shard. A worker not yet measured on the
 * model gets a probe sized for a slow device (PROBE_FLOPS_PER_SEC). Near a job's end, shards
 * shrink so that the last rows spread over the pool instead of landing on one worker.
 */

import { rowBytes, type DType } from "../../shared/tensor/tensor.js";

/**
 * One shard's inputs and outputs stay under this, so coordinator memory is bounded by what is in flight.
 * Measured on the demo (cnn, 2 workers): 16 MiB shards ran at 8-9k samples/s, 4 MiB at
 * 15-19k, 1 MiB at 13-15k: big fresh buffers cost page faults and cache misses on workers.
 */
export const MAX_SHARD_BYTES = 4 * 1024 * 1024;
/** Rate assumed for a worker not yet measured: a slow phone's CPU. */
export const PROBE_FLOPS_PER_SEC = 1e9;

export interface ShardSizeInput {
  /** Rows per shard fixed by the client, or null to adapt. */
  fixed: number | null;
  /** The worker's effective samples/s on this model (compute plus CPU-cap idling), if measured. */
  rate: number | undefined;
  targetShardMs: number;
  flopsPerSample: number;
  /** Bytes one row moves (inputs and outputs). */
  bytesPerRow: number;
  /** Rows of the job not yet cut into shards. */
  remaining: number;
  /** Workers that can take shards now. */
  workers: number;
}

export function shardRows(p: ShardSizeInput): number {
  if (p.remaining <= 0) return 0;
  if (p.fixed !== null) return Math.min(p.fixed, p.remaining);
  const byBytes = Math.max(1, Math.floor(MAX_SHARD_BYTES / Math.max(1, p.bytesPerRow)));
  const perSec = p.rate ?? PROBE_FLOPS_PER_SEC / Math.max(1, p.flopsPerSample);
  const byTime = Math.max(1, Math.floor((perSec * p.targetShardMs) / 1000));
  const byTail = Math.max(1, Math.ceil(p.remaining / Math.max(1, p.workers)));
  return Math.max(1, Math.min(byTime, byBytes, byTail, p.remaining));
}

/** Exponentially weighted moving average of a worker's rate on one model. */
export function updateRate(previous: number | undefined, sample: number, alpha = 0.3): number {
  if (!Number.isFinite(sample) || sample <= 0) return previous ?? 0;
  return previous === undefined ? sample : previous + alpha * (sample - previous);
}

/**
 * Bytes one output row takes, over the outputs whose dims past the batch are all known (a
 * model's declared outputs; those with a symbolic dim are not counted). Jobs size shards with
 * it (Job.bytesPerRow) and the job service checks with it that shards fit a frame.
 */
export function knownOutputRowBytes(outputs: ReadonlyArray<{ dtype: DType; shape: ReadonlyArray<number | string> }>): number {
  let sum = 0;
  for (const o of outputs) {
    const dims = o.shape.slice(1);
    if (dims.every((d): d is number => typeof d === "number")) sum += rowBytes(o.dtype, [1, ...dims]);
  }
  return sum;
}
