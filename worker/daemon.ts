/**
 * The worker daemon: the protocol session (core/session.ts) over a Node connection to the
 * coordinator that redials by itself (connection.ts), with onnxruntime-node slots behind it
 * (node-executor.ts: model cache, runner, batching of small shards, CPU cap rests), stats and
 * a graceful shutdown.
 *
 * State (`WorkerState`, the session's, see core/state.ts): `idle` → start() → `connecting`
 * (dialling, or waiting for `welcome` after our `hello`) → `ready` (shards accepted) → back
 * to `connecting` whenever the connection drops. close() moves `connecting`/`ready` to
 * `draining`: nothing new is started, queued shards are handed back with one `draining`
 * message (from `ready` only: before `welcome` nothing is queued), shards already running
 * finish and their results are sent (up to `drainTimeoutMs`), then the socket closes and
 * the state is `closed`, which is final. Any other transition throws E_STATE.
 *
 * Shards: each is answered with one `result` frame or one `shard_error`, never both and
 * never neither while its connection lives, except that shards named in `draining` get no
 * answer at all. Queued shards are dropped without a message when the connection drops: the
 * coordinator re-queues whatever a closed connection held. A result computed for a
 * connection that has since dropped is discarded for the same reason. Nothing the
 * coordinator sends can crash the daemon: malformed input is logged, counted and ignored.
 */
import { EventEmitter } from "node:events";
import path from "node:path";
import type { Logger } from "pino";
import { EdgepoolError, toEdgepoolError } from "../shared/errors.js";
import { PROTOCOL_VERSION, type ErrorMessage, type ShardHeader, type Welcome } from "../shared/protocol/messages.js";
import type { WorkerConfig } from "./config.js";
import { Connection, type DisconnectInfo } from "./connection.js";
import type { SessionHooks } from "./core/hooks.js";
import { WorkerSession } from "./core/session.js";
import type { SessionState } from "./core/state.js";
import type { Transport } from "./core/transport.js";
import { buildHello } from "./hello.js";
import { ModelCache, modelBaseUrl } from "./model-cache.js";
import { NodeExecutor, type ShardDone } from "./node-executor.js";
import { Runner } from "./runner.js";
import { WorkerStats, type WorkerStatsSnapshot } from "./stats.js";

export type WorkerState = SessionState;
export type { ShardDone };

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

export class WorkerDaemon extends EventEmitter<WorkerDaemonEvents> {
  private readonly log: Logger;
  private readonly connection: Connection;
  private readonly cache: ModelCache;
  private readonly runner: Runner;
  private readonly stats = new WorkerStats();
  private readonly executor: NodeExecutor;
  private readonly session: WorkerSession;
  private closing: Promise<void> | null = null;
  /** Called when a running shard is answered or the connection drops, so draining can re-check. */
  private onSettle: (() => void) | null = null;

