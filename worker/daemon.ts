/**
 * The worker daemon: keeps a connection to the coordinator and runs the shards it sends.
 *
 * State: `idle` → start() → `connecting` (dialling, or waiting for `welcome` after our
 * `hello`) → `ready` (shards accepted) → back to `connecting` whenever the connection drops.
 * close() moves `connecting`/`ready` to `draining`: nothing new is started, queued shards are
 * handed back with one `draining` message (from `ready` only: before `welcome` nothing is
 * queued), shards already running finish and their results are sent (up to
 * `drainTimeoutMs`), then the socket closes and the state is `closed`, which is final. Any
 * other transition throws E_STATE.
 *
 * Shards: a `shard` frame is queued, and up to `slots` run at once; each is answered with one
 * `result` frame or one `shard_error`, never both and never neither while its connection
 * lives, except that shards named in `draining` get no answer at all. Queued shards are
 * dropped without a message when the connection drops: the coordinator re-queues whatever a
 * closed connection held. A result computed for a connection that has since dropped is
 * discarded for the same reason (its shard has been re-queued elsewhere). Nothing the
 * coordinator sends can crash the daemon: malformed input is logged, counted and ignored.
 *
 * CPU cap: with `maxCpu` below 100, a slot that computed for c ms rests
 * c * (100 / maxCpu - 1) ms after sending the result and before it takes another shard, so
 * each slot is busy at most `maxCpu` percent of the time. The rest is announced in the
 * result's `throttleMs`. A resting slot counts as taken; draining and close() end the rests.
 */
import { EventEmitter } from "node:events";
import path from "node:path";
import type { Logger } from "pino";
import { EdgepoolError, toEdgepoolError } from "../shared/errors.js";
import { FramePool, type NamedTensor } from "../shared/protocol/frame.js";
import {
  DrainingSchema,
  PROTOCOL_VERSION,
  checkProtocolVersion,
  parseCoordinatorText,
  parseShardFrame,
  type Cancel,
  type ErrorMessage,
  type ShardError,
  type ShardHeader,
  type Welcome,
} from "../shared/protocol/messages.js";
import type { WorkerConfig } from "./config.js";
import { Connection, type DisconnectInfo } from "./connection.js";
import { buildHello } from "./hello.js";
import { ModelCache, modelBaseUrl } from "./model-cache.js";
import { Runner } from "./runner.js";
import { maybeCorrupt } from "./fault-inject.js";
import { computeShard, computeShards, shardErrorMessage, type ShardResult } from "./shard-exec.js";
import { WorkerStats, type WorkerStatsSnapshot } from "./stats.js";

export type WorkerState = "idle" | "connecting" | "ready" | "draining" | "closed";

const TRANSITIONS: Record<WorkerState, readonly WorkerState[]> = {
  idle: ["connecting", "closed"],
  connecting: ["ready", "draining"],
  ready: ["connecting", "draining"],
  draining: ["closed"],
  closed: [],
};

/** Shards held beyond the running ones; the coordinator's credit keeps far below this. */
const MAX_QUEUED = 256;

export interface ShardDone {
  shardId: string;
  jobId: string;
  model: string;
  rows: number;
  computeMs: number;
  /** Rest the slot takes after this shard to keep under the CPU cap. */
  throttleMs: number;
}

export interface ShardFailed {
  shardId: string;
  jobId: string;
  code: string;
  message: string;
}

export interface WorkerDaemonEvents {
  state: [change: { from: WorkerState; to: WorkerState }];
  /** A connection opened and `hello` went out. */
  connected: [];
  ready: [welcome: Welcome];
  disconnected: [info: DisconnectInfo];
  shardReceived: [header: ShardHeader];
  shardDone: [done: ShardDone];
  shardFailed: [failed: ShardFailed];
  /**
   * A shard withdrawn by `cancel`, handed back by `draining`, or whose result was discarded
   * because its connection dropped.
   */
  shardDiscarded: [info: { shardId: string; jobId: string; reason: string }];
  /** Something from the coordinator that did not parse or made no sense now. */
  malformed: [info: { kind: "text" | "binary"; code: string; message: string }];
  coordinatorError: [message: ErrorMessage];
  /** The daemon stopped for good for a reason reconnecting cannot fix. */
  fatal: [error: EdgepoolError];
  closed: [];
}

export interface WorkerDaemonDeps {
  log: Logger;
  workerId: string;
}

