/**
 * A swarm of simulated workers in one process: `count` real WebSocket connections to a
 * coordinator, each speaking the worker protocol (hello with `virtual: true`, results for
 * shards) but computing nothing. A shard is answered after the time the worker's device tier
 * would need (rows × FLOPs per sample / tier FLOP/s, times lognormal jitter) with zero outputs
 * of the model's output shapes; the model's FLOPs and outputs come from the coordinator's
 * `GET /api/models/<sha>`, fetched once per model for the whole swarm.
 *
 * Each virtual worker: `waiting` (queued to dial, or backing off) → `dialling` (socket
 * opening, hello sent) → `ready` (welcome received) → back to `waiting` when its connection
 * drops (a simulated dropout or a real failure), until `close()` → `closed`. At most
 * `dialConcurrency` workers are dialling at once, so a swarm of tens of thousands does not
 * flood the coordinator's accept queue.
 *
 * Memory stays small per worker: an idle worker has no timer; a busy one has one timer for
 * the shard it is "running" (slots = 1, so the next shard waits in a short queue). Dropouts
 * are drawn by one shared timer for the whole swarm. Shard inputs are not kept: only the
 * header is. Liveness pings from the coordinator are answered by the ws library.
 *
 * On a loopback coordinator, connections are spread over source addresses 127.0.x.y so that
 * more than one address's ephemeral ports (~28k) can be used.
 */
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import { WebSocket, type RawData } from "ws";
import { z } from "zod";
import { parseConfig } from "../../shared/config.js";
import { httpRequest } from "../../shared/node/http-request.js";
import { CaFileSchema } from "../../shared/node/tls.js";
import { TokenOptionSchema, authHeader } from "../../shared/token.js";
import { EdgepoolError, toEdgepoolError } from "../../shared/errors.js";
import { planFrame, type TensorSpec } from "../../shared/protocol/frame.js";
import { IoInfoSchema } from "../../shared/onnx/model-info.js";
import {
  HelloSchema,
  PROTOCOL_VERSION,
  parseCoordinatorText,
  parseShardFrame,
  type ResultHeader,
  type ShardHeader,
} from "../../shared/protocol/messages.js";
import { WorkerConfigSchema } from "../config.js";
import { backoffDelay } from "../connection.js";
import { ProfileMixSchema, assignTiers, TIERS, type TierName } from "./profiles.js";

/** Version reported as the simulated runtime's, so reports can tell simulator revisions apart. */
export const SIMULATOR_VERSION = "1";

const Ms = z.coerce.number().int().positive().max(24 * 3600 * 1000);

export const SwarmConfigSchema = z
  .object({
    coordinator: WorkerConfigSchema.shape.coordinator,
    count: z.coerce.number().int().min(1).max(1_000_000),
    /** A tier ("mid") or a mix ("flagship:0.2,mid:0.45,low:0.35"). */
    profile: ProfileMixSchema.default(ProfileMixSchema.parse("flagship:0.2,mid:0.45,low:0.35")),
    /** Probability that a connected virtual worker drops out within a minute. */
    dropoutPerMin: z.coerce.number().min(0).max(1, "give a probability from 0 to 1").default(0),
    /** A dropped-out worker comes back after a delay drawn uniformly from this range. */
    dropoutDelayMinMs: Ms.default(1_000),
    dropoutDelayMaxMs: Ms.default(10_000),
    /** Sigma of the lognormal (mean 1) factor applied to every service time; 0 for none. */
    jitter: z.coerce.number().min(0).max(3).default(0.2),
    /** Workers dialling (connect + hello + welcome) at once. */
    dialConcurrency: z.coerce.number().int().min(1).max(10_000).default(200),
    reconnectMinMs: Ms.default(250),
    reconnectMaxMs: Ms.default(10_000),
    /** Dial, upgrade and welcome together must take no longer than this. */
    connectTimeoutMs: Ms.default(15_000),
    /** One `GET /api/models/<sha>` may take this long. */
    modelTimeoutMs: Ms.default(30_000),
    /** Spread source addresses over 127.0.x.y: "auto" does so on Linux for a 127.x.x.x coordinator. */
    spreadSourceAddresses: z.union([z.boolean(), z.literal("auto")]).default("auto"),
    maxPayloadBytes: z.coerce.number().int().min(1 << 20).max(2 ** 32).default(512 * (1 << 20)),
    /** Worker token for a coordinator started with tokens; every virtual worker dials with it. */
    token: TokenOptionSchema,
    /** CA certificate to trust for a wss:// coordinator with a self-signed certificate. */
    ca: CaFileSchema.optional(),
  })
  .refine((c) => c.dropoutDelayMinMs <= c.dropoutDelayMaxMs, { message: "must not exceed dropoutDelayMaxMs", path: ["dropoutDelayMinMs"] })
  .refine((c) => c.reconnectMinMs <= c.reconnectMaxMs, { message: "must not exceed reconnectMaxMs", path: ["reconnectMinMs"] });

