/**
 * One connected worker as the coordinator sees it: its hello, its credit (slots plus
 * prefetch: shards it may hold at once, so the next one is already there when one finishes),
 * how many shards it holds, its measured rate per model, and its counters.
 *
 * State machine (a transition not listed throws E_STATE):
 *
 *   handshake --markReady(hello)--> ready --startDraining()--> draining
 *       \                             |                           |
 *        `----------- close() --------+------------ close() ------'--> closed
 *
 * `handshake` until a valid hello; `ready` takes work; `draining` once it says it is leaving
 * (it finishes what it runs but gets nothing new); `closed` when its connection goes, which
 * is final (close() again does nothing). Quarantine is not a state but a mark that any state
 * can take once: a worker caught returning wrong results stays connected and gets no work.
 *
 * The session talks to its peer through a narrow `WorkerLink`, not a WebSocket, so that tests
 * can drive it with a fake. Every field is changed here, through a method; the scheduler and
 * the gateway only call them.
 */
import { EdgepoolError } from "../../shared/errors.js";
import type { Hello } from "../../shared/protocol/messages.js";

/** What a session needs of its connection (gateway.ts adapts a ws WebSocket to it). */
export interface WorkerLink {
  /** Queues a message (binary unless a string); `sent` is called once written out or failed. */
  send(data: string | Uint8Array, sent?: (err?: Error) => void): void;
  /** Starts a close handshake with a WebSocket close code. */
  close(code: number, reason: string): void;
  /** Drops the connection at once. */
  terminate(): void;
  ping(): void;
  /** Stops reading from the peer. */
  pause(): void;
  readonly isOpen: boolean;
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
  private stateValue: WorkerSessionState = "handshake";
  private helloValue: Hello | null = null;
  private held = 0;
  readonly connectedAt = Date.now();
  private seen = Date.now();
  private done = { shards: 0, samples: 0, computeMs: 0 };
  private errors = 0;
  private malformedCount = 0;
  private refusedValue = false;
  private sent = { shards: 0, rows: 0, lastRows: 0 };
  /** Binary messages received, counted against shards sent by the rate limit. */
  private resultsReceived = 0;
  private votes = { agreed: 0, disagreed: 0 };
  private quarantineReason: string | null = null;
  /** Smoothed busy milliseconds (compute plus CPU-cap rest) per shard, for the queue depth. */
  private shardMsAvg = 0;
  /** Smoothed bytes of the shard frames sent, for the queue depth. */
  private frameBytesAvg = 0;
  private drainedValue = false;
  /** Effective samples/s by model sha256 (compute plus CPU-cap idling), smoothed. */
  private readonly rates = new Map<string, number>();
  /** Work done per model sha256, for the report. */
  private readonly perModel = new Map<string, { shards: number; samples: number; computeMs: number; throttleMs: number }>();

  constructor(
    readonly connId: string,
    readonly link: WorkerLink,
    readonly remote: string,
    private readonly prefetch: number,
  ) {}

  get state(): WorkerSessionState {
    return this.stateValue;
  }

  get hello(): Hello | null {
    return this.helloValue;
  }

  /** handshake -> ready, with the hello that was accepted. */
  markReady(hello: Hello): void {
    this.move("ready", "handshake");
    this.helloValue = hello;
  }

  /** ready -> draining: the worker said it is leaving. */
  startDraining(): void {
    this.move("draining", "ready");
    this.drainedValue = true;
  }

  /** Any state -> closed; false when it was closed already. */
  close(): boolean {
    if (this.stateValue === "closed") return false;
    this.stateValue = "closed";
    return true;
  }

  private move(to: WorkerSessionState, from: WorkerSessionState): void {
    if (this.stateValue !== from) throw new EdgepoolError("E_STATE", `worker ${this.name} cannot go from ${this.stateValue} to ${to}`);
    this.stateValue = to;
  }

  /** True once the worker said it is draining (its state may have moved on to closed since). */
  get drained(): boolean {
    return this.drainedValue;
  }

  /** True between a valid hello and the end of the connection. */
  get joined(): boolean {
    return this.stateValue === "ready" || this.stateValue === "draining";
  }

  /** Marks the worker as caught returning wrong results; a second mark throws E_STATE (one quarantine, one event). */
  quarantine(reason: string): void {
    if (this.quarantineReason !== null) throw new EdgepoolError("E_STATE", `worker ${this.name} is already quarantined`);
    this.quarantineReason = reason;
  }

  /** Caught returning wrong results: connected, but given no work. */
  get quarantined(): boolean {
    return this.quarantineReason !== null;
  }

  /** Marks the peer refused (a limit, a bad hello, too much garbage); false if it already was. */
  refuse(): boolean {
    if (this.refusedValue) return false;
    this.refusedValue = true;
    return true;
  }

  /** Refused: closing, and nothing more it sends is read. */
  get refused(): boolean {
    return this.refusedValue;
  }

  /** Counts a malformed message; returns how many so far. */
  noteMalformed(): number {
    return ++this.malformedCount;
  }

  /**
   * Counts a binary message as the result owed for a shard sent, while one is owed; false
   * when the worker has sent more results than it was sent shards (the rate limit charges those).
   */
  takeOwedResult(): boolean {
    if (this.resultsReceived >= this.sent.shards) return false;
    this.resultsReceived += 1;
    return true;
  }