interface ShardTask {
  header: ShardHeader;
  tensors: NamedTensor[];
  rows: number;
  /** The connection it arrived on; a result for an older one is discarded. */
  epoch: number;
  modelBase: string;
  cancelled: boolean;
  /** Its result or error was sent, or it was discarded. */
  answered?: boolean;
}

/** Shards whose inputs are at most this large may run together with their neighbours... */
const MERGE_MAX_BYTES = 64 * 1024;
/** ...up to this many rows in one call. */
const MERGE_MAX_ROWS = 1024;

function inputBytes(t: ShardTask): number {
  let n = 0;
  for (const x of t.tensors) n += x.data.byteLength;
  return n;
}

function sameInputs(a: ShardTask, b: ShardTask): boolean {
  if (a.tensors.length !== b.tensors.length) return false;
  return a.tensors.every((x, i) => {
    const y = b.tensors[i]!;
    return x.name === y.name && x.dtype === y.dtype && x.dims.length === y.dims.length && x.dims.every((d, k) => k === 0 || d === y.dims[k]);
  });
}

export class WorkerDaemon extends EventEmitter<WorkerDaemonEvents> {
  private stateValue: WorkerState = "idle";
  private readonly log: Logger;
  private readonly connection: Connection;
  private readonly cache: ModelCache;
  private readonly runner: Runner;
  private readonly stats = new WorkerStats();
  private readonly queue: ShardTask[] = [];
  private readonly running = new Map<string, ShardTask>();
  /** Result frame buffers for reuse: large results would otherwise allocate a frame each. */
  private readonly frames = new FramePool(32 * 2 ** 20);
  /** Slots computing now (each runs one shard, or several small ones together). */
  private runs = 0;
  /** Timers of slots resting after a shard to keep under the CPU cap; each frees its slot. */
  private readonly resting = new Set<NodeJS.Timeout>();
  /** Bumped on every disconnect: tasks from an older epoch belong to a dead connection. */
  private epoch = 0;
  private modelBase: string | null = null;
  private helloTimer: NodeJS.Timeout | null = null;
  private closing: Promise<void> | null = null;
  /** Called when a running shard ends or the connection drops, so draining can re-check. */
  private onSettle: (() => void) | null = null;
  private fatalError: EdgepoolError | null = null;
  private hello = "";

  constructor(
    readonly config: WorkerConfig,
    private readonly deps: WorkerDaemonDeps,
  ) {
    super();
    this.log = deps.log;
    this.connection = new Connection({
      url: config.coordinator,
      log: deps.log,
      reconnectMinMs: config.reconnectMinMs,
      reconnectMaxMs: config.reconnectMaxMs,
      connectTimeoutMs: config.connectTimeoutMs,
      pingIntervalMs: config.pingIntervalMs,
      maxPayloadBytes: config.maxPayloadBytes,
      token: config.token,
      ca: config.ca?.pem,
    });
    this.cache = new ModelCache({
      dir: path.join(config.stateDir, "models"),
      downloadTimeoutMs: config.downloadTimeoutMs,
      log: deps.log,
      token: config.token,
      ca: config.ca?.pem,
    });
    this.runner = new Runner({ threads: config.threads, log: deps.log });
    this.connection.on("connected", () => this.guard("connected", () => this.onConnected()));
    this.connection.on("text", (text) => this.guard("text", () => this.onText(text)));
    this.connection.on("binary", (bytes) => this.guard("binary", () => this.onBinary(bytes)));
    this.connection.on("disconnected", (info) => this.guard("disconnected", () => this.onDisconnected(info)));
  }

  get state(): WorkerState {
    return this.stateValue;
  }

  get workerId(): string {
    return this.deps.workerId;
  }

  /** The reason the daemon stopped on its own, if it did. */
  get fatal(): EdgepoolError | null {
    return this.fatalError;
  }

  /** Counters since start, plus the current load. */
  snapshot(): WorkerStatsSnapshot & { running: number; resting: number; queued: number } {
    return { ...this.stats.snapshot(), running: this.running.size, resting: this.resting.size, queued: this.queue.length };
  }

