/**
 * Shard frames: a dispatch's input rows are read straight into its frame and the frame is
 * handed to its worker's connection. Reads run a bounded number at a time, and frame buffers
 * come from a pool; a dispatch withdrawn while it waits to be read, or while it is read, is
 * never sent, and neither is one whose worker began draining meanwhile (it would never run it).
 */
import { FramePool } from "../../shared/protocol/frame.js";
import { Limiter } from "../../shared/limiter.js";
import type { Dispatch } from "./dispatch.js";

/** What happened to a dispatch's frame, for the scheduler to act on. */
export interface FrameOutcomes {
  /** The frame of `bytes` bytes went out on its worker's connection. */
  sent(d: Dispatch, bytes: number): void;
  /** Its input rows could not be read. */
  unreadable(d: Dispatch, err: unknown): void;
  /** Its worker began draining before the frame left: it must go back. */
  unsent(d: Dispatch): void;
}

/**
 * Frames being read from disk at once. A large idle pool would otherwise take a whole job in
 * one burst: every frame in memory together, and the event loop starved for seconds.
 */
const MAX_CONCURRENT_READS = 64;
/** Bytes of large frame buffers kept for reuse. */
const POOL_BYTES = 64 * 2 ** 20;
const NOT_READ = Promise.resolve(null);

export class ShardFrames {
  private readonly reading = new Limiter(MAX_CONCURRENT_READS);
  /** Shard frame buffers: large ones reused, small ones cut from slabs. */
  private readonly pool = new FramePool(POOL_BYTES);

  constructor(private readonly outcomes: FrameOutcomes) {}

  /** Reads `d`'s frame in its turn and sends it, unless `d` is withdrawn by then. */
  send(d: Dispatch): void {
    this.reading
      .run(() => (d.live ? d.job.buildShardFrame(d.task, d.shardId, this.pool.take) : NOT_READ))
      .then((frame) => this.write(d, frame))
      .catch((err: unknown) => {
        if (d.live) this.outcomes.unreadable(d, err);
      });
  }

  private write(d: Dispatch, frame: Uint8Array | null): void {
    if (!frame || !d.live) return;
    const w = d.worker;
    if (w.state === "draining") {
      this.outcomes.unsent(d);
      return;
    }
    // Once written out, a large frame's buffer serves a later shard.
    if (!w.send(frame, frame.byteLength >= this.pool.minBytes ? () => this.pool.give(frame) : undefined)) return; // the connection went; the scheduler hands the shard back when it hears
    d.sentAt = Date.now();
    w.noteFrameBytes(frame.byteLength);
    this.outcomes.sent(d, frame.byteLength);
  }
}