export type SwarmConfig = z.infer<typeof SwarmConfigSchema>;
export type SwarmOptions = z.input<typeof SwarmConfigSchema>;

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

type VirtualState = "waiting" | "dialling" | "ready" | "closed";

interface PendingShard {
  header: ShardHeader;
  rows: number;
  serviceMs: number;
  outputs: readonly OutputSpec[];
}

interface OutputSpec {
  name: string;
  dtype: TensorSpec["dtype"];
  /** Dims after the batch dim. */
  tail: number[];
}

interface ModelSpec {
  flopsPerSample: number;
  outputs: OutputSpec[];
  /** Set when outputs cannot be shaped without running the model; every shard gets it as shard_error. */
  shapeError: string | null;
}

class VirtualWorker {
  state: VirtualState = "waiting";
  socket: WebSocket | null = null;
  /** Consecutive failed dials, for the backoff. */
  attempt = 0;
  /** Set while a dropout is being simulated, so the close that follows is not a failure. */
  droppingOut = false;
  /** Dial deadline, or the wait before the next dial; never both, none while ready. */
  timer: NodeJS.Timeout | null = null;
  /** Shards held, the first one running; null while idle. */
  queue: PendingShard[] | null = null;
  /** Finishes the running shard. */
  runTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly index: number,
    readonly workerId: string,
    readonly tier: TierName,
    readonly flopsPerSec: number,
    readonly localAddress: string | undefined,
  ) {}

  get name(): string {
    return `virtual-${this.tier}-${this.index}`;
  }
}

/** Source address for the i-th connection: 127.0.a.b with b in 2..254, over 16 × 253 addresses. */
export function loopbackSourceAddress(i: number): string {
  const k = i % (16 * 253);
  return `127.0.${Math.floor(k / 253)}.${2 + (k % 253)}`;
}

function isIpv4Loopback(url: string): boolean {
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(new URL(url).hostname);
}

function httpOrigin(wsUrl: string): string {
  const u = new URL(wsUrl);
  u.protocol = u.protocol === "wss:" ? "https:" : "http:";
  return u.origin;
}

function toBuffer(data: RawData): Buffer {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  return data;
}

const ModelViewSchema = z.object({
  flopsPerSample: z.number().nonnegative(),
  outputs: z.array(IoInfoSchema).min(1),
});

function modelSpec(view: z.infer<typeof ModelViewSchema>): ModelSpec {
  const outputs: OutputSpec[] = [];
  for (const o of view.outputs) {
    if (o.shape.length === 0) {
      return { flopsPerSample: view.flopsPerSample, outputs, shapeError: `output '${o.name}' is a scalar with no batch dim; a virtual worker cannot shape it` };
    }
    const tail: number[] = [];
    for (const d of o.shape.slice(1)) {
      if (typeof d !== "number") {
        return {
          flopsPerSample: view.flopsPerSample,
          outputs,
          shapeError: `output '${o.name}' has symbolic dim '${d}' besides the batch dim [${o.shape.join(",")}]; a virtual worker cannot know its size without running the model`,
        };
      }
      tail.push(d);
    }
    outputs.push({ name: o.name, dtype: o.dtype, tail });
  }
  return { flopsPerSample: view.flopsPerSample, outputs, shapeError: null };
}

