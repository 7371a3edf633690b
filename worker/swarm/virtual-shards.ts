/**
 * What a swarm's virtual workers do with shards, for all of them at once: a shard is parsed
 * (its inputs are not kept), its model's spec fetched once for the swarm, and it is queued on
 * its worker (slots = 1: the head runs, as one timer) and answered with zero outputs after its
 * simulated service time, or with a shard_error when the outputs cannot be shaped. A cancel
 * drops a queued shard, the running one included: nothing is computing it.
 */
import type { Logger } from "pino";
import type { WebSocket } from "ws";
import { EdgepoolError, toEdgepoolError } from "../../shared/errors.js";
import { parseShardFrame, type ShardHeader } from "../../shared/protocol/messages.js";
import { heldShardError, shardErrorFor } from "../core/protocol.js";
import { indexOfShard } from "../core/shard.js";
import type { ModelSpecs } from "./model-specs.js";
import { serviceMs, simulatedResult, type PendingShard, type VirtualWorker } from "./virtual-worker.js";

export class VirtualShards {
  /** Shards queued or running over all workers. */
  pending = 0;
  shardsDone = 0;
  samplesDone = 0;
  shardErrors = 0;

  constructor(
    private readonly models: ModelSpecs,
    /** Sigma of the lognormal service-time factor. */
    private readonly jitter: number,
    private readonly log: Logger,
    private readonly random: () => number,
  ) {}

  /** A `shard` frame for worker `w` on `socket`: answered after its simulated service time. */
  receive(w: VirtualWorker, socket: WebSocket, bytes: Uint8Array): void {
    let header: ShardHeader;
    try {
      header = parseShardFrame(bytes).header;
    } catch (err) {
      this.log.warn({ worker: w.name, err: toEdgepoolError(err).message }, "malformed shard frame");
      return;
    }
    if (w.queue && indexOfShard(w.queue, header.shardId) >= 0) {
      this.log.warn({ worker: w.name, err: heldShardError(header.shardId).message }, "malformed shard frame");
      return;
    }
    const rows = header.end - header.start;
    this.models.get(header.model).then(
      (spec) => {
        if (w.socket !== socket || w.state !== "ready") return;
        if (spec.shapeError) {
          this.sendShardError(w, header, new EdgepoolError("E_SHAPE", spec.shapeError));
          return;
        }
        const ms = serviceMs(rows * spec.flopsPerSample, w.flopsPerSec, this.jitter, this.random);
        this.enqueue(w, { header, rows, serviceMs: ms, outputs: spec.outputs });
      },
      (err: unknown) => {
        if (w.socket !== socket || w.state !== "ready") return;
        this.sendShardError(w, header, toEdgepoolError(err, "E_UNAVAILABLE"));
      },
    );
  }

  private enqueue(w: VirtualWorker, shard: PendingShard): void {
    this.pending += 1;
    if (w.queue) {
      w.queue.push(shard);
      return;
    }
    w.queue = [shard];
    this.runHead(w);
  }

  private runHead(w: VirtualWorker): void {
    const head = w.queue?.[0];
    if (!head) {
      w.queue = null;
      return;
    }
    w.runTimer = setTimeout(() => {
      w.runTimer = null;
      w.queue?.shift();
      this.pending -= 1;
      this.finish(w, head);
      this.runHead(w);
    }, head.serviceMs);
  }

  private finish(w: VirtualWorker, shard: PendingShard): void {
    if (w.state !== "ready" || !w.socket) return;
    w.socket.send(simulatedResult(shard), { binary: true });
    this.shardsDone += 1;
    this.samplesDone += shard.rows;
  }

  /** A queued shard is dropped; the running one (the head) too, since nothing is computing it. */
  cancel(w: VirtualWorker, shardId: string): void {
    const q = w.queue;
    if (!q) return;
    const i = indexOfShard(q, shardId);
    if (i < 0) return;
    q.splice(i, 1);
    this.pending -= 1;
    if (i === 0) {
      if (w.runTimer) clearTimeout(w.runTimer);
      w.runTimer = null;
      this.runHead(w);
    }
  }

  /** Drops everything worker `w` holds (its connection is gone). */
  clear(w: VirtualWorker): void {
    if (w.runTimer) clearTimeout(w.runTimer);
    w.runTimer = null;
    if (w.queue) this.pending -= w.queue.length;
    w.queue = null;
  }

  private sendShardError(w: VirtualWorker, header: ShardHeader, e: EdgepoolError): void {
    this.shardErrors += 1;
    this.log.debug({ worker: w.name, shardId: header.shardId, code: e.code, err: e.message }, "virtual shard failed");
    w.socket?.send(shardErrorFor(header, e));
  }
}
