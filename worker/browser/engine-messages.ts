/**
 * Messages between the join page and its compute engine (a Web Worker). The page keeps the
 * coordinator's connection and the protocol; the engine owns ONNX Runtime, the models and
 * the shard frames. Frames cross as transferred ArrayBuffers (no copies). Both sides parse
 * what they receive from `unknown` with these schemas.
 */
import { z } from "zod";

export const BACKENDS = ["wasm", "webgpu"] as const;
export type Backend = (typeof BACKENDS)[number];

const Id = z.number().int().nonnegative();

export const InitRequestSchema = z.object({
  type: z.literal("init"),
  id: Id,
  /** "auto": WebGPU where the browser has a working adapter, WebAssembly otherwise. */
  backend: z.enum(["auto", ...BACKENDS]),
  /** WebAssembly threads; 0 lets the engine pick (1 unless the page is cross-origin isolated). */
  threads: z.number().int().min(0).max(64),
  /** URL prefix the onnxruntime-web scripts and .wasm files are served under, ending in "/". */
  ortBase: z.string().min(1),
  /** A tiny model (y = x · I, x [1,4]) that proves a backend computes before the page joins. */
  probeUrl: z.string().min(1),
  /** The worker token for `GET /models/<sha256>` on a coordinator that requires one. */
  token: z.string().min(1).max(1024).nullable(),
});

export const RunRequestSchema = z.object({
  type: z.literal("run"),
  id: Id,
  /** A `shard` frame exactly as it came off the socket. */
  frame: z.instanceof(ArrayBuffer),
  /** `GET {modelBase}/{sha256}` serves the model. */
  modelBase: z.string().min(1),
});

export const EngineRequestSchema = z.discriminatedUnion("type", [InitRequestSchema, RunRequestSchema]);

export const EngineInfoSchema = z.object({
  backend: z.enum(BACKENDS),
  threads: z.number().int().positive(),
  simd: z.boolean(),
  crossOriginIsolated: z.boolean(),
  ortVersion: z.string(),
  /** Why the engine did not use what was asked for (no WebGPU adapter, not isolated, ...). */
  notes: z.array(z.string()),
});
export type EngineInfo = z.infer<typeof EngineInfoSchema>;

export const EngineReplySchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("ready"), id: Id, info: EngineInfoSchema }),
  z.object({
    type: z.literal("done"),
    id: Id,
    /** The `result` frame to send as it is. */
    frame: z.instanceof(ArrayBuffer),
    rows: z.number().int().positive(),
    computeMs: z.number().nonnegative(),
  }),
  z.object({ type: z.literal("failed"), id: Id, code: z.string().max(64), message: z.string().max(4096) }),
  /** A model became usable (downloaded, verified, session created). */
  z.object({ type: z.literal("model"), sha256: z.string(), bytes: z.number(), ms: z.number(), fixedBatch: z.boolean() }),
]);

export type InitRequest = z.infer<typeof InitRequestSchema>;
export type RunRequest = z.infer<typeof RunRequestSchema>;
export type EngineRequest = z.infer<typeof EngineRequestSchema>;
export type EngineReply = z.infer<typeof EngineReplySchema>;
