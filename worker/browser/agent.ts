/**
 * The browser worker's side of the protocol, on the join page's main thread: the shared
 * protocol session (worker/core/session.ts) over the page's WebSocket, with the compute in
 * the engine (a Web Worker, see engine-client.ts), pause reasons (the user, the battery) and
 * redialling with backoff.
 *
 * State (`AgentState`, a view of the session's): `connecting` (dialling, or waiting for
 * `welcome` after our `hello`) → `ready` (shards accepted) → back to `connecting` whenever the
 * socket drops. Pausing from `ready` goes through `pausing` (the session's `draining`): the
 * page sends `draining` naming the shards it has queued (the coordinator re-queues them at
 * once and sends nothing more), lets the running shard finish and sends its result, then
 * closes the socket: `paused` (the session's `idle`). From `connecting` it is `paused` at
 * once. The protocol has no "pause": a paused page has left the pool, and resuming joins it
 * again (same worker id) through `connecting`. `failed` (the session's `closed`) is final (a
 * protocol version mismatch, an engine that cannot run): only a reload helps.
 *
 * Shards: one runs at a time (slots 1); the coordinator's prefetch keeps the next queued
 * here. The session answers each once, drops answers for shards that were cancelled or whose
 * connection dropped, and ignores malformed input (logged here).
 */
import { backoffDelay } from "../../shared/backoff.js";
import { type EdgepoolError, toEdgepoolError } from "../../shared/errors.js";
import type { Executor, ShardAnswers } from "../core/executor.js";
import type { SessionHooks } from "../core/hooks.js";
import { WorkerSession } from "../core/session.js";
import type { HeldShard } from "../core/shard.js";
import type { SessionState } from "../core/state.js";
import type { Transport } from "../core/transport.js";
import type { EngineClient } from "./engine-client.js";

export type AgentState = "connecting" | "ready" | "pausing" | "paused" | "failed";
export type PauseReason = "user" | "battery";

export interface AgentOptions {
  wsUrl: string;
  /** WebSocket subprotocols to offer (a worker token travels as `edgepool.token.<token>`). */
  protocols: string[];
  /** Resolves the coordinator's `modelPath` to an absolute URL prefix. */
  modelBase: (modelPath: string) => string;
  /** The hello text (buildBrowserHello). */
  hello: string;
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

const RECENT = 8;

/** The page's state for a session state; `idle` is "connecting" until start(), "paused" after. */
function agentState(s: SessionState, started: boolean): AgentState {
  switch (s) {
    case "idle":
      return started ? "paused" : "connecting";
    case "connecting":
    case "ready":
      return s;
    case "draining":
      return "pausing";
    case "closed":
      return "failed";
  }
}

export class BrowserAgent {
  private socket: WebSocket | null = null;
  private attempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly session: WorkerSession;
  /** The shard in the engine now (maybe of a connection since lost: the engine cannot be interrupted). */
  private running: HeldShard | null = null;
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
  ) {
    const isOpen = (): boolean => this.socket?.readyState === WebSocket.OPEN;
    const transport: Transport = {
      get isOpen() {
        return isOpen();
      },
      sendText: (text) => this.send(text),
      sendBinary: (frame) => this.send(frame),
      close: (code, reason) => this.socket?.close(code, reason),
    };
    const executor: Executor = {
      canRun: () => this.running === null,
      run: (batch, answers) => this.runShard(batch[0]!, answers),
    };
    this.session = new WorkerSession(transport, executor, this.sessionHooks(), {
      helloTimeoutMs: opts.helloTimeoutMs,
      modelBase: opts.modelBase,
      who: "browser worker",
    });
  }

  get state(): AgentState {
    return agentState(this.session.state, this.started);
  }