  /** Starts dialling the coordinator; reconnects on its own until close(). Throws E_CONFIG or E_STATE. */
  start(): void {
    if (this.stateValue !== "idle") throw new EdgepoolError("E_STATE", `worker cannot start while ${this.stateValue}`);
    // Built once and checked now: a value the coordinator would refuse fails here, loudly,
    // instead of on every connection.
    this.hello = JSON.stringify(buildHello(this.config, this.workerId));
    this.transition("connecting");
    const { name: workerName, coordinator, slots, threads, maxCpu } = this.config;
    this.log.info({ workerId: this.workerId, workerName, coordinator, slots, threads, maxCpu }, "worker starting");
    this.stats.startSummary(this.log.child({ maxCpu }), this.config.statsIntervalMs, () => ({
      running: this.running.size,
      queued: this.queue.length,
      resting: this.resting.size,
      slots,
    }));
    this.connection.start();
  }

  /**
   * Graceful stop: takes no new shards, hands queued ones back to the coordinator, lets
   * running ones finish and sends their results (up to `drainTimeoutMs`), then closes the
   * socket and releases everything. Every cleanup step runs even if an earlier one fails.
   * Safe to call more than once; never rejects.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  // ---- connection events ----

  private onConnected(): void {
    if (this.stateValue !== "connecting") {
      // A dial that completed after draining began: nothing to say on it.
      void this.connection.close();
      return;
    }
    this.connection.send(this.hello);
    this.clearHelloTimer();
    this.helloTimer = setTimeout(() => {
      this.helloTimer = null;
      this.log.warn({ helloTimeoutMs: this.config.helloTimeoutMs }, "no welcome from the coordinator in time");
      this.connection.drop(`no welcome within ${this.config.helloTimeoutMs} ms`);
    }, this.config.helloTimeoutMs);
    this.safeEmit("connected");
  }

  private onDisconnected(info: DisconnectInfo): void {
    this.clearHelloTimer();
    this.epoch += 1;
    this.modelBase = null;
    const dropped = this.queue.length;
    this.queue.length = 0;
    if (dropped > 0 || this.running.size > 0) {
      this.log.info({ dropped, running: this.running.size }, "connection lost: queued shards dropped, running results will be discarded");
    }
    if (this.stateValue === "ready") this.transition("connecting");
    else if (this.stateValue === "draining") void this.connection.close();
    this.onSettle?.();
    this.safeEmit("disconnected", info);
  }

  private onText(text: string): void {
    let msg;
    try {
      msg = parseCoordinatorText(text);
    } catch (err) {
      this.malformed("text", err);
      return;
    }
    switch (msg.type) {
      case "welcome":
        this.onWelcome(msg);
        return;
      case "cancel":
        this.onCancel(msg);
        return;
      case "error":
        this.onCoordinatorError(msg);
        return;
    }
  }

  private onWelcome(msg: Welcome): void {
    if (this.stateValue !== "connecting" || this.helloTimer === null) {
      this.malformed("text", new EdgepoolError("E_PROTOCOL", `unexpected welcome while ${this.stateValue}`));
      return;
    }
    try {
      checkProtocolVersion(msg.protocol, "the coordinator");
    } catch (err) {
      this.fail(toEdgepoolError(err));
      return;
    }
    let base: string;
    try {
      base = modelBaseUrl(this.config.coordinator, msg.modelPath);
    } catch (err) {
      this.malformed("text", err);
      return;
    }
    this.clearHelloTimer();
    this.modelBase = base;
    this.transition("ready");
    this.log.info({ workerId: this.workerId, coordinator: this.config.coordinator, protocol: PROTOCOL_VERSION }, "worker ready");
    this.safeEmit("ready", msg);
  }

  private onCancel(msg: Cancel): void {
    const i = this.queue.findIndex((t) => t.header.shardId === msg.shardId);
    if (i >= 0) {
      const [task] = this.queue.splice(i, 1);
      this.log.debug({ shardId: msg.shardId, reason: msg.reason }, "queued shard cancelled");
      this.safeEmit("shardDiscarded", { shardId: msg.shardId, jobId: task!.header.jobId, reason: `cancelled: ${msg.reason}` });
      return;
    }
    const task = this.running.get(msg.shardId);
    if (task) {
      // ONNX Runtime cannot be interrupted mid-run; the result is dropped when it arrives.
      task.cancelled = true;
      this.log.debug({ shardId: msg.shardId, reason: msg.reason }, "running shard cancelled; its result will be discarded");
      return;
    }
    this.log.debug({ shardId: msg.shardId }, "cancel for a shard this worker does not hold");
  }

  private onCoordinatorError(msg: ErrorMessage): void {
    this.log.warn({ code: msg.code, err: msg.message }, "coordinator reported an error");
    this.safeEmit("coordinatorError", msg);
    // Reconnecting cannot fix a version mismatch: both sides must be upgraded.
    if (msg.code === "E_VERSION") this.fail(new EdgepoolError("E_VERSION", msg.message));
  }

  private onBinary(bytes: Uint8Array): void {
    if (this.stateValue === "draining") {
      this.log.debug({ bytes: bytes.byteLength }, "shard frame ignored while draining");
      return;
    }
    if (this.stateValue !== "ready" || this.modelBase === null) {
      this.malformed("binary", new EdgepoolError("E_PROTOCOL", `binary frame before welcome (state ${this.stateValue})`));
      return;
    }
    let frame;
    try {
      frame = parseShardFrame(bytes);
    } catch (err) {
      this.malformed("binary", err);
      return;
    }
    const { header, tensors } = frame;
    if (this.running.has(header.shardId) || this.queue.some((t) => t.header.shardId === header.shardId)) {
      this.malformed("binary", new EdgepoolError("E_PROTOCOL", `shard ${header.shardId} is already held by this worker`));
      return;
    }
    if (this.queue.length >= MAX_QUEUED) {
      this.answerError(header, new EdgepoolError("E_UNAVAILABLE", `worker queue is full (${MAX_QUEUED} shards); send fewer at once`));
      return;
    }
    this.queue.push({ header, tensors, rows: header.end - header.start, epoch: this.epoch, modelBase: this.modelBase, cancelled: false });
    if (this.log.isLevelEnabled("debug")) this.log.debug({ shardId: header.shardId, jobId: header.jobId, rows: header.end - header.start, queued: this.queue.length }, "shard received");
    this.safeEmit("shardReceived", header);
    this.pump();
  }

  // ---- shard execution ----

  private pump(): void {
    while (this.stateValue === "ready" && this.runs + this.resting.size < this.config.slots) {
      const task = this.queue.shift();
      if (!task) return;
      const batch = [task, ...this.companions(task)];
      this.runs += 1;
      for (const t of batch) this.running.set(t.header.shardId, t);
      this.execute(batch).catch((err: unknown) => {
        // execute() answers its own failures; reaching here is a bug, and must not become an
        // unhandled rejection that takes the process down.
        this.log.error({ shardId: task.header.shardId, err: toEdgepoolError(err).message }, "internal error running a shard");
      });
    }
  }

  /**
   * Queued shards that can run in one call together with `first` (computeShards): next in
   * the queue, small, of the same loaded model with a free batch dim, from the same
   * connection, with inputs of the same names, dtypes and row shapes.
   */
  private companions(first: ShardTask): ShardTask[] {
    const info = this.runner.info(first.header.model);
    if (!info || info.fixedBatch || inputBytes(first) > MERGE_MAX_BYTES) return [];
    const out: ShardTask[] = [];
    let rows = first.rows;
    for (let next = this.queue[0]; next; next = this.queue[0]) {
      if (next.header.model !== first.header.model || next.epoch !== first.epoch || next.cancelled) break;
      if (inputBytes(next) > MERGE_MAX_BYTES || rows + next.rows > MERGE_MAX_ROWS || !sameInputs(first, next)) break;
      out.push(this.queue.shift()!);
      rows += next.rows;
    }
    return out;
  }

