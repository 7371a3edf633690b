/**
 * The shards a worker holds: a FIFO queue of shards waiting for a slot, and the running ones
 * by id. It knows nothing of connections or messages (session.ts does); it keeps the rules
 * that involve only the shards themselves: a shard id is held at most once, the queue has a
 * cap, a cancel takes a queued shard out or marks a running one, and a shard leaves for good
 * once answered.
 */
import type { NamedTensor } from "../../shared/protocol/frame.js";
import type { ShardHeader } from "../../shared/protocol/messages.js";
import type { Executor } from "./executor.js";
import { markAnswered, removeQueued, type HeldShard } from "./shard.js";

/** Shards held beyond the running ones; the coordinator's credit keeps far below this. */
export const MAX_QUEUED = 256;

export class ShardInbox {
  private readonly queue: HeldShard[] = [];
  private readonly runningById = new Map<string, HeldShard>();

  constructor(readonly maxQueued = MAX_QUEUED) {}

  /** Shards waiting for a slot. */
  get queued(): number {
    return this.queue.length;
  }

  /** Shards handed to the executor and not yet answered. */
  get running(): number {
    return this.runningById.size;
  }

  /** True when no more shards may be queued. */
  get full(): boolean {
    return this.queue.length >= this.maxQueued;
  }

  /** True when shard `shardId` is queued or running here. */
  holds(shardId: string): boolean {
    if (this.runningById.has(shardId)) return true;
    for (const s of this.queue) if (s.header.shardId === shardId) return true;
    return false;
  }

  /** Queues a shard (the caller checked `holds` and `full`). */
  add(header: ShardHeader, tensors: NamedTensor[], frame: Uint8Array, epoch: number, modelBase: string): HeldShard {
    const shard: HeldShard = { header, tensors, frame, rows: header.end - header.start, epoch, modelBase, cancelled: false, phase: "queued" };
    this.queue.push(shard);
    return shard;
  }

  /**
   * Applies a `cancel`: a queued shard is taken out and answered (returned with phase
   * `answered`); a running one is marked `cancelled` (returned with phase `running`).
   * Undefined when this worker does not hold the shard.
   */
  cancel(shardId: string): HeldShard | undefined {
    const queued = removeQueued(this.queue, shardId);
    if (queued) {
      markAnswered(queued);
      return queued;
    }
    const running = this.runningById.get(shardId);
    if (running) running.cancelled = true;
    return running;
  }

  /**
   * The next shards to run: the queue's head and the `batcher.companions(head, rest)` shards
   * after it, now `running`; undefined when nothing is queued.
   */
  take(batcher: Pick<Executor, "companions">): HeldShard[] | undefined {
    const first = this.queue.shift();
    if (!first) return undefined;
    const n = batcher.companions ? Math.min(batcher.companions(first, this.queue), this.queue.length) : 0;
    const batch = n > 0 ? [first, ...this.queue.splice(0, n)] : [first];
    for (const s of batch) {
      s.phase = "running";
      this.runningById.set(s.header.shardId, s);
    }
    return batch;
  }

  /** Marks a shard answered and forgets it; false when it had been answered already. */
  settle(shard: HeldShard): boolean {
    if (shard.phase === "answered") return false;
    if (shard.phase === "running") this.runningById.delete(shard.header.shardId);
    else removeQueued(this.queue, shard.header.shardId);
    markAnswered(shard);
    return true;
  }

  /** Takes every queued shard out, answered (handed back or dropped); running ones stay. */
  releaseQueued(): HeldShard[] {
    const released = this.queue.splice(0);
    for (const s of released) markAnswered(s);
    return released;
  }
}
