/**
 * A shard's `result`: `computeShard` runs the rows and builds the `result` frame, with the
 * outputs copied once, straight from ONNX Runtime into the frame that goes on the wire
 * (a failure becomes a `shard_error` in the session, core/protocol.ts).
 *
 * The result also carries `throttleMs`, the rest the slot takes after this shard to stay
 * under the CPU cap, so the coordinator can rate this worker by rows / (compute + rest)
 * rather than by its speed while it computes.
 */
import { EdgepoolError } from "../shared/errors.js";
import { resultHeader } from "../shared/protocol/encode.js";
import { encodeFrame, planFrame, type NamedTensor } from "../shared/protocol/frame.js";
import { concatRows, sliceRows } from "../shared/tensor/tensor-ops.js";
import type { ShardHeader } from "../shared/protocol/messages.js";
import type { Runner } from "./runner.js";

export interface ShardResult {
  frame: Uint8Array;
  /** Milliseconds of inference, excluding queueing, model loading and the output copy. */
  computeMs: number;
  /** Milliseconds the slot rests after this shard to keep under the CPU cap; 0 when uncapped. */
  throttleMs: number;
}

function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** Rest after `computeMs` of work that keeps a slot busy at most `maxCpu` percent of the time. */
export function throttleFor(computeMs: number, maxCpu: number): number {
  if (maxCpu >= 100) return 0;
  return roundMs(computeMs * (100 / maxCpu - 1));
}

/**
 * Runs the shard's rows through its (already loaded) model and returns the `result` frame
 * (from `alloc`, if given); `maxCpu` (percent) sets the frame's `throttleMs`.
 */
export async function computeShard(runner: Runner, header: ShardHeader, inputs: readonly NamedTensor[], maxCpu = 100, alloc?: (bytes: number) => Uint8Array): Promise<ShardResult> {
  const started = performance.now();
  const out: { frame?: Uint8Array; computeMs: number; throttleMs: number } = { computeMs: 0, throttleMs: 0 };
  await runner.run(header.model, inputs, header.end - header.start, (specs) => {
    // Called once inference is done and before outputs are copied, so computeMs is known in
    // time for the header and the one copy of the outputs lands in the frame itself.
    out.computeMs = roundMs(performance.now() - started);
    out.throttleMs = throttleFor(out.computeMs, maxCpu);
    const { frame, slots } = planFrame(resultHeader(header.shardId, header.jobId, out.computeMs, out.throttleMs), specs, alloc);
    out.frame = frame;
    return slots;
  });
  if (!out.frame) throw new EdgepoolError("E_INTERNAL", "the runner returned without asking for output buffers");
  return { frame: out.frame, computeMs: out.computeMs, throttleMs: out.throttleMs };
}

/**
 * Runs several small shards of one model as one batch: their rows stacked, one ONNX Runtime
 * call, and the outputs cut back into one `result` frame each. Rows are independent (the
 * planner already cuts jobs anywhere), so each shard's answer is what it would be alone; what
 * is saved is the fixed cost per call and per message, which dominates shards of a few rows.
 * Each shard is credited its share of the compute time, by rows.
 */
export async function computeShards(runner: Runner, headers: readonly ShardHeader[], inputs: readonly (readonly NamedTensor[])[], maxCpu = 100, alloc?: (bytes: number) => Uint8Array): Promise<ShardResult[]> {
  const rows = headers.map((h) => h.end - h.start);
  const total = rows.reduce((a, b) => a + b, 0);
  const stacked = inputs[0]!.map((t, i) => ({ name: t.name, ...concatRows(inputs.map((ts) => ts[i]!)) }));
  const started = performance.now();
  const outputs = await runner.run(headers[0]!.model, stacked, total);
  const computeMs = performance.now() - started;
  let at = 0;
  return headers.map((header, k) => {
    const share = roundMs((computeMs * rows[k]!) / total);
    const throttleMs = throttleFor(share, maxCpu);
    const frame = encodeFrame(resultHeader(header.shardId, header.jobId, share, throttleMs), outputs.map((o) => ({ name: o.name, ...sliceRows(o, at, at + rows[k]!) })), alloc);
    at += rows[k]!;
    return { frame, computeMs: share, throttleMs };
  });
}
