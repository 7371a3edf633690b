/**
 * The daemon's compute: `slots` runs at once on onnxruntime-node, behind the session's
 * Executor interface (core/executor.ts). A run loads its model (model cache, then runner),
 * computes one shard or several small ones together, and answers each through the session.
 *
 * Batching: queued shards that are small, of the same loaded model with a free batch dim,
 * from the same connection and with inputs of the same names, dtypes and row shapes run in
 * one ONNX Runtime call (computeShards). If that call fails, each runs alone, so that one
 * bad shard gets its own error and the others their results.
 *
 * CPU cap: with `maxCpu` below 100, a slot that computed for c ms rests
 * c * (100 / maxCpu - 1) ms after sending the result and before it takes another shard, so
 * each slot is busy at most `maxCpu` percent of the time. The rest is announced in the
 * result's `throttleMs`. A resting slot counts as taken; `stopResting()` (draining) ends the
 * rests.
 */
import type { Logger } from "pino";
import { toEdgepoolError } from "../shared/errors.js";
import { FramePool } from "../shared/protocol/frame.js";
import type { Executor, ShardAnswers } from "./core/executor.js";
import type { HeldShard } from "./core/shard.js";
import { maybeCorrupt, type FaultInject } from "./fault-inject.js";
import type { ModelCache } from "./model-cache.js";
import type { Runner } from "./runner.js";
import { computeShard, computeShards, type ShardResult } from "./shard-exec.js";
import type { WorkerStats } from "./stats.js";

/** Shards whose inputs are at most this large may run together with their neighbours... */
const MERGE_MAX_BYTES = 64 * 1024;
/** ...up to this many rows in one call. */
const MERGE_MAX_ROWS = 1024;

export interface ShardDone {
  shardId: string;
  jobId: string;
  model: string;
  rows: number;
  computeMs: number;
  /** Rest the slot takes after this shard to keep under the CPU cap. */
  throttleMs: number;
}

export interface NodeExecutorOptions {
  slots: number;
  maxCpu: number;
  faultInject: FaultInject | undefined;
  log: Logger;
  runner: Runner;
  cache: ModelCache;
  stats: WorkerStats;
  /** A result went out. */
  done(done: ShardDone): void;
}

function inputBytes(t: HeldShard): number {
  let n = 0;
  for (const x of t.tensors) n += x.data.byteLength;
  return n;
}

function sameInputs(a: HeldShard, b: HeldShard): boolean {
  if (a.tensors.length !== b.tensors.length) return false;
  return a.tensors.every((x, i) => {
    const y = b.tensors[i]!;
    return x.name === y.name && x.dtype === y.dtype && x.dims.length === y.dims.length && x.dims.every((d, k) => k === 0 || d === y.dims[k]);
  });
}

export class NodeExecutor implements Executor {
  /** Slots computing now (each runs one shard, or several small ones together). */
  private runs = 0;
  /** Timers of slots resting after a shard to keep under the CPU cap; each frees its slot. */
  private readonly resting = new Set<NodeJS.Timeout>();
  private restsStopped = false;
  /** Result frame buffers for reuse: large results would otherwise allocate a frame each. */
  private readonly frames = new FramePool(32 * 2 ** 20);

  constructor(private readonly opts: NodeExecutorOptions) {}

  /** Slots resting now. */
  get restingSlots(): number {
    return this.resting.size;
  }

  canRun(): boolean {
    return this.runs + this.resting.size < this.opts.slots;
  }

  companions(first: HeldShard, queued: readonly HeldShard[]): number {
    const info = this.opts.runner.info(first.header.model);
    if (!info || info.fixedBatch || inputBytes(first) > MERGE_MAX_BYTES) return 0;
    let n = 0;
    let rows = first.rows;
    for (let next = queued[0]; next; next = queued[n]) {
      if (next.header.model !== first.header.model || next.epoch !== first.epoch || next.cancelled) break;
      if (inputBytes(next) > MERGE_MAX_BYTES || rows + next.rows > MERGE_MAX_ROWS || !sameInputs(first, next)) break;
      n += 1;
      rows += next.rows;
    }
    return n;
  }

