/**
 * The browser worker's side of the protocol, on the join page's main thread; the compute
 * happens in the engine (a Web Worker, see engine-client.ts).
 *
 * State: `connecting` (dialling, or waiting for `welcome` after our `hello`) → `ready`
 * (shards accepted) → back to `connecting` whenever the socket drops, redialling with
 * backoff. Pausing from `ready` goes through `pausing`: the page sends `draining` naming the
 * shards it has queued (the coordinator re-queues them at once and sends nothing more), lets
 * the running shard finish and sends its result, then closes the socket: `paused`. From
 * `connecting` it is `paused` at once. The protocol has no "pause": a paused page has left
 * the pool, and resuming joins it again (same worker id) through `connecting`. `failed` is
 * final (a protocol version mismatch, an engine that cannot run): only a reload helps.
 *
 * Shards: one runs at a time (slots 1); the coordinator's prefetch keeps the next queued
 * here. Each is answered with one `result` frame or one `shard_error`, except shards named in
 * `draining`, and shards whose connection dropped: the coordinator re-queued those, so their
 * results are discarded. A `cancel` drops a queued shard, or marks the running one so its
 * result is discarded (ONNX Runtime cannot be interrupted mid-run). Nothing the coordinator
 * sends can break the page: malformed input is logged and ignored.
 */
import { backoffDelay } from "../../shared/backoff.js";
import { EdgepoolError, toEdgepoolError } from "../../shared/errors.js";
import {
  DrainingSchema,
  ShardErrorSchema,
  checkProtocolVersion,
  parseCoordinatorText,
  parseShardFrame,
  type Cancel,
  type Hello,
  type ShardHeader,
  type Welcome,
} from "../../shared/protocol/messages.js";
import type { EngineClient } from "./engine-client.js";

export type AgentState = "connecting" | "ready" | "pausing" | "paused" | "failed";
export type PauseReason = "user" | "battery";

const TRANSITIONS: Record<AgentState, readonly AgentState[]> = {
  connecting: ["ready", "paused", "failed"],
  ready: ["connecting", "pausing", "failed"],
  pausing: ["paused", "failed"],
  paused: ["connecting", "failed"],
  failed: [],
};

export interface AgentOptions {
  wsUrl: string;
  /** WebSocket subprotocols to offer (a worker token travels as `edgepool.token.<token>`). */
  protocols: string[];
  /** Resolves the coordinator's `modelPath` to an absolute URL prefix. */
  modelBase: (modelPath: string) => string;
  hello: Hello;
  engine: EngineClient;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  helloTimeoutMs: number;
}

export interface ShardRecord {
  rows: number;
  computeMs: number;
  at: number;
}

export interface AgentSnapshot {
  state: AgentState;
  pauseReasons: PauseReason[];
  /** The shard computing now, if any. */
  running: { jobId: string; rows: number; since: number } | null;
  queued: number;
  shardsDone: number;
  samplesDone: number;
  computeMs: number;
  shardErrors: number;
  /** Samples per second of compute over the last few shards. */
  recentSamplesPerSec: number;
  lastError: string | null;
  connectedSince: number | null;
}

export interface AgentEvents {
  change(snapshot: AgentSnapshot): void;
  log(level: "info" | "warn" | "error", message: string): void;
}

interface Task {
  header: ShardHeader;
  frame: ArrayBuffer;
  epoch: number;
  cancelled: boolean;
}

const RECENT = 8;

export class BrowserAgent {
  private stateValue: AgentState = "connecting";
  private socket: WebSocket | null = null;
  private epoch = 0;
  private attempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private helloTimer: ReturnType<typeof setTimeout> | null = null;
  private modelBase: string | null = null;
  private readonly queue: Task[] = [];
  private running: Task | null = null;
  private runningSince = 0;
  private readonly reasons = new Set<PauseReason>();
  private readonly recent: ShardRecord[] = [];
  private stats = { shardsDone: 0, samplesDone: 0, computeMs: 0, shardErrors: 0 };
  private lastError: string | null = null;
  private connectedSince: number | null = null;
  private started = false;

  constructor(
    private readonly opts: AgentOptions,
    private readonly events: AgentEvents,
  ) {}

  get state(): AgentState {
    return this.stateValue;
  }

  snapshot(): AgentSnapshot {
    let rows = 0;
    let ms = 0;
    for (const r of this.recent) {
      rows += r.rows;
      ms += r.computeMs;
    }
    return {
      state: this.stateValue,
      pauseReasons: [...this.reasons],
      running: this.running ? { jobId: this.running.header.jobId, rows: this.running.header.end - this.running.header.start, since: this.runningSince } : null,
      queued: this.queue.length,
      ...this.stats,
      recentSamplesPerSec: ms > 0 ? (rows * 1000) / ms : 0,
      lastError: this.lastError,
      connectedSince: this.connectedSince,
    };
  }