  /** The worker sent a message or answered a ping: it is alive now. */
  heard(now = Date.now()): void {
    this.seen = now;
  }

  get lastSeen(): number {
    return this.seen;
  }

  get name(): string {
    return this.helloValue?.name ?? this.connId;
  }

  /** The worker's persistent id (the same across reconnects), or the connection's before hello. */
  get id(): string {
    return this.helloValue?.workerId ?? this.connId;
  }

  /** Shards held: dispatched to it and not yet answered or withdrawn. */
  get inflight(): number {
    return this.held;
  }

  /** Counts a shard dispatched to it (the dispatch table calls this as it records one). */
  hold(rows: number): void {
    this.held += 1;
    this.sent.shards += 1;
    this.sent.rows += rows;
    this.sent.lastRows = rows;
  }

  /** Counts a shard that is no longer held (answered or withdrawn). */
  release(): void {
    if (this.held === 0) throw new EdgepoolError("E_STATE", `worker ${this.name} holds no shard to release`);
    this.held -= 1;
  }

  /** Credit without a deep queue: the slots and one shard waiting behind each. */
  get baseCredit(): number {
    return (this.helloValue?.slots ?? 0) + this.prefetch;
  }

  /** Shards this worker may hold at once (creditFor), once its shard time is measured. */
  get credit(): number {
    if (this.shardMsAvg <= 0) return this.baseCredit;
    return creditFor(this.helloValue?.slots ?? 0, this.prefetch, this.shardMsAvg, this.frameBytesAvg);
  }

  /** Records the size of a shard frame sent to this worker (for the queue depth). */
  noteFrameBytes(bytes: number): void {
    this.frameBytesAvg = this.frameBytesAvg > 0 ? 0.8 * this.frameBytesAvg + 0.2 * bytes : bytes;
  }

  get freeCredit(): number {
    return this.stateValue === "ready" && this.quarantineReason === null ? Math.max(0, this.credit - this.held) : 0;
  }

  /** True when it could take work now: ready, not quarantined, nothing in flight. */
  get idle(): boolean {
    return this.stateValue === "ready" && this.quarantineReason === null && this.held === 0;
  }

  /** Its smoothed rate on a model (samples/s), if measured. */
  rateOn(model: string): number | undefined {
    return this.rates.get(model);
  }

  /** Sets its smoothed rate on a model (planner.ts updateRate computes it). */
  setRate(model: string, samplesPerSec: number): void {
    this.rates.set(model, samplesPerSec);
  }

  /** Counts a verified shard where its answer agreed with the accepted one (or a canary it got right). */
  recordAgreement(): void {
    this.votes.agreed += 1;
  }

  /** Counts a verified shard (or canary) where its answer was wrong. */
  recordDisagreement(): void {
    this.votes.disagreed += 1;
  }

  get agreements(): number {
    return this.votes.agreed;
  }

  get disagreements(): number {
    return this.votes.disagreed;
  }

  /** Counts a `shard_error` it sent. */
  recordShardError(): void {
    this.errors += 1;
  }

  get shardErrors(): number {
    return this.errors;
  }

  get shardsDone(): number {
    return this.done.shards;
  }

  get samplesDone(): number {
    return this.done.samples;
  }

  /**
   * Trust from verified shards (redundancy > 1): the share of its verified answers that agreed
   * with the majority, with one agreement and one disagreement assumed up front, so a new
   * worker starts at 0.5 and one bad answer is not a verdict.
   */
  get trust(): number {
    return (this.votes.agreed + 1) / (this.votes.agreed + this.votes.disagreed + 2);
  }

  /** Samples per second of compute time, as measured on this worker so far. */
  /** Rows in the last shard sent to it, and the mean over all sent. */
  get lastShardRows(): number {
    return this.sent.lastRows;
  }

  get meanShardRows(): number {
    return this.sent.shards > 0 ? this.sent.rows / this.sent.shards : 0;
  }

  /** Milliseconds it spent computing accepted shards. */
  get computeMs(): number {
    return this.done.computeMs;
  }

  get samplesPerSec(): number {
    return this.done.computeMs > 0 ? (this.done.samples * 1000) / this.done.computeMs : 0;
  }

  get virtual(): boolean {
    return this.helloValue?.virtual ?? false;
  }

  /** Records an accepted shard. */
  recordDone(model: string, rows: number, computeMs: number, throttleMs: number): void {
    const ms = computeMs + throttleMs;
    this.shardMsAvg = this.shardMsAvg > 0 ? 0.8 * this.shardMsAvg + 0.2 * ms : ms;
    this.done.shards += 1;
    this.done.samples += rows;
    this.done.computeMs += computeMs;
    const m = this.perModel.get(model) ?? { shards: 0, samples: 0, computeMs: 0, throttleMs: 0 };
    m.shards += 1;
    m.samples += rows;
    m.computeMs += computeMs;
    m.throttleMs += throttleMs;
    this.perModel.set(model, m);
  }

  /** Sends a message; `sent` (if given) is called once it is written out or has failed. False when the connection is gone. */
  send(data: string | Uint8Array, sent?: (err?: Error) => void): boolean {
    if (this.stateValue === "closed" || !this.link.isOpen) return false;
    this.link.send(data, sent);
    return true;
  }

  /** What the report needs to know about this worker. */
  toReport(connected: boolean) {
    const h = this.helloValue;
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
}