  run(batch: readonly HeldShard[], answers: ShardAnswers): void {
    this.runs += 1;
    this.execute(batch, answers).catch((err: unknown) => {
      // execute() answers its own failures; reaching here is a bug, and must not become an
      // unhandled rejection that takes the process down.
      this.opts.log.error({ shardId: batch[0]?.header.shardId, err: toEdgepoolError(err).message }, "internal error running a shard");
    });
  }

  /** Ends every rest and starts no new ones (the worker is draining). */
  stopResting(): void {
    this.restsStopped = true;
    for (const timer of this.resting) clearTimeout(timer);
    this.resting.clear();
  }

  /** Runs one slot's shards (one, or several small ones together) and answers each. */
  private async execute(batch: readonly HeldShard[], answers: ShardAnswers): Promise<void> {
    const first = batch[0]!;
    let restMs = 0;
    try {
      await this.opts.runner.load(first.header.model, () => this.opts.cache.get(first.header.model, first.modelBase));
      // Cancelled or orphaned while the model loaded: not worth computing.
      const live = batch.filter((t) => !answers.dropIfStale(t));
      if (live.length === 1) restMs = await this.compute(live[0]!, answers);
      else if (live.length > 1) restMs = await this.computeTogether(live, answers);
    } catch (err) {
      // Shards answered already are skipped by the session.
      for (const t of batch) answers.error(t, err);
    } finally {
      this.runs -= 1;
      this.rest(restMs, answers);
    }
  }

  /** Runs a loaded shard and sends its result; resolves the rest its slot takes afterwards. */
  private async compute(task: HeldShard, answers: ShardAnswers): Promise<number> {
    const result = await computeShard(this.opts.runner, task.header, task.tensors, this.opts.maxCpu, this.frames.take);
    return this.deliver(task, result, answers);
  }

  /**
   * Runs small shards in one call and sends each its result. If that call fails, each shard
   * runs alone, so that one bad shard gets its own error and the others their results.
   */
  private async computeTogether(tasks: HeldShard[], answers: ShardAnswers): Promise<number> {
    let results;
    try {
      results = await computeShards(this.opts.runner, tasks.map((t) => t.header), tasks.map((t) => t.tensors), this.opts.maxCpu, this.frames.take);
    } catch {
      let rest = 0;
      for (const t of tasks) {
        if (answers.dropIfStale(t)) continue;
        try {
          rest += await this.compute(t, answers);
        } catch (err) {
          answers.error(t, err);
        }
      }
      return rest;
    }
    let rest = 0;
    tasks.forEach((t, k) => (rest += this.deliver(t, results[k]!, answers)));
    return rest;
  }

  /** Sends a computed shard's result (unless no longer wanted); returns the rest owed for it. */
  private deliver(task: HeldShard, result: ShardResult, answers: ShardAnswers): number {
    const { header, rows } = task;
    const { frame, computeMs, throttleMs } = result;
    const { log } = this.opts;
    if (maybeCorrupt(frame, this.opts.faultInject)) log.warn({ shardId: header.shardId }, "fault injection: result corrupted on purpose");
    // Once written out, a large result's buffer serves a later one (FramePool).
    const release = frame.byteLength >= this.frames.minBytes ? () => this.frames.give(frame) : undefined;
    // The CPU time is spent whether or not the result is still wanted, so the rest is owed
    // either way.
    if (!answers.result(task, frame, release)) {
      release?.();
      return throttleMs;
    }
    this.opts.stats.recordDone(rows, computeMs, throttleMs);
    // Built only when written: with tiny shards this runs tens of thousands of times a second.
    if (log.isLevelEnabled("debug")) log.debug({ shardId: header.shardId, jobId: header.jobId, rows, computeMs, throttleMs, bytes: frame.byteLength }, "shard done");
    this.opts.done({ shardId: header.shardId, jobId: header.jobId, model: header.model, rows, computeMs, throttleMs });
    return throttleMs;
  }

  /** Keeps a freed slot idle for `ms` (the CPU cap) before it takes the next shard. */
  private rest(ms: number, answers: ShardAnswers): void {
    if (ms <= 0 || this.restsStopped) {
      answers.pump();
      return;
    }
    const timer = setTimeout(() => {
      this.resting.delete(timer);
      answers.pump();
    }, ms);
    // The connection keeps the process alive while it matters; a rest alone must not.
    timer.unref();
    this.resting.add(timer);
  }
}
