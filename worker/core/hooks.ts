/**
 * What a worker session is told at construction (SessionOptions) and what it tells its host
 * (SessionHooks): the only coupling between the protocol (session.ts) and a host's logs,
 * stats, events and views. Hooks are plain methods, called synchronously, with no per-call
 * objects beyond the shard or message they are about.
 */
import type { EdgepoolError } from "../../shared/errors.js";
import type { ErrorMessage, ShardHeader, Welcome } from "../../shared/protocol/messages.js";
import type { HeldShard } from "./shard.js";
import type { SessionState } from "./state.js";

export interface SessionOptions {
  /** How long a new connection may go without `welcome` before it is closed. */
  helloTimeoutMs: number;
  /** The model download base for a welcome's `modelPath`; throws for one it cannot use (the welcome is then ignored). */
  modelBase(modelPath: string): string;
  /** Shards queued beyond the running ones before more are refused (default MAX_QUEUED). */
  maxQueued?: number;
  /** Names the worker in E_STATE messages. */
  who?: string;
}

/** What the session tells its host. Only `fatal` is required; the rest are for logs, stats and views. */
export interface SessionHooks {
  state?(from: SessionState, to: SessionState): void;
  ready?(welcome: Welcome): void;
  /** No welcome came in time; the session closes the connection right after this. */
  helloTimeout?(ms: number): void;
  /** Something from the coordinator that did not parse or made no sense now; ignored. */
  malformed?(kind: "text" | "binary", e: EdgepoolError): void;
  coordinatorError?(msg: ErrorMessage): void;
  /** Reconnecting cannot fix this (E_VERSION): the host should stop. Called once. */
  fatal(e: EdgepoolError): void;
  /** A shard was queued. */
  received?(shard: HeldShard): void;
  /** A shard frame arrived while draining; ignored. */
  ignored?(bytes: number): void;
  /** A `cancel` arrived; `shard` is the one it named (already answered if it was queued), if held. */
  cancelled?(shardId: string, shard: HeldShard | undefined, reason: string): void;
  /** A shard's answer was dropped: cancelled, handed back by `draining`, or its connection gone. */
  discarded?(shard: HeldShard, reason: string): void;
  /** A `shard_error` went out. */
  failed?(header: ShardHeader, e: EdgepoolError): void;
  /** A running shard was answered or the connection dropped: whoever waits for running shards can look again. */
  settled?(): void;
}

export interface DrainOutcome {
  /** Queued shards handed back. */
  released: number;
  /** Whether the `draining` message went out (only from `ready`, and only on an open connection). */
  announced: boolean;
}
