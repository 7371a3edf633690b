/**
 * The worker side of the protocol, written once for the Node daemon and the browser page:
 * a session over a `Transport` (the connection, which the host dials and redials) and an
 * `Executor` (whatever computes). Its lifecycle is `SessionState` (state.ts).
 *
 * Conversation: when the host reports a connection `opened()`, the session sends `hello` and
 * waits `helloTimeoutMs` for `welcome`, closing the connection if none comes. A welcome is
 * accepted only then, and only in our protocol version (another version is fatal, as is an
 * `error` message with code E_VERSION: reconnecting cannot fix either). Once `ready`, each
 * `shard` frame is parsed and queued (one whose id is already held is malformed and ignored;
 * one over the queue cap is refused with E_UNAVAILABLE), and the executor takes queued
 * shards as it has room. `cancel` drops a queued shard, or marks a running one so that its
 * answer is discarded.
 *
 * Answers: every shard held is answered with exactly one `result` frame or `shard_error`,
 * except that nothing is sent for a shard that was cancelled, handed back by `draining`, or
 * whose connection dropped (`lost()`: the epoch moves on, the queue is dropped, and answers
 * computed for the old connection are discarded, because the coordinator re-queued whatever
 * that connection held). Malformed input never throws: it is reported to `hooks.malformed`
 * and earns no answer.
 *
 * The session keeps no per-shard closures: the hot path (a result every few microseconds
 * with tiny shards) is a few field checks and one send.
 */
import { EdgepoolError, toEdgepoolError } from "../../shared/errors.js";
import { drainingMessage } from "../../shared/protocol/encode.js";
import { parseShardFrame, type Cancel, type ErrorMessage, type ShardHeader, type Welcome } from "../../shared/protocol/messages.js";
import type { Executor, ShardAnswers } from "./executor.js";
import type { DrainOutcome, SessionHooks, SessionOptions } from "./hooks.js";
import { MAX_QUEUED, ShardInbox } from "./inbox.js";
import {
  dispatchCoordinatorText,
  earlyShardError,
  fatalCoordinatorError,
  heldShardError,
  queueFullError,
  shardErrorFor,
  welcomeRefusal,
  type CoordinatorTextHandler,
} from "./protocol.js";
import { staleReason, type HeldShard } from "./shard.js";
import { assertTransition, type SessionState } from "./state.js";
import type { Transport } from "./transport.js";

export class WorkerSession implements ShardAnswers {
  private stateValue: SessionState = "idle";
  private readonly inbox: ShardInbox;
  /** Bumped on every lost connection: shards from an older epoch belong to a dead one. */
  private epochValue = 0;
  /** Set by this connection's welcome; null while not welcomed. */
  private modelBaseValue: string | null = null;
  /** Runs from our hello to the welcome; a welcome is only accepted while it does. */
  private helloTimer: ReturnType<typeof setTimeout> | null = null;
  private hello = "";
  private fatalError: EdgepoolError | null = null;
  private readonly who: string;
  private readonly textHandler: CoordinatorTextHandler<null>;

  constructor(
    private readonly transport: Transport,
    private readonly executor: Executor,
    private readonly hooks: SessionHooks,
    private readonly options: SessionOptions,
  ) {
    this.inbox = new ShardInbox(options.maxQueued ?? MAX_QUEUED);
    this.who = options.who ?? "worker";
    this.textHandler = {
      welcome: (_, msg) => this.onWelcome(msg),
      cancel: (_, msg) => this.onCancel(msg),
      error: (_, msg) => this.onError(msg),
      malformed: (_, e) => this.hooks.malformed?.("text", e),
    };
  }

  get state(): SessionState {
    return this.stateValue;
  }

  /** The current connection's number; answers for shards of an older one are discarded. */
  get epoch(): number {
    return this.epochValue;
  }

  /** The fatal error the session met, if any. */
  get fatal(): EdgepoolError | null {
    return this.fatalError;
  }

  get queued(): number {
    return this.inbox.queued;
  }

  get running(): number {
    return this.inbox.running;
  }

  // ---- lifecycle, driven by the host ----

  /** idle → connecting: `hello` (a helloMessage text) is what every connection opens with. Throws E_STATE. */
  start(hello: string): void {
    // Not just any state that may go to `connecting`: `ready` does that when its connection drops.
    if (this.stateValue !== "idle") throw new EdgepoolError("E_STATE", `${this.who} cannot start while ${this.stateValue}`);
    this.hello = hello;
    this.transition("connecting");
  }

  /** A connection opened: sends `hello` and starts the hello timeout. False when not connecting: the host should close it. */
  opened(): boolean {
    if (this.stateValue !== "connecting") return false;
    this.transport.sendText(this.hello);
    this.clearHelloTimer();
    const ms = this.options.helloTimeoutMs;
    this.helloTimer = setTimeout(() => {
      this.helloTimer = null;
      this.hooks.helloTimeout?.(ms);
      this.transport.close(4000, `no welcome within ${ms} ms`);
    }, ms);
    return true;
  }

  /**
   * The connection is gone: queued shards are dropped (the coordinator re-queues them),
   * running ones will have their answers discarded, `ready` goes back to `connecting`.
   * Returns how many queued shards were dropped.
   */
  lost(): number {
    this.clearHelloTimer();
    this.epochValue += 1;
    this.modelBaseValue = null;
    const dropped = this.inbox.releaseQueued().length;
    if (this.stateValue === "ready") this.transition("connecting");
    this.hooks.settled?.();
    return dropped;
  }

