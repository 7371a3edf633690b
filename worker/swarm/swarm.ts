/**
 * A swarm of simulated workers in one process: `count` real WebSocket connections to a
 * coordinator, each speaking the worker protocol (hello with `virtual: true`, results for
 * shards) but computing nothing. A shard is answered after the time the worker's device tier
 * would need (rows × FLOPs per sample / tier FLOP/s, times lognormal jitter) with zero outputs
 * of the model's output shapes; the model's FLOPs and outputs come from the coordinator's
 * `GET /api/models/<sha>`, fetched once per model for the whole swarm (model-specs.ts;
 * the shards themselves: virtual-shards.ts).
 *
 * Each virtual worker (virtual-worker.ts) goes `waiting` → `dialling` → `ready` → back to
 * `waiting` when its connection drops, until `close()`. At most `dialConcurrency` workers
 * are dialling at once, so a swarm of tens of thousands does not flood the coordinator's
 * accept queue. Their protocol is the shared one (worker/core/protocol.ts: text dispatch, the
 * welcome guard, cancel in the queue, shard_error) and every message is made by the shared
 * builders, but a worker is a few fields rather than a session object: the fleet benchmark
 * holds about 20,000 of them. Dropouts are drawn by one shared timer for the whole swarm.
 * Liveness pings from the coordinator are answered by the ws library.
 *
 * On a loopback coordinator, connections are spread over source addresses 127.0.x.y so that
 * more than one address's ephemeral ports (~28k) can be used.
 */
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import { WebSocket } from "ws";
import { backoffDelay } from "../../shared/backoff.js";
import { EdgepoolError, toEdgepoolError } from "../../shared/errors.js";
import { helloMessage } from "../../shared/protocol/encode.js";
import type { ErrorMessage, HelloInput, Welcome } from "../../shared/protocol/messages.js";
import { authHeader } from "../../shared/token.js";
import { messageBytes } from "../../shared/node/ws-send.js";
import { dispatchCoordinatorText, welcomeRefusal, type CoordinatorTextHandler } from "../core/protocol.js";
import { SIMULATOR_VERSION, type SwarmConfig } from "./config.js";
import { ModelSpecs } from "./model-specs.js";
import { TIERS, assignTiers } from "./profiles.js";
import { VirtualShards } from "./virtual-shards.js";
import { VirtualWorker, isIpv4Loopback, loopbackSourceAddress } from "./virtual-worker.js";

export { SIMULATOR_VERSION, SwarmConfigSchema, parseSwarmConfig, type SwarmConfig, type SwarmOptions } from "./config.js";
export { loopbackSourceAddress } from "./virtual-worker.js";

export interface SwarmStats {
  count: number;
  /** Workers that hold a welcomed connection now. */
  connected: number;
  dialling: number;
  shardsDone: number;
  samplesDone: number;
  shardErrors: number;
  /** Simulated dropouts so far. */
  dropouts: number;
  /** Connections that ended without a dropout or close() (refused, timed out, cut by the peer). */
  connectionFailures: number;
  /** Shards queued or running over all workers. */
  pending: number;
}

export interface SwarmEvents {
  /** Every worker holds a welcomed connection; `ms` since start(). Emitted each time it becomes true. */
  allConnected: [ms: number];
  /** A worker got its welcome (`connected` is the count after it). */
  workerReady: [connected: number];
}

type HelloFields = Omit<HelloInput, "type" | "protocol" | "workerId" | "name">;

export class Swarm extends EventEmitter<SwarmEvents> {
  private readonly workers: VirtualWorker[];
  private readonly dialQueue: VirtualWorker[] = [];
  private dialHead = 0;
  private diallingCount = 0;
  private connectedCount = 0;
  /** What every worker does with its shards. */
  private readonly shards: VirtualShards;
  private dropoutTimer: NodeJS.Timeout | null = null;
  private lastDropoutTick = 0;
  private startedAt = 0;
  private state: "idle" | "running" | "closed" = "idle";
  private closing: Promise<void> | null = null;
  private openSockets = 0;
  private onAllSocketsClosed: (() => void) | null = null;
  private readonly counters = { dropouts: 0, connectionFailures: 0 };
  private readonly hello: HelloFields = {
    platform: "virtual",
    arch: "virtual",
    cpus: 1,
    memoryBytes: 0,
    runtime: { name: "simulated", version: SIMULATOR_VERSION },
    threads: 1,
    slots: 1,
    maxCpu: 100,
    virtual: true,
  };
  /** One handler for every worker's text messages: the worker is the context, not a closure. */
  private readonly textHandler: CoordinatorTextHandler<VirtualWorker>;
  private loggedCoordinatorError = false;
  /** The first refused dial (a bad token: HTTP 401/403) is logged as an error, later ones at debug. */
  private loggedRefusal = false;