  constructor(
    readonly config: WorkerConfig,
    private readonly deps: WorkerDaemonDeps,
  ) {
    super();
    this.log = deps.log;
    const connection = new Connection({
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
    this.connection = connection;
    this.cache = new ModelCache({
      dir: path.join(config.stateDir, "models"),
      downloadTimeoutMs: config.downloadTimeoutMs,
      log: deps.log,
      token: config.token,
      ca: config.ca?.pem,
    });
    this.runner = new Runner({ threads: config.threads, log: deps.log });
    this.executor = new NodeExecutor({
      slots: config.slots,
      maxCpu: config.maxCpu,
      faultInject: config.faultInject,
      log: deps.log,
      runner: this.runner,
      cache: this.cache,
      stats: this.stats,
      done: (done) => this.safeEmit("shardDone", done),
    });
    const transport: Transport = {
      get isOpen() {
        return connection.isOpen;
      },
      sendText: (text) => connection.send(text),
      sendBinary: (frame, written) => connection.send(frame, written),
      // Only the hello timeout closes a connection from the session: drop it and redial.
      close: (_code, reason) => connection.drop(reason),
    };
    this.session = new WorkerSession(transport, this.executor, this.sessionHooks(), {
      helloTimeoutMs: config.helloTimeoutMs,
      modelBase: (modelPath) => modelBaseUrl(config.coordinator, modelPath),
    });
    connection.on("connected", () => this.guard("connected", () => this.onConnected()));
    connection.on("text", (text) => this.guard("text", () => this.session.text(text)));
    connection.on("binary", (bytes) => this.guard("binary", () => this.session.binary(bytes)));
    connection.on("disconnected", (info) => this.guard("disconnected", () => this.onDisconnected(info)));
  }

  get state(): WorkerState {
    return this.session.state;
  }

  get workerId(): string {
    return this.deps.workerId;
  }

  /** The reason the daemon stopped on its own, if it did. */
  get fatal(): EdgepoolError | null {
    return this.session.fatal;
  }

  /** Counters since start, plus the current load. */
  snapshot(): WorkerStatsSnapshot & { running: number; resting: number; queued: number } {
    return { ...this.stats.snapshot(), running: this.session.running, resting: this.executor.restingSlots, queued: this.session.queued };
  }

  /** Starts dialling the coordinator; reconnects on its own until close(). Throws E_CONFIG or E_STATE. */
  start(): void {
    // Built once and checked now: a value the coordinator would refuse fails here, loudly,
    // instead of on every connection.
    this.session.start(buildHello(this.config, this.workerId));
    const { name: workerName, coordinator, slots, threads, maxCpu } = this.config;
    this.log.info({ workerId: this.workerId, workerName, coordinator, slots, threads, maxCpu }, "worker starting");
    this.stats.startSummary(this.log.child({ maxCpu }), this.config.statsIntervalMs, () => ({
      running: this.session.running,
      queued: this.session.queued,
      resting: this.executor.restingSlots,
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

  // ---- connection and session events ----

  private onConnected(): void {
    if (!this.session.opened()) {
      // A dial that completed after draining began: nothing to say on it.
      void this.connection.close();
      return;
    }
    this.safeEmit("connected");
  }

  private onDisconnected(info: DisconnectInfo): void {
    const running = this.session.running;
    const dropped = this.session.lost();
    if (dropped > 0 || running > 0) {
      this.log.info({ dropped, running }, "connection lost: queued shards dropped, running results will be discarded");
    }
    if (this.session.state === "draining") void this.connection.close();
    this.safeEmit("disconnected", info);
  }

  private sessionHooks(): SessionHooks {
    const log = this.log;
    return {
      state: (from, to) => {
        log.debug({ from, to }, "worker state");
        this.safeEmit("state", { from, to });
      },
      ready: (welcome) => {
        log.info({ workerId: this.workerId, coordinator: this.config.coordinator, protocol: PROTOCOL_VERSION }, "worker ready");
        this.safeEmit("ready", welcome);
      },
      helloTimeout: (helloTimeoutMs) => log.warn({ helloTimeoutMs }, "no welcome from the coordinator in time"),
      malformed: (kind, e) => {
        log.warn({ kind, code: e.code, err: e.message }, "ignored a malformed message from the coordinator");
        this.safeEmit("malformed", { kind, code: e.code, message: e.message });
      },
      coordinatorError: (msg) => {
        log.warn({ code: msg.code, err: msg.message }, "coordinator reported an error");
        this.safeEmit("coordinatorError", msg);
      },
      fatal: (e) => {
        log.error({ code: e.code, err: e.message }, "worker stopping: reconnecting cannot fix this");
        this.safeEmit("fatal", e);
        void this.close();
      },
      received: ({ header, rows }) => {
        if (log.isLevelEnabled("debug")) log.debug({ shardId: header.shardId, jobId: header.jobId, rows, queued: this.session.queued }, "shard received");
        this.safeEmit("shardReceived", header);
      },
      ignored: (bytes) => log.debug({ bytes }, "shard frame ignored while draining"),
      cancelled: (shardId, shard, reason) => {
        if (!shard) log.debug({ shardId }, "cancel for a shard this worker does not hold");
        // ONNX Runtime cannot be interrupted mid-run; the result is dropped when it arrives.
        else if (shard.phase === "running") log.debug({ shardId, reason }, "running shard cancelled; its result will be discarded");
        else log.debug({ shardId, reason }, "queued shard cancelled");
      },
      discarded: ({ header: { shardId, jobId } }, reason) => {
        log.debug({ shardId, jobId, reason }, "shard discarded");
        this.safeEmit("shardDiscarded", { shardId, jobId, reason });
      },
      failed: (header, e) => {
        this.stats.recordError();
        log.warn({ shardId: header.shardId, jobId: header.jobId, model: header.model, rows: header.end - header.start, code: e.code, err: e.message }, "shard failed");
        this.safeEmit("shardFailed", { shardId: header.shardId, jobId: header.jobId, code: e.code, message: e.message });
      },
      settled: () => this.onSettle?.(),
    };
  }

  // ---- shutdown ----

  private async shutdown(): Promise<void> {
    if (this.session.state === "idle") {
      this.session.close();
      this.safeEmit("closed");
      return;
    }
    const { released, announced } = this.session.drain();
    this.executor.stopResting();
    this.log.info({ running: this.session.running, released, announced }, "worker draining");
    await this.step("drain", () => this.drain());
    await this.step("stats", () => this.stats.stopSummary());
    await this.step("connection", () => this.connection.close());
    await this.step("model cache", () => this.cache.close());
    await this.step("runner", () => this.runner.close());
    this.session.close();
    this.log.info({ ...this.stats.snapshot() }, "worker closed");
    this.safeEmit("closed");
  }

  /** Resolves when no shard runs, the connection is gone, or the grace period is over. */
  private drain(): Promise<void> {
    const startEpoch = this.session.epoch;
    const done = (): boolean => this.session.running === 0 || this.session.epoch !== startEpoch || !this.connection.isOpen;
    if (done()) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.log.warn({ running: this.session.running, drainTimeoutMs: this.config.drainTimeoutMs }, "shards still running at the end of the grace period; closing anyway");
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
