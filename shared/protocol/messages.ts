/**
 * The wire protocol between coordinator and workers.
 *
 * Control messages are JSON text frames with a `type` field. Messages that carry tensors
 * (`shard` to a worker, `result` back) are binary frames (see frame.ts) whose JSON header
 * holds the same kind of `type`-tagged object. Every message is parsed from `unknown` with
 * the schemas below; the TypeScript types are inferred from them.
 *
 * Conversation: worker -> `hello`; coordinator -> `welcome` (or `error` and close on a
 * version mismatch). Then the coordinator sends `shard` frames, up to the worker's credit
 * (slots + prefetch); the worker answers each with `result` or `shard_error`. `cancel`
 * withdraws a dispatched shard. Each dispatch has its own `shardId`, so a late answer to a
 * withdrawn, retried or duplicated dispatch is recognised and dropped. A worker that is
 * shutting down sends `draining` with the shards it will not run; the coordinator sends it
 * nothing more and re-queues those at once (without counting them as failed attempts).
 * Liveness is WebSocket ping/pong, answered by the ws library on both sides.
 * No `node:` imports: the browser worker uses this file too.
 */
import { z } from "zod";
import { EdgepoolError } from "../errors.js";
import { decodeFrame, type NamedTensor } from "./frame.js";

export const PROTOCOL_VERSION = 1;
/** Longest `message` an error or shard_error may carry. */
export const MAX_MESSAGE_CHARS = 4096;
/** Longest `reason` a cancel may carry. */
export const MAX_REASON_CHARS = 256;

const Id = z.string().min(1).max(128);
const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, "expected a lowercase hex sha256");

export const HelloSchema = z.object({
  type: z.literal("hello"),
  protocol: z.number().int(),
  workerId: Id,
  name: z.string().min(1).max(128),
  platform: z.string().min(1).max(64),
  arch: z.string().max(64).default("unknown"),
  cpus: z.number().int().positive().max(4096),
  memoryBytes: z.number().nonnegative(),
  runtime: z.object({ name: z.string().max(64), version: z.string().max(64) }),
  threads: z.number().int().positive().max(1024),
  slots: z.number().int().positive().max(64),
  /** CPU cap in percent (duty cycle per slot); 100 when uncapped. */
  maxCpu: z.number().min(1).max(100).default(100),
  virtual: z.boolean().default(false),
  /** Where inference runs: "cpu" (onnxruntime-node), "wasm" or "webgpu" (a browser). */
  backend: z.string().min(1).max(64).optional(),
  /** A browser worker's user agent, so people can tell their devices apart. */
  userAgent: z.string().max(512).optional(),
});

export const ShardErrorSchema = z.object({
  type: z.literal("shard_error"),
  shardId: Id,
  jobId: Id,
  code: z.string().max(64),
  message: z.string().max(MAX_MESSAGE_CHARS),
});

export const DrainingSchema = z.object({
  type: z.literal("draining"),
  /** Dispatched shards this worker will not run; the ones it is running it still finishes. */
  released: z.array(Id).max(1024),
});

export const WelcomeSchema = z.object({
  type: z.literal("welcome"),
  protocol: z.number().int(),
  workerId: Id,
  /** Path for model downloads (`GET {modelPath}/{sha256}`), relative to the coordinator. */
  modelPath: z.string(),
});

export const CancelSchema = z.object({
  type: z.literal("cancel"),
  shardId: Id,
  reason: z.string().max(MAX_REASON_CHARS),
});

export const ErrorMessageSchema = z.object({
  type: z.literal("error"),
  code: z.string().max(64),
  message: z.string().max(MAX_MESSAGE_CHARS),
});

/** JSON text messages a worker may send. */
export const WorkerTextMessageSchema = z.discriminatedUnion("type", [HelloSchema, ShardErrorSchema, DrainingSchema]);
/** JSON text messages a coordinator may send. */
export const CoordinatorTextMessageSchema = z.discriminatedUnion("type", [WelcomeSchema, CancelSchema, ErrorMessageSchema]);