  /** Dials the coordinator (unless a pause reason is already set). */
  start(): void {
    if (this.started) return;
    this.started = true;
    if (this.reasons.size > 0) this.transition("paused");
    else this.dial();
    this.changed();
  }

  /** Sets or clears one reason to pause; the page pauses while any reason is set. */
  setPaused(reason: PauseReason, on: boolean): void {
    const had = this.reasons.size > 0;
    if (on) this.reasons.add(reason);
    else this.reasons.delete(reason);
    const want = this.reasons.size > 0;
    if (!this.started || had === want) {
      this.changed();
      return;
    }
    if (want) this.pause();
    else if (this.stateValue === "paused") this.resume();
    this.changed();
  }

  /** Stops for good (the page is going away): the socket closes, the coordinator re-queues. */
  close(): void {
    this.clearTimers();
    if (this.stateValue !== "failed") this.transition("failed");
    this.socket?.close(1001, "page closed");
  }

  // ---- connection ----

  private dial(): void {
    this.clearTimers();
    const socket = new WebSocket(this.opts.wsUrl, this.opts.protocols);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    let opened = false;
    socket.addEventListener("open", () => {
      if (this.socket !== socket) return;
      opened = true;
      this.attempt = 0;
      socket.send(JSON.stringify(this.opts.hello));
      this.helloTimer = setTimeout(() => {
        this.log("warn", `no welcome from the coordinator within ${this.opts.helloTimeoutMs} ms; reconnecting`);
        socket.close(4000, "no welcome");
      }, this.opts.helloTimeoutMs);
    });
    socket.addEventListener("message", (e: MessageEvent<unknown>) => {
      if (this.socket !== socket) return;
      this.guard(() => {
        if (typeof e.data === "string") this.onText(e.data);
        else if (e.data instanceof ArrayBuffer) this.onBinary(e.data);
      });
    });
    socket.addEventListener("close", (e: CloseEvent) => {
      if (this.socket !== socket) return;
      this.guard(() => this.onClosed(e.code, e.reason, opened));
    });
  }

  private onClosed(code: number, reason: string, opened: boolean): void {
    this.socket = null;
    this.clearTimers();
    this.epoch += 1;
    this.modelBase = null;
    this.connectedSince = null;
    this.queue.length = 0;
    const s = this.stateValue;
    if (!opened && s === "connecting") {
      // Browsers hide why a WebSocket was refused (a 401 looks like a network error).
      this.lastError = `cannot reach the coordinator at ${this.opts.wsUrl}${this.opts.protocols.length > 1 ? "" : " (if it requires a worker token, open the join link that carries one: …/join#token=…)"}; retrying`;
    }
    if (s === "ready" || s === "connecting") {
      if (s === "ready") {
        this.transition("connecting");
        this.log("warn", `connection to the coordinator lost (${code}${reason ? ` ${reason}` : ""}); reconnecting`);
      }
      const delay = backoffDelay(this.attempt++, this.opts.reconnectMinMs, this.opts.reconnectMaxMs);
      this.reconnectTimer = setTimeout(() => this.dial(), delay);
    } else if (s === "pausing") {
      this.transition("paused");
      this.afterPause();
    }
    this.changed();
  }

  private onText(text: string): void {
    let msg;
    try {
      msg = parseCoordinatorText(text);
    } catch (err) {
      this.log("warn", `ignored a malformed message from the coordinator: ${toEdgepoolError(err).message}`);
      return;
    }
    if (msg.type === "welcome") this.onWelcome(msg);
    else if (msg.type === "cancel") this.onCancel(msg);
    else {
      this.lastError = `${msg.code}: ${msg.message}`;
      this.log("error", `the coordinator says ${msg.code}: ${msg.message}`);
      // Reconnecting cannot fix a version mismatch: the page and the coordinator must match.
      if (msg.code === "E_VERSION") this.fail(new EdgepoolError("E_VERSION", msg.message));
      this.changed();
    }
  }

  private onWelcome(msg: Welcome): void {
    if (this.stateValue !== "connecting" || this.helloTimer === null) {
      this.log("warn", `ignored an unexpected welcome while ${this.stateValue}`);
      return;
    }
    try {
      checkProtocolVersion(msg.protocol, "the coordinator");
    } catch (err) {
      this.fail(toEdgepoolError(err));
      return;
    }
    this.clearTimers();
    this.modelBase = this.opts.modelBase(msg.modelPath);
    this.connectedSince = Date.now();
    this.lastError = null;
    this.transition("ready");
    this.log("info", "joined the pool; waiting for work");
    this.changed();
  }

  private onCancel(msg: Cancel): void {
    const i = this.queue.findIndex((t) => t.header.shardId === msg.shardId);
    if (i >= 0) this.queue.splice(i, 1);
    else if (this.running?.header.shardId === msg.shardId) this.running.cancelled = true;
    this.changed();
  }