  /**
   * ready | connecting → draining: no new shards; queued ones are handed back with one
   * `draining` message (from `ready`), running ones still finish and report. Throws E_STATE
   * from any other state.
   */
  drain(): DrainOutcome {
    const wasReady = this.stateValue === "ready";
    this.transition("draining");
    this.clearHelloTimer();
    const released = this.inbox.releaseQueued();
    // Handing queued shards back at once lets the coordinator give them to another worker
    // now, rather than when this connection finally closes after the running shards.
    const announced = wasReady && this.transport.sendText(drainingMessage(released.map((s) => s.header.shardId)));
    for (const s of released) this.hooks.discarded?.(s, "released: worker draining");
    return { released: released.length, announced };
  }

  /** connecting | draining → idle: left the pool for now (a paused browser); start() joins again. */
  leave(): void {
    this.transition("idle");
    this.clearHelloTimer();
  }

  /** → closed, for good. Safe to call more than once. */
  close(): void {
    this.clearHelloTimer();
    if (this.stateValue !== "closed") this.transition("closed");
  }

  // ---- input from the coordinator ----

  /** A text message from the coordinator. Never throws on bad input. */
  text(text: string): void {
    dispatchCoordinatorText(text, null, this.textHandler);
  }

  /** A binary message from the coordinator: a `shard` frame. Never throws on bad input. */
  binary(bytes: Uint8Array): void {
    if (this.stateValue === "draining") {
      this.hooks.ignored?.(bytes.byteLength);
      return;
    }
    const modelBase = this.modelBaseValue;
    if (this.stateValue !== "ready" || modelBase === null) {
      this.hooks.malformed?.("binary", earlyShardError(this.stateValue));
      return;
    }
    let frame;
    try {
      frame = parseShardFrame(bytes);
    } catch (err) {
      this.hooks.malformed?.("binary", toEdgepoolError(err, "E_PROTOCOL"));
      return;
    }
    const { header, tensors } = frame;
    if (this.inbox.holds(header.shardId)) {
      this.hooks.malformed?.("binary", heldShardError(header.shardId));
      return;
    }
    if (this.inbox.full) {
      this.sendError(header, queueFullError(this.inbox.maxQueued));
      return;
    }
    const shard = this.inbox.add(header, tensors, bytes, this.epochValue, modelBase);
    this.hooks.received?.(shard);
    this.pump();
  }

  // ---- answers, from the executor ----

  pump(): void {
    while (this.stateValue === "ready" && this.executor.canRun()) {
      const batch = this.inbox.take(this.executor);
      if (!batch) return;
      try {
        this.executor.run(batch, this);
      } catch (err) {
        // An executor that throws instead of answering still owes each shard one answer.
        for (const s of batch) this.error(s, err);
      }
    }
  }

  dropIfStale(shard: HeldShard): boolean {
    if (shard.phase !== "running") return true;
    const stale = staleReason(shard, this.epochValue);
    if (stale === null) return false;
    this.drop(shard, stale);
    return true;
  }

  result(shard: HeldShard, frame: Uint8Array, written?: (err?: Error) => void): boolean {
    if (shard.phase !== "running") return false;
    const stale = staleReason(shard, this.epochValue);
    if (stale !== null) {
      this.drop(shard, stale);
      return false;
    }
    if (!this.transport.sendBinary(frame, written)) {
      this.drop(shard, "connection closed");
      return false;
    }
    this.inbox.settle(shard);
    this.hooks.settled?.();
    return true;
  }

  error(shard: HeldShard, err: unknown): boolean {
    if (shard.phase !== "running") return false;
    const stale = staleReason(shard, this.epochValue);
    if (stale !== null) {
      this.drop(shard, stale);
      return false;
    }
    this.inbox.settle(shard);
    this.sendError(shard.header, toEdgepoolError(err, "E_INTERNAL"));
    this.hooks.settled?.();
    return true;
  }

  // ---- internals ----

  private onWelcome(msg: Welcome): void {
    const awaiting = this.stateValue === "connecting" && this.helloTimer !== null && this.fatalError === null;
    const refusal = welcomeRefusal(awaiting, this.stateValue, msg);
    if (refusal) {
      if (refusal.code === "E_VERSION") this.fail(refusal);
      else this.hooks.malformed?.("text", refusal);
      return;
    }
    let base: string;
    try {
      base = this.options.modelBase(msg.modelPath);
    } catch (err) {
      this.hooks.malformed?.("text", toEdgepoolError(err, "E_PROTOCOL"));
      return;
    }
    this.clearHelloTimer();
    this.modelBaseValue = base;
    this.transition("ready");
    this.hooks.ready?.(msg);
  }

  private onCancel(msg: Cancel): void {
    const shard = this.inbox.cancel(msg.shardId);
    if (shard?.phase === "answered") this.hooks.discarded?.(shard, `cancelled: ${msg.reason}`);
    this.hooks.cancelled?.(msg.shardId, shard, msg.reason);
  }

  private onError(msg: ErrorMessage): void {
    this.hooks.coordinatorError?.(msg);
    const fatal = fatalCoordinatorError(msg);
    if (fatal) this.fail(fatal);
  }

  private drop(shard: HeldShard, reason: string): void {
    this.inbox.settle(shard);
    this.hooks.discarded?.(shard, reason);
    this.hooks.settled?.();
  }

  private sendError(header: ShardHeader, e: EdgepoolError): void {
    this.transport.sendText(shardErrorFor(header, e));
    this.hooks.failed?.(header, e);
  }

  private fail(e: EdgepoolError): void {
    if (this.fatalError) return;
    this.fatalError = e;
    this.hooks.fatal(e);
  }

  private transition(to: SessionState): void {
    const from = this.stateValue;
    assertTransition(from, to, this.who);
    this.stateValue = to;
    this.hooks.state?.(from, to);
  }

  private clearHelloTimer(): void {
    if (this.helloTimer !== null) clearTimeout(this.helloTimer);
    this.helloTimer = null;
  }
}