  /** Why a finished task's answer must not be sent, or null when it should be. */
  private staleReason(task: ShardTask): string | null {
    if (task.cancelled) return "cancelled";
    if (task.epoch !== this.epoch) return "connection lost";
    return null;
  }

  /** Runs one slot's shards (one, or several small ones together) and answers each. */
  private async execute(batch: ShardTask[]): Promise<void> {
    const first = batch[0]!;
    let restMs = 0;
    try {
      await this.runner.load(first.header.model, () => this.cache.get(first.header.model, first.modelBase));
      const live = batch.filter((t) => {
        if (this.staleReason(t) === null) return true;
        t.answered = true;
        this.discard(t);
        return false;
      });
      if (live.length === 1) restMs = await this.compute(live[0]!);
      else if (live.length > 1) restMs = await this.computeTogether(live);
    } catch (err) {
      for (const t of batch) if (!t.answered) this.failShard(t, err);
    } finally {
      for (const t of batch) {
        this.running.delete(t.header.shardId);
        // Input tensors are views on the received frame; let it go now.
        t.tensors = [];
      }
      this.runs -= 1;
      this.onSettle?.();
      this.rest(restMs);
    }
  }

  /** Answers a shard that could not be computed (or drops it, if its answer is no longer wanted). */
  private failShard(task: ShardTask, err: unknown): void {
    task.answered = true;
    const e = toEdgepoolError(err, "E_INTERNAL");
    if (this.staleReason(task) !== null) {
      this.discard(task);
      return;
    }
    const { header, rows } = task;
    this.stats.recordError();
    this.log.warn({ shardId: header.shardId, jobId: header.jobId, model: header.model, rows, code: e.code, err: e.message }, "shard failed");
    this.answerError(header, e);
  }

