/**
 * The worker side of the conversation as pure functions, shared by the session (session.ts)
 * and by the swarm's virtual workers, which are too many to give each a session object:
 * dispatching a coordinator text message, the welcome guard, the fatal error, the refusals,
 * and the shard_error text. None keeps state; the caller passes what it knows.
 */
import { EdgepoolError, toEdgepoolError } from "../../shared/errors.js";
import { shardErrorMessage } from "../../shared/protocol/encode.js";
import {
  checkProtocolVersion,
  parseCoordinatorText,
  type Cancel,
  type ErrorMessage,
  type ShardHeader,
  type Welcome,
} from "../../shared/protocol/messages.js";

/** What a worker does with each kind of coordinator text message; `ctx` spares a closure per worker. */
export interface CoordinatorTextHandler<C> {
  welcome(ctx: C, msg: Welcome): void;
  cancel(ctx: C, msg: Cancel): void;
  error(ctx: C, msg: ErrorMessage): void;
  /** The text did not parse (E_PROTOCOL): log it; it earns no answer. */
  malformed(ctx: C, e: EdgepoolError): void;
}

/** Parses a coordinator text message and hands it to the matching handler; never throws on bad input. */
export function dispatchCoordinatorText<C>(text: string, ctx: C, handler: CoordinatorTextHandler<C>): void {
  let msg;
  try {
    msg = parseCoordinatorText(text);
  } catch (err) {
    handler.malformed(ctx, toEdgepoolError(err, "E_PROTOCOL"));
    return;
  }
  switch (msg.type) {
    case "welcome":
      handler.welcome(ctx, msg);
      return;
    case "cancel":
      handler.cancel(ctx, msg);
      return;
    case "error":
      handler.error(ctx, msg);
      return;
  }
}

/**
 * Why a `welcome` must be refused, or null to accept it. A welcome is only expected while
 * connecting, after our `hello` went out and before the hello timeout: any other is
 * E_PROTOCOL (ignore it). One in another protocol version is E_VERSION, which is fatal:
 * reconnecting cannot fix it, both sides must run the same edgepool version.
 */
export function welcomeRefusal(awaitingWelcome: boolean, state: string, msg: Welcome): EdgepoolError | null {
  if (!awaitingWelcome) return new EdgepoolError("E_PROTOCOL", `unexpected welcome while ${state}`);
  try {
    checkProtocolVersion(msg.protocol, "the coordinator");
  } catch (err) {
    return toEdgepoolError(err, "E_VERSION");
  }
  return null;
}

/** The fatal error a coordinator `error` message amounts to (E_VERSION), or null for any other. */
export function fatalCoordinatorError(msg: ErrorMessage): EdgepoolError | null {
  return msg.code === "E_VERSION" ? new EdgepoolError("E_VERSION", msg.message) : null;
}

/** A shard frame naming a shard id this worker already holds (queued or running): malformed, ignored. */
export function heldShardError(shardId: string): EdgepoolError {
  return new EdgepoolError("E_PROTOCOL", `shard ${shardId} is already held by this worker`);
}

/** A shard frame while this many are queued: answered with this as its shard_error. */
export function queueFullError(maxQueued: number): EdgepoolError {
  return new EdgepoolError("E_UNAVAILABLE", `worker queue is full (${maxQueued} shards); send fewer at once`);
}

/** A shard frame before any welcome on this connection: malformed, ignored. */
export function earlyShardError(state: string): EdgepoolError {
  return new EdgepoolError("E_PROTOCOL", `binary frame before welcome (state ${state})`);
}

/** The `shard_error` text for a shard that could not be computed (code and message cut to the protocol's limits). */
export function shardErrorFor(header: ShardHeader, e: EdgepoolError): string {
  return shardErrorMessage(header.shardId, header.jobId, e.code, e.message);
}