/** Header of a `shard` binary frame; its tensors are the model inputs for rows [start, end). */
export const ShardHeaderSchema = z.object({
  type: z.literal("shard"),
  shardId: Id,
  jobId: Id,
  model: Sha256,
  start: z.number().int().nonnegative(),
  end: z.number().int().positive(),
});

/** Header of a `result` binary frame; its tensors are the model outputs, rows in order. */
export const ResultHeaderSchema = z.object({
  type: z.literal("result"),
  shardId: Id,
  jobId: Id,
  /** Milliseconds the worker spent computing (excluding queueing and transfer). */
  computeMs: z.number().nonnegative(),
  /** Milliseconds the worker idled for this shard to keep under its CPU cap (--max-cpu). */
  throttleMs: z.number().nonnegative().default(0),
});

export type Hello = z.infer<typeof HelloSchema>;
export type HelloInput = z.input<typeof HelloSchema>;
export type ShardError = z.infer<typeof ShardErrorSchema>;
export type Draining = z.infer<typeof DrainingSchema>;
export type Welcome = z.infer<typeof WelcomeSchema>;
export type Cancel = z.infer<typeof CancelSchema>;
export type ErrorMessage = z.infer<typeof ErrorMessageSchema>;
export type WorkerTextMessage = z.infer<typeof WorkerTextMessageSchema>;
export type CoordinatorTextMessage = z.infer<typeof CoordinatorTextMessageSchema>;
export type ShardHeader = z.infer<typeof ShardHeaderSchema>;
export type ResultHeader = z.infer<typeof ResultHeaderSchema>;

export interface ShardFrame {
  header: ShardHeader;
  tensors: NamedTensor[];
}
export interface ResultFrame {
  header: ResultHeader;
  tensors: NamedTensor[];
}

function describe(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return "invalid message";
  const path = issue.path.length > 0 ? `${issue.path.join(".")}: ` : "";
  return `${path}${issue.message}`;
}

function parseWith<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new EdgepoolError("E_PROTOCOL", `malformed ${what}: ${describe(r.error)}`);
  return r.data;
}

function parseJsonText(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new EdgepoolError("E_PROTOCOL", `${what} is not valid JSON`, { cause });
  }
}

/** Parses a text frame received by the coordinator. */
export function parseWorkerText(text: string): WorkerTextMessage {
  return parseWith(WorkerTextMessageSchema, parseJsonText(text, "worker message"), "worker message");
}

/** Parses a text frame received by a worker. */
export function parseCoordinatorText(text: string): CoordinatorTextMessage {
  return parseWith(CoordinatorTextMessageSchema, parseJsonText(text, "coordinator message"), "coordinator message");
}

/** Parses a binary `shard` frame received by a worker. */
export function parseShardFrame(bytes: Uint8Array): ShardFrame {
  const { header, tensors } = decodeFrame(bytes);
  const h = parseWith(ShardHeaderSchema, header, "shard frame header");
  if (h.end <= h.start) throw new EdgepoolError("E_PROTOCOL", `shard ${h.shardId}: empty row range [${h.start}, ${h.end})`);
  return { header: h, tensors };
}

/** Parses a binary `result` frame received by the coordinator. */
export function parseResultFrame(bytes: Uint8Array): ResultFrame {
  const { header, tensors } = decodeFrame(bytes);
  return { header: parseWith(ResultHeaderSchema, header, "result frame header"), tensors };
}

/** Refuses a hello whose protocol version differs from ours, naming both versions. */
export function checkProtocolVersion(theirs: number, who: string): void {
  if (theirs !== PROTOCOL_VERSION) {
    throw new EdgepoolError(
      "E_VERSION",
      `${who} speaks protocol version ${theirs} but this side speaks ${PROTOCOL_VERSION}; run the same edgepool version on both`,
    );
  }
}
