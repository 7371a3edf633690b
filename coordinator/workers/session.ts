/**
 * One connected worker as the coordinator sees it: its hello, its credit (slots plus
 * prefetch: shards it may hold at once, so the next one is already there when one finishes),
 * the dispatches in flight on it, its measured rate per model, and its counters. State:
 * `handshake` until a valid hello, then `ready`; `draining` once it says it is leaving (it
 * finishes what it runs but gets nothing new); `closed` when the socket goes.
 */
import type { WebSocket } from "ws";
import { sendCoalesced } from "../../shared/node/ws-send.js";
import type { Hello } from "../../shared/protocol/messages.js";
import type { Canary } from "../scheduling/canary.js";
import type { Job, ShardTask } from "../jobs/job.js";

export interface Dispatch {
  shardId: string;
  job: Job;
  task: ShardTask;
  worker: WorkerSession;
  sentAt: number;
  /** When this dispatch is given up on if no answer came (ms since epoch). */
  deadline: number;
  /** What the rate on record predicted, in ms (0 when the worker was not yet measured). */
  expectedMs: number;
  /** A speculative copy of a shard already running elsewhere. */
  duplicate: boolean;
  /** A canary shard: its answer is checked against this, and never written. */
  canary?: Canary;
}

/** Round trip that a worker's queue of shards should cover (ms). */
const PIPELINE_MS = 20;
/** Most shards queued per slot beyond the one running. */
const MAX_PREFETCH = 32;
/** Most bytes of shard frames a deep queue may hold per slot. */
const MAX_QUEUED_BYTES = 4 * 1024 * 1024;

/**
 * Shards a worker may hold at once: its slots plus shards queued behind them, so the next
 * one is already there when one finishes. Short shards need a deeper queue to hide the round
 * trip to the coordinator: the queue grows to cover PIPELINE_MS of the worker's measured
 * shard time (`shardMs`), up to MAX_PREFETCH per slot, but never holds more than
 * MAX_QUEUED_BYTES of frames per slot: large shards need no depth, and their frames are what
 * fills memory. Never less than the slots and `prefetch` shards behind them.
 */
export function creditFor(slots: number, prefetch: number, shardMs: number, frameBytes: number): number {
  const byTime = Math.ceil(PIPELINE_MS / shardMs);
  const byBytes = frameBytes > 0 ? Math.floor(MAX_QUEUED_BYTES / frameBytes) : MAX_PREFETCH;
  const deep = Math.min(MAX_PREFETCH, byTime, byBytes) * slots;
  return slots + Math.max(prefetch, deep);
}

export type WorkerSessionState = "handshake" | "ready" | "draining" | "closed";

export class WorkerSession {
  state: WorkerSessionState = "handshake";
  hello: Hello | null = null;
  readonly inflight = new Map<string, Dispatch>();
  readonly connectedAt = Date.now();
  lastSeen = Date.now();
  shardsDone = 0;
  samplesDone = 0;
  computeMs = 0;
  shardErrors = 0;
  malformed = 0;
  /** Refused (a limit, a bad hello, too much garbage): closing, and nothing more it sends is read. */
  refused = false;
  rowsSent = 0;
  shardsSent = 0;
  /** Binary messages received, counted against shardsSent by the rate limit. */
  resultsReceived = 0;
  lastShardRows = 0;
  /** Verified shards where this worker's answer agreed with the accepted one, and where it did not. */
  agreements = 0;
  disagreements = 0;
  /** Caught returning wrong results: connected, but given no work. */
  quarantined = false;
  /** Smoothed busy milliseconds (compute plus CPU-cap rest) per shard, for the queue depth. */
  private shardMsAvg = 0;
  /** Smoothed bytes of the shard frames sent, for the queue depth. */
  private frameBytesAvg = 0;
  /** Set once the worker said it is draining (state may have moved on to closed since). */
  drained = false;
  /** Effective samples/s by model sha256 (compute plus CPU-cap idling), smoothed. */
  readonly rates = new Map<string, number>();
  /** Work done per model sha256, for the report. */
  readonly perModel = new Map<string, { shards: number; samples: number; computeMs: number; throttleMs: number }>();

  constructor(
    readonly connId: string,
    readonly socket: WebSocket,
    readonly remote: string,
    private readonly prefetch: number,
  ) {}

  get name(): string {
    return this.hello?.name ?? this.connId;
  }

  /** The worker's persistent id (the same across reconnects), or the connection's before hello. */
  get id(): string {
    return this.hello?.workerId ?? this.connId;
  }

  /** Credit without a deep queue: the slots and one shard waiting behind each. */
  get baseCredit(): number {
    return (this.hello?.slots ?? 0) + this.prefetch;
  }