  /** Runs a loaded shard and sends its result; resolves the rest its slot takes afterwards. */
  private async compute(task: ShardTask): Promise<number> {
    return this.deliver(task, await computeShard(this.runner, task.header, task.tensors, this.config.maxCpu, this.frames.take));
  }

  /**
   * Runs small shards in one call and sends each its result. If that call fails, each shard
   * runs alone, so that one bad shard gets its own error and the others their results.
   */
  private async computeTogether(tasks: ShardTask[]): Promise<number> {
    let results;
    try {
      results = await computeShards(this.runner, tasks.map((t) => t.header), tasks.map((t) => t.tensors), this.config.maxCpu, this.frames.take);
    } catch {
      let rest = 0;
      for (const t of tasks) {
        if (this.staleReason(t) !== null) {
          t.answered = true;
          this.discard(t);
          continue;
        }
        try {
          rest += await this.compute(t);
        } catch (err) {
          this.failShard(t, err);
        }
      }
      return rest;
    }
    let rest = 0;
    tasks.forEach((t, k) => (rest += this.deliver(t, results[k]!)));
    return rest;
  }

  /** Sends a computed shard's result (unless no longer wanted); returns the rest owed for it. */
  private deliver(task: ShardTask, result: ShardResult): number {
    task.answered = true;
    const { header, rows } = task;
    const { frame, computeMs, throttleMs } = result;
    if (maybeCorrupt(frame, this.config.faultInject)) this.log.warn({ shardId: header.shardId }, "fault injection: result corrupted on purpose");
    // The CPU time is spent whether or not the result is still wanted, so the rest is owed
    // either way.
    // Once written out, a large result's buffer serves a later one (FramePool).
    const release = frame.byteLength >= this.frames.minBytes ? () => this.frames.give(frame) : undefined;
    if (this.staleReason(task) !== null || !this.connection.send(frame, release)) {
      release?.();
      this.discard(task);
      return throttleMs;
    }
    this.stats.recordDone(rows, computeMs, throttleMs);
    // Built only when written: with tiny shards this runs tens of thousands of times a second.
    if (this.log.isLevelEnabled("debug")) this.log.debug({ shardId: header.shardId, jobId: header.jobId, rows, computeMs, throttleMs, bytes: frame.byteLength }, "shard done");
    this.safeEmit("shardDone", { shardId: header.shardId, jobId: header.jobId, model: header.model, rows, computeMs, throttleMs });
    return throttleMs;
  }

  /** Keeps a freed slot idle for `ms` (the CPU cap) before it takes the next shard. */
  private rest(ms: number): void {
    if (ms <= 0 || this.stateValue === "draining" || this.stateValue === "closed") {
      this.pump();
      return;
    }
    const timer = setTimeout(() => {
      this.resting.delete(timer);
      this.pump();
    }, ms);
    // The connection keeps the process alive while it matters; a rest alone must not.
    timer.unref();
    this.resting.add(timer);
  }

  private clearRests(): void {
    for (const timer of this.resting) clearTimeout(timer);
    this.resting.clear();
  }

  private discard(task: ShardTask): void {
    const reason = this.staleReason(task) ?? "connection closed";
    this.log.debug({ shardId: task.header.shardId, jobId: task.header.jobId, reason }, "shard result discarded");
    this.safeEmit("shardDiscarded", { shardId: task.header.shardId, jobId: task.header.jobId, reason });
  }