  snapshot(): AgentSnapshot {
    let rows = 0;
    let ms = 0;
    for (const r of this.recent) {
      rows += r.rows;
      ms += r.computeMs;
    }
    return {
      state: this.state,
      pauseReasons: [...this.reasons],
      running: this.running ? { jobId: this.running.header.jobId, rows: this.running.rows, since: this.runningSince } : null,
      queued: this.session.queued,
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
    if (this.reasons.size === 0) {
      this.session.start(this.opts.hello);
      this.dial();
    }
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
    else if (this.state === "paused") this.resume();
    this.changed();
  }

  /** Stops for good (the page is going away): the socket closes, the coordinator re-queues. */
  close(): void {
    this.clearReconnect();
    this.session.close();
    this.socket?.close(1001, "page closed");
  }

  // ---- connection ----

  private dial(): void {
    this.clearReconnect();
    const socket = new WebSocket(this.opts.wsUrl, this.opts.protocols);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    let opened = false;
    socket.addEventListener("open", () => {
      if (this.socket !== socket) return;
      opened = true;
      this.attempt = 0;
      this.guard(() => {
        if (!this.session.opened()) socket.close(1000, "not joining");
      });
    });
    socket.addEventListener("message", (e: MessageEvent<unknown>) => {
      if (this.socket !== socket) return;
      this.guard(() => {
        if (typeof e.data === "string") this.session.text(e.data);
        else if (e.data instanceof ArrayBuffer) this.session.binary(new Uint8Array(e.data));
        this.changed();
      });
    });
    socket.addEventListener("close", (e: CloseEvent) => {
      if (this.socket !== socket) return;
      this.guard(() => this.onClosed(e.code, e.reason, opened));
    });
  }

  private onClosed(code: number, reason: string, opened: boolean): void {
    this.socket = null;
    this.clearReconnect();
    this.connectedSince = null;
    const s = this.session.state;
    this.session.lost();
    if (!opened && s === "connecting") {
      // Browsers hide why a WebSocket was refused (a 401 looks like a network error).
      this.lastError = `cannot reach the coordinator at ${this.opts.wsUrl}${this.opts.protocols.length > 1 ? "" : " (if it requires a worker token, open the join link that carries one: …/join#token=…)"}; retrying`;
    }
    if (s === "ready" || s === "connecting") {
      if (s === "ready") this.log("warn", `connection to the coordinator lost (${code}${reason ? ` ${reason}` : ""}); reconnecting`);
      const delay = backoffDelay(this.attempt++, this.opts.reconnectMinMs, this.opts.reconnectMaxMs);
      this.reconnectTimer = setTimeout(() => this.dial(), delay);
    } else if (s === "draining") {
      this.session.leave();
      this.afterPause();
    }
    this.changed();
  }

  private sessionHooks(): SessionHooks {
    return {
      ready: () => {
        this.connectedSince = Date.now();
        this.lastError = null;
        this.log("info", "joined the pool; waiting for work");
      },
      helloTimeout: (ms) => this.log("warn", `no welcome from the coordinator within ${ms} ms; reconnecting`),
      malformed: (kind, e) => this.log("warn", `ignored a malformed ${kind === "text" ? "message from the coordinator" : "shard frame"}: ${e.message}`),
      coordinatorError: (msg) => {
        this.lastError = `${msg.code}: ${msg.message}`;
        this.log("error", `the coordinator says ${msg.code}: ${msg.message}`);
      },
      // Reconnecting cannot fix a version mismatch: the page and the coordinator must match.
      fatal: (e) => this.fail(e),
    };
  }

  // ---- shards ----

  /** Hands one shard's frame to the engine (transferred, not copied) and answers it when the engine does. */
  private runShard(shard: HeldShard, answers: ShardAnswers): void {
    this.running = shard;
    this.runningSince = Date.now();
    this.opts.engine
      .run(shard.frame.buffer as ArrayBuffer, shard.modelBase)
      .then(
        (out) => {
          if (!answers.result(shard, new Uint8Array(out.frame))) return;
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
          answers.error(shard, e);
          // An engine that died cannot run the next shard either.
          if (e.code === "E_INTERNAL" || e.code === "E_CANCELLED") this.fail(e);
        },
      )
      .finally(() => {
        this.running = null;
        if (this.session.state === "draining") this.socket?.close(1000, "paused");
        this.session.pump();
        this.changed();
      })
      .catch((err: unknown) => this.log("error", `internal error after a shard: ${toEdgepoolError(err).message}`));
  }

  private send(data: string | Uint8Array): boolean {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(data);
    return true;
  }

  // ---- pause and resume ----

  private pause(): void {
    const s = this.session.state;
    if (s === "ready") {
      const { released } = this.session.drain();
      this.log("info", `pausing: handed back ${released} queued shard(s)${this.running ? "; finishing the running one" : ""}`);
      if (!this.running) this.socket?.close(1000, "paused");
    } else if (s === "connecting") {
      this.clearReconnect();
      const socket = this.socket;
      // Its close event is not ours to handle any more.
      this.socket = null;
      this.session.lost();
      this.session.leave();
      socket?.close(1000, "paused");
      this.log("info", "paused");
    }
  }

  private resume(): void {
    this.session.start(this.opts.hello);
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
    if (this.session.state === "closed") return;
    this.lastError = `${e.code}: ${e.message}`;
    this.log("error", `stopped: ${e.message}`);
    this.clearReconnect();
    this.session.close();
    this.socket?.close(1000, e.code);
    this.changed();
  }

  private clearReconnect(): void {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
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
