/**
 * Cuts a job's rows [0, N) into shards [start, end). Without an explicit size, a shard is
 * about N/64 rows (enough shards to spread over a pool and to balance at the tail), capped so
 * one shard's input stays under MAX_SHARD_BYTES (coordinator memory is bounded by the shards
 * in flight, not by the job).
 */
import { EdgepoolError } from "../shared/errors.js";

export const MAX_SHARD_BYTES = 16 * 1024 * 1024;
const TARGET_SHARDS = 64;

export type ShardRange = [start: number, end: number];

/** Default rows per shard for a job of `rows` rows whose inputs take `bytesPerRow` per row. */
export function defaultShardSize(rows: number, bytesPerRow: number): number {
  const byCount = Math.ceil(rows / TARGET_SHARDS);
  const byBytes = Math.max(1, Math.floor(MAX_SHARD_BYTES / Math.max(1, bytesPerRow)));
  return Math.max(1, Math.min(byCount, byBytes));
}

/** Contiguous, non-overlapping ranges covering [0, rows) in order. */
export function planShards(rows: number, shardSize: number): ShardRange[] {
  if (!Number.isInteger(rows) || rows < 1) throw new EdgepoolError("E_BAD_REQUEST", `a job needs at least one row, got ${rows}`);
  if (!Number.isInteger(shardSize) || shardSize < 1) {
    throw new EdgepoolError("E_BAD_REQUEST", `shard size must be a positive integer, got ${shardSize}`);
  }
  const out: ShardRange[] = [];
  for (let s = 0; s < rows; s += shardSize) out.push([s, Math.min(rows, s + shardSize)]);
  return out;
}