  private answerError(header: ShardHeader, e: EdgepoolError): void {
    let msg: ShardError;
    try {
      msg = shardErrorMessage(header, e);
    } catch (err) {
      this.log.error({ shardId: header.shardId, err: toEdgepoolError(err).message }, "cannot answer a failed shard");
      return;
    }
    this.connection.send(JSON.stringify(msg));
    this.safeEmit("shardFailed", { shardId: header.shardId, jobId: header.jobId, code: msg.code, message: msg.message });
  }

  // ---- lifecycle ----

  private fail(e: EdgepoolError): void {
    if (this.fatalError) return;
    this.fatalError = e;
    this.log.error({ code: e.code, err: e.message }, "worker stopping: reconnecting cannot fix this");
    this.safeEmit("fatal", e);
    void this.close();
  }

  private async shutdown(): Promise<void> {
    if (this.stateValue === "idle") {
      this.transition("closed");
      this.safeEmit("closed");
      return;
    }
    const wasReady = this.stateValue === "ready";
    this.transition("draining");
    this.clearHelloTimer();
    this.clearRests();
    const released = this.queue.splice(0);
    // Handing queued shards back at once lets the coordinator give them to another worker
    // now, rather than when this socket finally closes after the running shards.
    const announced = wasReady && this.announceDraining(released.map((t) => t.header.shardId));
    for (const task of released) {
      this.safeEmit("shardDiscarded", { shardId: task.header.shardId, jobId: task.header.jobId, reason: "released: worker draining" });
    }
    this.log.info({ running: this.running.size, released: released.length, announced }, "worker draining");
    await this.step("drain", () => this.drain());
    await this.step("stats", () => this.stats.stopSummary());
    await this.step("connection", () => this.connection.close());
    await this.step("model cache", () => this.cache.close());
    await this.step("runner", () => this.runner.close());
    this.transition("closed");
    this.log.info({ ...this.stats.snapshot() }, "worker closed");
    this.safeEmit("closed");
  }

  /** Sends `draining` naming the shards this worker will not run; false when it could not. */
  private announceDraining(released: string[]): boolean {
    const r = DrainingSchema.safeParse({ type: "draining", released });
    if (!r.success) {
      this.log.error({ released: released.length, err: r.error.issues[0]?.message }, "cannot build the draining message");
      return false;
    }
    return this.connection.send(JSON.stringify(r.data));
  }

  /** Resolves when no shard runs, the connection is gone, or the grace period is over. */
  private drain(): Promise<void> {
    const startEpoch = this.epoch;
    const done = (): boolean => this.running.size === 0 || this.epoch !== startEpoch || !this.connection.isOpen;
    if (done()) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.log.warn({ running: this.running.size, drainTimeoutMs: this.config.drainTimeoutMs }, "shards still running at the end of the grace period; closing anyway");
        finish();
      }, this.config.drainTimeoutMs);
      const finish = (): void => {
        clearTimeout(timer);
        this.onSettle = null;
        resolve();
      };
      this.onSettle = () => {
        if (done()) finish();
      };
    });
  }

  private async step(what: string, fn: () => unknown): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.log.warn({ step: what, err: toEdgepoolError(err).message }, "cleanup step failed");
    }
  }

  private transition(to: WorkerState): void {
    const from = this.stateValue;
    if (!TRANSITIONS[from].includes(to)) throw new EdgepoolError("E_STATE", `worker cannot go from ${from} to ${to}`);
    this.stateValue = to;
    this.log.debug({ from, to }, "worker state");
    this.safeEmit("state", { from, to });
  }

  private clearHelloTimer(): void {
    if (this.helloTimer) clearTimeout(this.helloTimer);
    this.helloTimer = null;
  }

  private malformed(kind: "text" | "binary", err: unknown): void {
    const e = toEdgepoolError(err, "E_PROTOCOL");
    this.log.warn({ kind, code: e.code, err: e.message }, "ignored a malformed message from the coordinator");
    this.safeEmit("malformed", { kind, code: e.code, message: e.message });
  }

  /** A connection handler must never throw into the socket library. */
  private guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.error({ event: what, err: toEdgepoolError(err).message }, "internal error handling a connection event");
    }
  }

  /** Emits without letting a listener's exception reach the daemon's own code paths. */
  private safeEmit<K extends keyof WorkerDaemonEvents>(event: K, ...args: WorkerDaemonEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: WorkerDaemonEvents[K]) => boolean)(event, ...args);
    } catch (err) {
      this.log.error({ event, err: toEdgepoolError(err).message }, "an event listener threw");
    }
  }
}