/** A standard normal draw (Box-Muller). */
function gaussian(random: () => number): number {
  const u = Math.max(Number.MIN_VALUE, random());
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/** Validates swarm options; a bad value becomes an E_CONFIG error naming the option. */
export function parseSwarmConfig(input: unknown): SwarmConfig {
  return parseConfig(SwarmConfigSchema, input);
}

export class Swarm extends EventEmitter<SwarmEvents> {
  private readonly workers: VirtualWorker[];
  private readonly dialQueue: VirtualWorker[] = [];
  private dialHead = 0;
  private diallingCount = 0;
  private connectedCount = 0;
  private pendingCount = 0;
  private readonly models = new Map<string, Promise<ModelSpec>>();
  private readonly modelBase: string;
  private dropoutTimer: NodeJS.Timeout | null = null;
  private lastDropoutTick = 0;
  private startedAt = 0;
  private state: "idle" | "running" | "closed" = "idle";
  private closing: Promise<void> | null = null;
  private openSockets = 0;
  private onAllSocketsClosed: (() => void) | null = null;
  private readonly counters = { shardsDone: 0, samplesDone: 0, shardErrors: 0, dropouts: 0, connectionFailures: 0 };
  private readonly helloTemplate: Omit<z.infer<typeof HelloSchema>, "workerId" | "name">;
  private loggedCoordinatorError = false;
  /** The first refused dial (a bad token: HTTP 401/403) is logged as an error, later ones at debug. */
  private loggedRefusal = false;

  constructor(
    readonly config: SwarmConfig,
    private readonly log: Logger,
    private readonly random: () => number = Math.random,
  ) {
    super();
    this.modelBase = httpOrigin(config.coordinator);
    const spread = config.spreadSourceAddresses === "auto" ? process.platform === "linux" && isIpv4Loopback(config.coordinator) : config.spreadSourceAddresses;
    const tiers = assignTiers(config.profile, config.count);
    this.workers = tiers.map((tier, i) => new VirtualWorker(i, randomUUID(), tier, TIERS[tier].flopsPerSec, spread ? loopbackSourceAddress(i) : undefined));
    // Checked once with the shared schema, so a bad field is a local error, not a refusal per worker.
    const sample = HelloSchema.parse({
      type: "hello",
      protocol: PROTOCOL_VERSION,
      workerId: randomUUID(),
      name: `virtual-flagship-${config.count}`,
      platform: "virtual",
      arch: "virtual",
      cpus: 1,
      memoryBytes: 0,
      runtime: { name: "simulated", version: SIMULATOR_VERSION },
      threads: 1,
      slots: 1,
      maxCpu: 100,
      virtual: true,
    });
    const { workerId: _id, name: _name, ...template } = sample;
    this.helloTemplate = template;
  }

  /** Counts so far. */
  get stats(): SwarmStats {
    return {
      count: this.workers.length,
      connected: this.connectedCount,
      dialling: this.diallingCount,
      pending: this.pendingCount,
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
          this.clearWork(w);
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
      socket.send(JSON.stringify({ ...this.helloTemplate, workerId: w.workerId, name: w.name }));
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
      const buf = toBuffer(data);
      if (isBinary) this.onShard(w, socket, new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
      else this.onText(w, socket, buf.toString("utf8"));
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

  private onText(w: VirtualWorker, socket: WebSocket, text: string): void {
    let msg;
    try {
      msg = parseCoordinatorText(text);
    } catch (err) {
      this.log.warn({ worker: w.name, err: toEdgepoolError(err).message }, "malformed message from coordinator");
      return;
    }
    if (msg.type === "welcome") {
      if (w.state !== "dialling") return;
      if (w.timer) clearTimeout(w.timer);
      w.timer = null;
      w.state = "ready";
      w.attempt = 0;
      this.diallingCount -= 1;
      this.connectedCount += 1;
      this.emit("workerReady", this.connectedCount);
      if (this.connectedCount === this.workers.length) this.emit("allConnected", Date.now() - this.startedAt);
      this.pumpDials();
    } else if (msg.type === "cancel") {
      this.cancel(w, msg.shardId);
    } else {
      // Log the first refusal loudly (a version mismatch refuses every worker alike).
      const fields = { worker: w.name, code: msg.code, err: msg.message };
      if (this.loggedCoordinatorError) this.log.debug(fields, "coordinator sent an error");
      else this.log.warn(fields, "coordinator sent an error");
      this.loggedCoordinatorError = true;
      if (w.state === "dialling") socket.terminate();
    }
  }

  private onClosed(w: VirtualWorker): void {
    w.socket = null;
    if (w.timer) clearTimeout(w.timer);
    w.timer = null;
    this.clearWork(w);
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

  private model(sha: string): Promise<ModelSpec> {
    let p = this.models.get(sha);
    if (!p) {
      p = (async () => {
        const url = `${this.modelBase}/api/models/${sha}`;
        let res: Response;
        try {
          res = await httpRequest(url, {
            signal: AbortSignal.timeout(this.config.modelTimeoutMs),
            headers: authHeader(this.config.token),
            ...(this.config.ca ? { ca: this.config.ca.pem } : {}),
          });
        } catch (cause) {
          throw new EdgepoolError("E_UNAVAILABLE", `cannot fetch model ${sha} info from ${url}`, { cause });
        }
        if (!res.ok) throw new EdgepoolError(res.status === 404 ? "E_NOT_FOUND" : "E_UNAVAILABLE", `GET ${url} answered HTTP ${res.status}`);
        const parsed = ModelViewSchema.safeParse(await res.json());
        if (!parsed.success) throw new EdgepoolError("E_PROTOCOL", `unexpected model info from ${url}: ${parsed.error.issues[0]?.message ?? "invalid"}`);
        const spec = modelSpec(parsed.data);
        this.log.info({ model: sha, flopsPerSample: spec.flopsPerSample, outputs: spec.outputs.length, shapeError: spec.shapeError }, "model info fetched");
        return spec;
      })();
      this.models.set(sha, p);
      // A failed fetch is not cached: the next shard of that model tries again.
      p.catch(() => {
        if (this.models.get(sha) === p) this.models.delete(sha);
      });
    }
    return p;
  }

  private onShard(w: VirtualWorker, socket: WebSocket, bytes: Uint8Array): void {
    let header: ShardHeader;
    try {
      header = parseShardFrame(bytes).header;
    } catch (err) {
      this.log.warn({ worker: w.name, err: toEdgepoolError(err).message }, "malformed shard frame");
      return;
    }
    const rows = header.end - header.start;
    this.model(header.model).then(
      (spec) => {
        if (w.socket !== socket || w.state !== "ready") return;
        if (spec.shapeError) {
          this.sendShardError(w, header, new EdgepoolError("E_SHAPE", spec.shapeError));
          return;
        }
        const mean = (rows * spec.flopsPerSample * 1000) / w.flopsPerSec;
        const sigma = this.config.jitter;
        // Mean-one lognormal: exp(σZ − σ²/2).
        const factor = sigma > 0 ? Math.exp(sigma * gaussian(this.random) - (sigma * sigma) / 2) : 1;
        this.enqueue(w, { header, rows, serviceMs: mean * factor, outputs: spec.outputs });
      },
      (err: unknown) => {
        if (w.socket !== socket || w.state !== "ready") return;
        this.sendShardError(w, header, toEdgepoolError(err, "E_UNAVAILABLE"));
      },
    );
  }

  private enqueue(w: VirtualWorker, shard: PendingShard): void {
    this.pendingCount += 1;
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
      this.pendingCount -= 1;
      this.finish(w, head);
      this.runHead(w);
    }, head.serviceMs);
  }

  private finish(w: VirtualWorker, shard: PendingShard): void {
    if (w.state !== "ready" || !w.socket) return;
    const result: ResultHeader = {
      type: "result",
      shardId: shard.header.shardId,
      jobId: shard.header.jobId,
      computeMs: Math.round(shard.serviceMs * 1000) / 1000,
      throttleMs: 0,
    };
    // A fresh frame is zero-filled: the outputs need no writing.
    const { frame } = planFrame(result, shard.outputs.map((o) => ({ name: o.name, dtype: o.dtype, dims: [shard.rows, ...o.tail] })));
    w.socket.send(frame, { binary: true });
    this.counters.shardsDone += 1;
    this.counters.samplesDone += shard.rows;
  }

  private cancel(w: VirtualWorker, shardId: string): void {
    const q = w.queue;
    if (!q) return;
    const i = q.findIndex((s) => s.header.shardId === shardId);
    if (i < 0) return;
    q.splice(i, 1);
    this.pendingCount -= 1;
    if (i === 0) {
      if (w.runTimer) clearTimeout(w.runTimer);
      w.runTimer = null;
      this.runHead(w);
    }
  }

  private clearWork(w: VirtualWorker): void {
    if (w.runTimer) clearTimeout(w.runTimer);
    w.runTimer = null;
    if (w.queue) this.pendingCount -= w.queue.length;
    w.queue = null;
  }

  private sendShardError(w: VirtualWorker, header: ShardHeader, e: EdgepoolError): void {
    this.counters.shardErrors += 1;
    this.log.debug({ worker: w.name, shardId: header.shardId, code: e.code, err: e.message }, "virtual shard failed");
    w.socket?.send(JSON.stringify({ type: "shard_error", shardId: header.shardId, jobId: header.jobId, code: e.code, message: e.message.slice(0, 4096) }));
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