  /** Shards this worker may hold at once (creditFor), once its shard time is measured. */
  get credit(): number {
    if (this.shardMsAvg <= 0) return this.baseCredit;
    return creditFor(this.hello?.slots ?? 0, this.prefetch, this.shardMsAvg, this.frameBytesAvg);
  }

  /** Records the size of a shard frame sent to this worker (for the queue depth). */
  noteFrameBytes(bytes: number): void {
    this.frameBytesAvg = this.frameBytesAvg > 0 ? 0.8 * this.frameBytesAvg + 0.2 * bytes : bytes;
  }

  get freeCredit(): number {
    return this.state === "ready" && !this.quarantined ? Math.max(0, this.credit - this.inflight.size) : 0;
  }

  /**
   * Trust from verified shards (redundancy > 1): the share of its verified answers that agreed
   * with the majority, with one agreement and one disagreement assumed up front, so a new
   * worker starts at 0.5 and one bad answer is not a verdict.
   */
  get trust(): number {
    return (this.agreements + 1) / (this.agreements + this.disagreements + 2);
  }

  /** Samples per second of compute time, as measured on this worker so far. */
  get samplesPerSec(): number {
    return this.computeMs > 0 ? (this.samplesDone * 1000) / this.computeMs : 0;
  }

  get virtual(): boolean {
    return this.hello?.virtual ?? false;
  }

  /** Records an accepted shard. */
  recordDone(model: string, rows: number, computeMs: number, throttleMs: number): void {
    const ms = computeMs + throttleMs;
    this.shardMsAvg = this.shardMsAvg > 0 ? 0.8 * this.shardMsAvg + 0.2 * ms : ms;
    this.shardsDone += 1;
    this.samplesDone += rows;
    this.computeMs += computeMs;
    const m = this.perModel.get(model) ?? { shards: 0, samples: 0, computeMs: 0, throttleMs: 0 };
    m.shards += 1;
    m.samples += rows;
    m.computeMs += computeMs;
    m.throttleMs += throttleMs;
    this.perModel.set(model, m);
  }

  /** What the report needs to know about this worker. */
  toReport(connected: boolean) {
    const h = this.hello;
    const profile = h?.virtual ? (/^virtual-([^-]+)-/.exec(h.name)?.[1] ?? null) : null;
    return {
      id: this.id,
      name: this.name,
      platform: h?.platform ?? "unknown",
      arch: h?.arch ?? "unknown",
      cpus: h?.cpus ?? 0,
      threads: h?.threads ?? 0,
      slots: h?.slots ?? 0,
      maxCpu: h?.maxCpu ?? 100,
      virtual: this.virtual,
      profile,
      runtime: h?.runtime ?? { name: "unknown", version: "unknown" },
      connected,
      perModel: [...this.perModel].map(([model, m]) => ({ model, ...m })),
    };
  }

  /** True when nothing is in flight on this worker. */
  get idle(): boolean {
    return this.state === "ready" && this.inflight.size === 0;
  }

  /** Sends a message; `sent` (if given) is called once it is written out or has failed. */
  send(data: string | Uint8Array, sent?: (err?: Error) => void): boolean {
    if (this.state === "closed" || this.socket.readyState !== this.socket.OPEN) return false;
    sendCoalesced(this.socket, data, sent);
    return true;
  }

  toStatus() {
    const h = this.hello;
    return {
      id: h?.workerId ?? this.connId,
      name: this.name,
      state: this.state,
      busy: this.inflight.size > 0,
      platform: h?.platform ?? "unknown",
      arch: h?.arch ?? "unknown",
      cpus: h?.cpus ?? 0,
      memoryBytes: h?.memoryBytes ?? 0,
      runtime: h?.runtime ?? { name: "unknown", version: "unknown" },
      backend: h?.backend ?? null,
      userAgent: h?.userAgent ?? null,
      threads: h?.threads ?? 0,
      slots: h?.slots ?? 0,
      virtual: h?.virtual ?? false,
      remote: this.remote,
      inflight: this.inflight.size,
      shardsDone: this.shardsDone,
      samplesDone: this.samplesDone,
      shardErrors: this.shardErrors,
      lastShardRows: this.lastShardRows,
      meanShardRows: this.shardsSent > 0 ? this.rowsSent / this.shardsSent : 0,
      maxCpu: h?.maxCpu ?? 100,
      computeMs: Math.round(this.computeMs),
      samplesPerSec: this.samplesPerSec,
      connectedAt: this.connectedAt,
      lastSeen: this.lastSeen,
      trust: this.trust,
      agreements: this.agreements,
      disagreements: this.disagreements,
      quarantined: this.quarantined,
    };
  }
}

export type WorkerStatus = ReturnType<WorkerSession["toStatus"]>;