  constructor(
    readonly config: SwarmConfig,
    private readonly log: Logger,
    private readonly random: () => number = Math.random,
  ) {
    super();
    this.shards = new VirtualShards(new ModelSpecs(config, log), config.jitter, log, random);
    const spread = config.spreadSourceAddresses === "auto" ? process.platform === "linux" && isIpv4Loopback(config.coordinator) : config.spreadSourceAddresses;
    const tiers = assignTiers(config.profile, config.count);
    this.workers = tiers.map((tier, i) => new VirtualWorker(i, randomUUID(), tier, TIERS[tier].flopsPerSec, spread ? loopbackSourceAddress(i) : undefined));
    // Checked once, with the longest name, so a bad field is a local E_CONFIG, not a refusal per worker.
    helloMessage({ ...this.hello, workerId: randomUUID(), name: `virtual-flagship-${config.count}` });
    this.textHandler = {
      welcome: (w, msg) => this.onWelcome(w, msg),
      cancel: (w, msg) => this.shards.cancel(w, msg.shardId),
      error: (w, msg) => this.onCoordinatorError(w, msg),
      malformed: (w, e) => this.log.warn({ worker: w.name, err: e.message }, "malformed message from coordinator"),
    };
  }

  /** Counts so far. */
  get stats(): SwarmStats {
    const { shards } = this;
    return {
      count: this.workers.length,
      connected: this.connectedCount,
      dialling: this.diallingCount,
      pending: shards.pending,
      shardsDone: shards.shardsDone,
      samplesDone: shards.samplesDone,
      shardErrors: shards.shardErrors,
      ...this.counters,
    };
  }

  /** Starts dialling every worker (bounded by dialConcurrency) and the dropout clock. */
  start(): void {
    if (this.state !== "idle") return;
    this.state = "running";
    this.startedAt = Date.now();
    for (const w of this.workers) this.dialQueue.push(w);
    this.pumpDials();
    if (this.config.dropoutPerMin > 0) this.scheduleDropouts();
  }

