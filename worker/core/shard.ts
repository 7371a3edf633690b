/**
 * A shard this worker holds, from the frame that brought it to its one answer.
 *
 * Phase: `queued` (waiting for a free slot) → `running` (handed to the executor) →
 * `answered` (its result or shard_error was sent, or it was discarded). A queued shard can
 * also go straight to `answered`: withdrawn by `cancel`, handed back by `draining`, or
 * dropped with its connection. A running shard cannot be interrupted (ONNX Runtime cannot
 * stop mid-run), so `cancel` only sets `cancelled`, and its answer is discarded when it comes.
 */
import type { NamedTensor } from "../../shared/protocol/frame.js";
import type { ShardHeader } from "../../shared/protocol/messages.js";

export type ShardPhase = "queued" | "running" | "answered";

export interface HeldShard {
  readonly header: ShardHeader;
  /** Model inputs: views on `frame`. Emptied once the shard is answered, to free the frame. */
  tensors: NamedTensor[];
  /** The shard frame as it arrived (a browser hands it to its engine whole). Emptied once answered. */
  frame: Uint8Array;
  /** header.end - header.start. */
  readonly rows: number;
  /** The connection it arrived on: an answer computed after that connection dropped is discarded. */
  readonly epoch: number;
  /** Where its model is downloaded from (`GET {modelBase}/{sha256}`), as that connection's welcome said. */
  readonly modelBase: string;
  /** Withdrawn by `cancel` while running: its answer is discarded. */
  cancelled: boolean;
  phase: ShardPhase;
}

const NO_TENSORS: NamedTensor[] = [];
const NO_BYTES = new Uint8Array(0);

/** Why a shard's answer must not be sent on connection `epoch`, or null when it should be. */
export function staleReason(shard: HeldShard, epoch: number): "cancelled" | "connection lost" | null {
  if (shard.cancelled) return "cancelled";
  if (shard.epoch !== epoch) return "connection lost";
  return null;
}

/** Marks a shard answered and lets go of its input frame. */
export function markAnswered(shard: HeldShard): void {
  shard.phase = "answered";
  shard.tensors = NO_TENSORS;
  shard.frame = NO_BYTES;
}

/** Index of shard `shardId` in a queue of anything that carries a shard header; -1 when absent. */
export function indexOfShard(queue: readonly { readonly header: { readonly shardId: string } }[], shardId: string): number {
  for (let i = 0; i < queue.length; i++) if (queue[i]!.header.shardId === shardId) return i;
  return -1;
}

/** Removes shard `shardId` from `queue` and returns it; undefined when it is not there. */
export function removeQueued<T extends { readonly header: { readonly shardId: string } }>(queue: T[], shardId: string): T | undefined {
  const i = indexOfShard(queue, shardId);
  return i < 0 ? undefined : queue.splice(i, 1)[0];
}
