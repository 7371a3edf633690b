/**
 * The seam between the protocol session and whatever computes: onnxruntime-node slots in the
 * daemon, a Web Worker engine in the browser, a fake in a unit test. The session decides
 * which shards run and when (one at a time or several together, as the executor allows);
 * the executor computes them and answers each exactly once through `ShardAnswers`, which
 * sends the answer, or drops it when no longer wanted (cancelled, or its connection gone).
 */
import type { HeldShard } from "./shard.js";

/** What an executor may do with the shards it was given. Each call answers one shard once; later calls for it do nothing. */
export interface ShardAnswers {
  /**
   * Drops the shard if its answer is no longer wanted (cancelled, or its connection is gone)
   * and returns true; false when it should still be computed.
   */
  dropIfStale(shard: HeldShard): boolean;
  /**
   * Sends the shard's `result` frame; false when it was not sent (no longer wanted, or no
   * connection), in which case the frame was not handed to the transport and `written` will
   * never be called: its buffer is the caller's again.
   */
  result(shard: HeldShard, frame: Uint8Array, written?: (err?: Error) => void): boolean;
  /** Sends the shard's `shard_error`; false when its answer is no longer wanted and it was dropped. */
  error(shard: HeldShard, err: unknown): boolean;
  /** Called when the executor can take more work (a slot freed): starts queued shards. */
  pump(): void;
}

export interface Executor {
  /** True when a run can start now (a slot is free and not resting). */
  canRun(): boolean;
  /**
   * How many shards from the head of `queued` may run in one call together with `first`
   * (small shards merged into one batch); 0, or absent, to run `first` alone.
   */
  companions?(first: HeldShard, queued: readonly HeldShard[]): number;
  /**
   * Starts computing `batch` (now `running`) and returns at once. Every shard in it must be
   * answered through `answers`, each exactly once, however the computation ends.
   */
  run(batch: readonly HeldShard[], answers: ShardAnswers): void;
}