  private onBinary(buffer: ArrayBuffer): void {
    if (this.stateValue !== "ready" || this.modelBase === null) return; // pausing: nothing new
    let header: ShardHeader;
    try {
      header = parseShardFrame(new Uint8Array(buffer)).header;
    } catch (err) {
      this.log("warn", `ignored a malformed shard frame: ${toEdgepoolError(err).message}`);
      return;
    }
    if (this.running?.header.shardId === header.shardId || this.queue.some((t) => t.header.shardId === header.shardId)) {
      this.log("warn", `ignored shard ${header.shardId}: already held`);
      return;
    }
    this.queue.push({ header, frame: buffer, epoch: this.epoch, cancelled: false });
    this.pump();
    this.changed();
  }

  // ---- shards ----

  private pump(): void {
    if (this.running || this.stateValue !== "ready" || this.modelBase === null) return;
    const task = this.queue.shift();
    if (!task) return;
    this.running = task;
    this.runningSince = Date.now();
    const modelBase = this.modelBase;
    this.opts.engine
      .run(task.frame, modelBase)
      .then(
        (out) => {
          if (!this.current(task)) return;
          this.send(out.frame);
          this.stats.shardsDone += 1;
          this.stats.samplesDone += out.rows;
          this.stats.computeMs += out.computeMs;
          this.recent.push({ rows: out.rows, computeMs: out.computeMs, at: Date.now() });
          if (this.recent.length > RECENT) this.recent.shift();
        },
        (err: unknown) => {
          const e = toEdgepoolError(err, "E_INFERENCE");
          this.stats.shardErrors += 1;
          this.lastError = `${e.code}: ${e.message}`;
          this.log("error", `shard failed: ${e.code} ${e.message}`);
          if (this.current(task)) {
            const m = ShardErrorSchema.safeParse({ type: "shard_error", shardId: task.header.shardId, jobId: task.header.jobId, code: e.code, message: e.message.slice(0, 4096) });
            if (m.success) this.send(JSON.stringify(m.data));
          }
          // An engine that died cannot run the next shard either.
          if (e.code === "E_INTERNAL" || e.code === "E_CANCELLED") this.fail(e);
        },
      )
      .finally(() => {
        this.running = null;
        if (this.stateValue === "pausing") this.socket?.close(1000, "paused");
        this.pump();
        this.changed();
      })
      .catch((err: unknown) => this.log("error", `internal error after a shard: ${toEdgepoolError(err).message}`));
  }

  /** True while the task's answer is still wanted: not cancelled, same connection. */
  private current(task: Task): boolean {
    return !task.cancelled && task.epoch === this.epoch && this.socket !== null;
  }

  private send(data: string | ArrayBuffer): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(data);
  }

  // ---- pause and resume ----

  private pause(): void {
    const s = this.stateValue;
    if (s === "ready") {
      this.transition("pausing");
      const released = this.queue.splice(0).map((t) => t.header.shardId);
      const msg = DrainingSchema.safeParse({ type: "draining", released });
      if (msg.success) this.send(JSON.stringify(msg.data));
      this.log("info", `pausing: handed back ${released.length} queued shard(s)${this.running ? "; finishing the running one" : ""}`);
      if (!this.running) this.socket?.close(1000, "paused");
    } else if (s === "connecting") {
      this.clearTimers();
      const socket = this.socket;
      this.socket = null;
      this.epoch += 1;
      socket?.close(1000, "paused");
      this.transition("paused");
      this.log("info", "paused");
    }
  }

  private resume(): void {
    this.transition("connecting");
    this.log("info", "resuming: joining the pool again");
    this.dial();
  }

  /** A pause that completed while its reasons were cleared rejoins at once. */
  private afterPause(): void {
    this.log("info", "paused: this device has left the pool for now");
    if (this.reasons.size === 0) this.resume();
  }

  // ---- plumbing ----

  private fail(e: EdgepoolError): void {
    if (this.stateValue === "failed") return;
    this.lastError = `${e.code}: ${e.message}`;
    this.log("error", `stopped: ${e.message}`);
    this.clearTimers();
    this.transition("failed");
    this.socket?.close(1000, e.code);
    this.changed();
  }

  private transition(to: AgentState): void {
    const from = this.stateValue;
    if (from === to) return;
    if (!TRANSITIONS[from].includes(to)) throw new EdgepoolError("E_STATE", `browser worker cannot go from ${from} to ${to}`);
    this.stateValue = to;
  }

  private clearTimers(): void {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.helloTimer) clearTimeout(this.helloTimer);
    this.reconnectTimer = null;
    this.helloTimer = null;
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log("error", `internal error: ${toEdgepoolError(err).message}`);
    }
  }

  private log(level: "info" | "warn" | "error", message: string): void {
    try {
      this.events.log(level, message);
    } catch {
      // A broken view must not stop the worker.
    }
  }

  private changed(): void {
    try {
      this.events.change(this.snapshot());
    } catch {
      // As above.
    }
  }
}