  /** Resolves with the ms from start() once every worker is connected; rejects with E_TIMEOUT after `timeoutMs`. */
  whenAllConnected(timeoutMs: number): Promise<number> {
    if (this.connectedCount === this.workers.length && this.state === "running") return Promise.resolve(Date.now() - this.startedAt);
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off("allConnected", onAll);
        reject(new EdgepoolError("E_TIMEOUT", `${this.connectedCount} of ${this.workers.length} virtual workers connected within ${timeoutMs} ms`));
      }, timeoutMs);
      const onAll = (ms: number) => {
        clearTimeout(timer);
        resolve(ms);
      };
      this.once("allConnected", onAll);
    });
  }

  /**
   * Stops for good: no more dials, every timer cleared, every socket terminated. Resolves when
   * every socket has closed. Safe to call more than once.
   */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.state = "closed";
      if (this.dropoutTimer) clearTimeout(this.dropoutTimer);
      this.dropoutTimer = null;
      this.dialQueue.length = 0;
      this.dialHead = 0;
      for (const w of this.workers) {
        try {
          this.shards.clear(w);
          if (w.timer) clearTimeout(w.timer);
          w.timer = null;
          // With a socket, its close event settles the counts and marks the worker closed.
          if (w.socket) w.socket.terminate();
          else w.state = "closed";
        } catch (err) {
          // One worker's failure must not leave the others open.
          this.log.warn({ worker: w.name, err: toEdgepoolError(err).message }, "closing a virtual worker failed");
        }
      }
      if (this.openSockets === 0) resolve();
      else this.onAllSocketsClosed = resolve;
    });
    return this.closing;
  }

  // ---- connections ----

  private pumpDials(): void {
    while (this.state === "running" && this.diallingCount < this.config.dialConcurrency && this.dialHead < this.dialQueue.length) {
      const w = this.dialQueue[this.dialHead++]!;
      if (w.state === "waiting") this.dial(w);
    }
    if (this.dialHead === this.dialQueue.length) {
      this.dialQueue.length = 0;
      this.dialHead = 0;
    } else if (this.dialHead > 4096 && this.dialHead * 2 > this.dialQueue.length) {
      this.dialQueue.splice(0, this.dialHead);
      this.dialHead = 0;
    }
  }

  private dial(w: VirtualWorker): void {
    w.state = "dialling";
    this.diallingCount += 1;
    const socket = new WebSocket(this.config.coordinator, {
      // Result frames of zeros would compress, but real tensors do not; keep the wire honest.
      perMessageDeflate: false,
      handshakeTimeout: this.config.connectTimeoutMs,
      maxPayload: this.config.maxPayloadBytes,
      ...(w.localAddress ? { localAddress: w.localAddress } : {}),
      headers: authHeader(this.config.token),
      ...(this.config.ca ? { ca: this.config.ca.pem } : {}),
    });
    w.socket = socket;
    this.openSockets += 1;
    w.timer = setTimeout(() => {
      w.timer = null;
      if (w.socket === socket && w.state === "dialling") socket.terminate();
    }, this.config.connectTimeoutMs);

    socket.on("open", () => {
      if (w.socket !== socket) return;
      socket.send(helloMessage({ ...this.hello, workerId: w.workerId, name: w.name }));
    });
    socket.on("unexpected-response", (_req, res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      const fields = { status, worker: w.name };
      const msg = status === 401 || status === 403 ? "coordinator refused the swarm's token; pass a worker token with --token or EDGEPOOL_TOKEN" : "coordinator refused the WebSocket upgrade";
      if (this.loggedRefusal) this.log.debug(fields, msg);
      else this.log.error(fields, msg);
      this.loggedRefusal = true;
      // Aborts the handshake; "close" follows and the worker redials with backoff.
      socket.terminate();
    });
    socket.on("message", (data, isBinary) => {
      if (w.socket !== socket) return;
      const buf = messageBytes(data);
      if (isBinary) this.shards.receive(w, socket, new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
      else dispatchCoordinatorText(buf.toString("utf8"), w, this.textHandler);
    });
    socket.on("error", (err) => {
      this.log.debug({ worker: w.name, err: err.message }, "virtual worker socket error");
    });
    socket.on("close", () => {
      this.openSockets -= 1;
      if (w.socket === socket) this.onClosed(w);
      if (this.openSockets === 0 && this.onAllSocketsClosed) {
        const done = this.onAllSocketsClosed;
        this.onAllSocketsClosed = null;
        done();
      }
    });
  }

  private onWelcome(w: VirtualWorker, msg: Welcome): void {
    const refusal = welcomeRefusal(w.state === "dialling", w.state, msg);
    if (refusal) {
      if (refusal.code === "E_VERSION") this.refused(w, refusal.code, refusal.message);
      else this.log.debug({ worker: w.name, err: refusal.message }, "ignored a welcome");
      return;
    }
    if (w.timer) clearTimeout(w.timer);
    w.timer = null;
    w.state = "ready";
    w.attempt = 0;
    this.diallingCount -= 1;
    this.connectedCount += 1;
    this.emit("workerReady", this.connectedCount);
    if (this.connectedCount === this.workers.length) this.emit("allConnected", Date.now() - this.startedAt);
    this.pumpDials();
  }

  private onCoordinatorError(w: VirtualWorker, msg: ErrorMessage): void {
    this.refused(w, msg.code, msg.message);
  }

  /**
   * The coordinator refused this worker (an `error`, or a welcome in another protocol
   * version): logged loudly once, since it refuses every worker alike; a worker still
   * dialling gives up this connection and redials with backoff.
   */
  private refused(w: VirtualWorker, code: string, message: string): void {
    const fields = { worker: w.name, code, err: message };
    if (this.loggedCoordinatorError) this.log.debug(fields, "coordinator sent an error");
    else this.log.warn(fields, "coordinator sent an error");
    this.loggedCoordinatorError = true;
    if (w.state === "dialling") w.socket?.terminate();
  }

  private onClosed(w: VirtualWorker): void {
    w.socket = null;
    if (w.timer) clearTimeout(w.timer);
    w.timer = null;
    this.shards.clear(w);
    if (w.state === "dialling") this.diallingCount -= 1;
    else if (w.state === "ready") this.connectedCount -= 1;
    if (w.state === "closed" || this.state !== "running") {
      w.state = "closed";
      return;
    }
    w.state = "waiting";
    let delayMs: number;
    if (w.droppingOut) {
      w.droppingOut = false;
      const { dropoutDelayMinMs: min, dropoutDelayMaxMs: max } = this.config;
      delayMs = min + this.random() * (max - min);
    } else {
      this.counters.connectionFailures += 1;
      delayMs = backoffDelay(w.attempt, this.config.reconnectMinMs, this.config.reconnectMaxMs, this.random);
      w.attempt += 1;
    }
    w.timer = setTimeout(() => {
      w.timer = null;
      if (this.state !== "running" || w.state !== "waiting") return;
      this.dialQueue.push(w);
      this.pumpDials();
    }, delayMs);
    this.pumpDials();
  }

  /** One timer for the whole swarm: each tick, every ready worker drops out with the per-tick probability. */
  private scheduleDropouts(): void {
    const tickMs = 1000;
    this.lastDropoutTick = Date.now();
    const tick = () => {
      if (this.state !== "running") return;
      const now = Date.now();
      const minutes = (now - this.lastDropoutTick) / 60_000;
      this.lastDropoutTick = now;
      const p = 1 - (1 - this.config.dropoutPerMin) ** minutes;
      for (const w of this.workers) {
        if (w.state !== "ready" || !w.socket || this.random() >= p) continue;
        this.counters.dropouts += 1;
        w.droppingOut = true;
        this.log.debug({ worker: w.name, pending: w.queue?.length ?? 0 }, "virtual worker drops out");
        w.socket.terminate();
      }
      this.dropoutTimer = setTimeout(tick, tickMs);
      this.dropoutTimer.unref();
    };
    this.dropoutTimer = setTimeout(tick, tickMs);
    this.dropoutTimer.unref();
  }
}
