/**
 * Builders for every message either side sends: the only place an outgoing protocol message
 * is made. Each takes typed fields and returns the text (or, for frames, the header object)
 * that the receiving side's schema in messages.ts accepts; strings the schemas bound are cut
 * to their limits here, so a long error message can never make a message the peer refuses.
 * tests/unit/protocol-encode.test.ts parses every builder's output with the receiver's parser.
 * No `node:` imports: the browser worker uses this file too.
 */
import { EdgepoolError } from "../errors.js";
import {
  HelloSchema,
  MAX_MESSAGE_CHARS,
  MAX_REASON_CHARS,
  PROTOCOL_VERSION,
  type HelloInput,
  type ResultHeader,
  type ShardHeader,
} from "./messages.js";

function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

// ---- worker -> coordinator ----

/** `hello`, checked against the schema: a value the coordinator would refuse fails here, naming the field. */
export function helloMessage(hello: Omit<HelloInput, "type" | "protocol">): string {
  const r = HelloSchema.safeParse({ ...hello, type: "hello", protocol: PROTOCOL_VERSION });
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new EdgepoolError("E_CONFIG", `invalid worker hello: ${issue ? `${issue.path.join(".")}: ${issue.message}` : "invalid"}`);
  }
  return JSON.stringify(r.data);
}

/** `shard_error`: the shard could not be computed; `code` is one of the error table's. */
export function shardErrorMessage(shardId: string, jobId: string, code: string, message: string): string {
  return JSON.stringify({ type: "shard_error", shardId, jobId, code: clip(code, 64), message: clip(message, MAX_MESSAGE_CHARS) });
}

/** `draining`: the worker is leaving and will not run these dispatched shards. */
export function drainingMessage(released: readonly string[]): string {
  return JSON.stringify({ type: "draining", released: [...released] });
}

/** Header of a `result` frame (see frame.ts for the tensors that follow it). */
export function resultHeader(shardId: string, jobId: string, computeMs: number, throttleMs: number): ResultHeader {
  return { type: "result", shardId, jobId, computeMs, throttleMs };
}

// ---- coordinator -> worker ----

/** `welcome`: the hello was accepted; models are fetched from `modelPath`. */
export function welcomeMessage(workerId: string, modelPath: string): string {
  return JSON.stringify({ type: "welcome", protocol: PROTOCOL_VERSION, workerId, modelPath });
}

/** `cancel`: the coordinator no longer wants this dispatch's answer. */
export function cancelMessage(shardId: string, reason: string): string {
  return JSON.stringify({ type: "cancel", shardId, reason: clip(reason, MAX_REASON_CHARS) });
}

/** `error`: something the worker sent was refused (the connection may close after it). */
export function errorMessage(code: string, message: string): string {
  return JSON.stringify({ type: "error", code: clip(code, 64), message: clip(message, MAX_MESSAGE_CHARS) });
}

/** Header of a `shard` frame: the model inputs for rows [start, end) follow it. */
export function shardHeader(shardId: string, jobId: string, model: string, start: number, end: number): ShardHeader {
  return { type: "shard", shardId, jobId, model, start, end };
}
