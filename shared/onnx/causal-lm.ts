/**
 * Recognises a causal language model in the layout Hugging Face Optimum and transformers.js
 * export ("decoder with past"), from its signature alone:
 *
 *   inputs   input_ids [batch, seq] int64, attention_mask [batch, past+seq] int64,
 *            position_ids [batch, seq] int64 (optional),
 *            past_key_values.<i>.key / .value [batch, kv_heads, past, head_dim] float
 *   outputs  logits [batch, seq, vocab] float, present.<i>.key / .value (past and new, concatenated)
 *
 * A model with input_ids and attention_mask in and 3-D logits out but no past/present pairs is a
 * causal LM without a KV cache: it works, but each step re-runs the whole sequence. A model that
 * names a cache but does not wire it consistently is always rejected, saying what is wrong, so a
 * generation job fails before any worker loads the model.
 */
import { EdgepoolError } from "../errors.js";
import { type DType, bytesPerElement } from "../tensor/tensor.js";
import { type IoInfo, type ModelInfo, readModelInfo } from "./model-info.js";
import { decodeModel, dtypeFromOnnx } from "./proto.js";

/** A causal LM that carries its keys and values from step to step. */
export interface KvCacheLayout {
  kvCache: true;
  layers: number;
  kvHeads: number;
  headDim: number;
  /** The logits' last dim, when the model fixes it. */
  vocab?: number;
  hasPositionIds: boolean;
  kvDtype: DType;
}

/** A causal LM that re-runs the whole sequence each step. */
export interface NoCacheLayout {
  kvCache: false;
  vocab?: number;
  hasPositionIds: boolean;
}

export type CausalLmLayout = KvCacheLayout | NoCacheLayout;

export interface CausalLmOptions {
  /**
   * What the caller needs: "causal-lm" throws when the model is not one at all, "kv-cache"
   * also throws for a causal LM without a cache. Unset, a model that is not a causal LM gives
   * undefined (an inconsistent cache still throws: such a model is broken, not something else).
   */
  require?: "causal-lm" | "kv-cache";
}

const PAST = /^past_key_values\.(\d+)\.(key|value)$/;
const PRESENT = /^present\.(\d+)\.(key|value)$/;
const FLOAT_KV: readonly DType[] = ["float32", "float16"];

function invalid(message: string): EdgepoolError {
  return new EdgepoolError("E_MODEL_INVALID", message);
}

function shapeText(io: IoInfo): string {
  return `[${io.shape.join(", ")}]`;
}

/** The missing pieces of the base signature (input_ids, attention_mask, logits), as phrases. */
function baseProblems(info: ModelInfo): string[] {
  const problems: string[] = [];
  const input = (name: string): IoInfo | undefined => info.inputs.find((i) => i.name === name);
  for (const name of ["input_ids", "attention_mask"]) {
    const io = input(name);
    if (io === undefined) problems.push(`no input "${name}"`);
    else if (io.dtype !== "int64" || io.shape.length !== 2) {
      problems.push(`input "${name}" is ${io.dtype} ${shapeText(io)}, not int64 [batch, seq]`);
    }
  }
  const pos = input("position_ids");
  if (pos !== undefined && (pos.dtype !== "int64" || pos.shape.length !== 2)) {
    problems.push(`input "position_ids" is ${pos.dtype} ${shapeText(pos)}, not int64 [batch, seq]`);
  }
  const logits = info.outputs.find((o) => o.name === "logits");
  if (logits === undefined) problems.push('no output "logits"');
  else if (!FLOAT_KV.includes(logits.dtype) || logits.shape.length !== 3) {
    problems.push(`output "logits" is ${logits.dtype} ${shapeText(logits)}, not float [batch, seq, vocab]`);
  }
  return problems;
}

/** Layer index -> its key and value, from names matching `pattern`; throws on a lone half. */
function pairs(ios: readonly IoInfo[], pattern: RegExp, what: string): Map<number, { key: IoInfo; value: IoInfo }> {
  const halves = new Map<number, { key?: IoInfo; value?: IoInfo }>();
  for (const io of ios) {
    const m = pattern.exec(io.name);
    if (m === null) continue;
    const layer = Number(m[1]);
    const slot = halves.get(layer) ?? {};
    slot[m[2] as "key" | "value"] = io;
    halves.set(layer, slot);
  }
  const out = new Map<number, { key: IoInfo; value: IoInfo }>();
  for (const [layer, { key, value }] of halves) {
    if (key === undefined) throw invalid(`${what} "${value?.name}" has no matching ".key" (${what}s come in key/value pairs)`);
    if (value === undefined) throw invalid(`${what} "${key.name}" has no matching ".value" (${what}s come in key/value pairs)`);
    out.set(layer, { key, value });
  }
  return out;
}

/** The numbered layers must be exactly 0..n-1. */
function checkNumbering(layers: readonly number[], what: string): void {
  const sorted = [...layers].sort((a, b) => a - b);
  const missing: number[] = [];
  const n = (sorted.at(-1) ?? -1) + 1;
  for (let i = 0; i < n; i++) if (!sorted.includes(i)) missing.push(i);
  if (missing.length > 0) {
    throw invalid(
      `${what}s are numbered ${sorted.join(", ")}; layers must be numbered 0..${n - 1} with none missing (missing: ${missing.join(", ")})`,
    );
  }
}

/**
 * The KV-cache dims every past/present tensor agrees on. A symbolic dim is accepted where a
 * fixed one is expected only for batch and sequence; kv_heads and head_dim must be numbers, as
 * the worker allocates the empty prefill cache from them.
 */
function kvDims(all: readonly IoInfo[]): { kvHeads: number; headDim: number; kvDtype: DType } {
  let ref: { io: IoInfo; kvHeads: number; headDim: number } | undefined;
  for (const io of all) {
    if (!FLOAT_KV.includes(io.dtype)) {
      throw invalid(`"${io.name}" is ${io.dtype}; KV-cache tensors must be float32 or float16`);
    }
    if (io.shape.length !== 4) {
      throw invalid(`"${io.name}" has shape ${shapeText(io)}; KV-cache tensors are [batch, kv_heads, seq, head_dim]`);
    }
    const [, heads, , dim] = io.shape;
    if (typeof heads !== "number" || typeof dim !== "number") {
      throw invalid(`"${io.name}" has shape ${shapeText(io)}; kv_heads (dim 1) and head_dim (dim 3) must be fixed numbers`);
    }
    if (ref === undefined) ref = { io, kvHeads: heads, headDim: dim };
    else if (heads !== ref.kvHeads || dim !== ref.headDim || io.dtype !== ref.io.dtype) {
      throw invalid(
        `"${io.name}" is ${io.dtype} ${shapeText(io)} but "${ref.io.name}" is ${ref.io.dtype} ${shapeText(ref.io)}; ` +
          "every KV-cache tensor must have the same dtype, kv_heads and head_dim",
      );
    }
  }
  if (ref === undefined) throw new EdgepoolError("E_INTERNAL", "kvDims called without KV-cache tensors");
  return { kvHeads: ref.kvHeads, headDim: ref.headDim, kvDtype: ref.io.dtype };
}

/** Describes the causal-LM layout of a model signature; see CausalLmOptions for when it throws. */
export function causalLmLayout(info: ModelInfo, opts: CausalLmOptions = {}): CausalLmLayout | undefined {
  const past = pairs(info.inputs, PAST, "input");
  const present = pairs(info.outputs, PRESENT, "output");
  const namesCache = past.size > 0 || present.size > 0;
  const problems = baseProblems(info);
  if (problems.length > 0) {
    if (opts.require === undefined && !namesCache) return undefined;
    throw invalid(`not a causal language model in the Optimum "decoder with past" layout: ${problems.join("; ")}`);
  }
  const logits = info.outputs.find((o) => o.name === "logits");
  const vocabDim = logits?.shape[2];
  const vocab = typeof vocabDim === "number" ? vocabDim : undefined;
  const hasPositionIds = info.inputs.some((i) => i.name === "position_ids");
  const known = new Set(["input_ids", "attention_mask", "position_ids"]);
  const extra = info.inputs.filter((i) => !known.has(i.name) && !PAST.test(i.name)).map((i) => `"${i.name}"`);
  if (extra.length > 0) {
    throw invalid(
      `causal LM has input(s) ${extra.join(", ")} that a decode loop cannot feed; ` +
        "export the decoder with inputs input_ids, attention_mask, position_ids and past_key_values.<i>.key/.value only",
    );
  }

  if (!namesCache) {
    if (opts.require === "kv-cache") {
      throw invalid(
        "causal LM has no KV cache (no past_key_values.<i>.key/.value inputs, no present.<i>.key/.value outputs); " +
          "export it with past (Optimum: --task text-generation-with-past)",
      );
    }
    return { kvCache: false, ...(vocab !== undefined ? { vocab } : {}), hasPositionIds };
  }
  if (past.size === 0) throw invalid("model has present.<i>.key/.value outputs but no past_key_values.<i>.key/.value inputs");
  if (present.size === 0) throw invalid("model has past_key_values.<i>.key/.value inputs but no present.<i>.key/.value outputs");
  checkNumbering([...past.keys()], "past_key_values input");
  checkNumbering([...present.keys()], "present output");
  if (past.size !== present.size) {
    throw invalid(`model has ${past.size} past_key_values layers but ${present.size} present layers; each layer needs both`);
  }
  const all = [...past.values(), ...present.values()].flatMap((p) => [p.key, p.value]);
  const dims = kvDims(all);
  return { kvCache: true, layers: past.size, ...dims, ...(vocab !== undefined ? { vocab } : {}), hasPositionIds };
}

/** Parameter count and bytes of a model's weights (its floating-point and 8-bit initializers). */
export interface WeightStats {
  parameters: number;
  weightBytes: number;
}

/**
 * Counts weights from the initializers. Integer shape/axis constants (int32, int64, bool) are
 * left out: they are graph plumbing, not parameters, and a decode step does not stream them.
 */
export function weightStats(bytes: Uint8Array): WeightStats {
  let parameters = 0;
  let weightBytes = 0;
  for (const t of decodeModel(bytes).graph.initializer) {
    const dtype = dtypeFromOnnx(t.dataType);
    if (dtype === undefined || dtype === "int64" || dtype === "int32" || dtype === "bool") continue;
    let n = 1;
    for (const d of t.dims) n *= d;
    parameters += n;
    weightBytes += n * bytesPerElement(dtype);
  }
  return { parameters, weightBytes };
}

/** A model's causal-LM layout with its weight stats, from ONNX bytes; undefined if not a causal LM. */
export function readCausalLm(
  bytes: Uint8Array,
  opts: CausalLmOptions = {},
): (CausalLmLayout & WeightStats) | undefined {
  const layout = causalLmLayout(readModelInfo(bytes), opts);
  return layout === undefined ? undefined : { ...layout, ...weightStats(bytes) };
}

/**
 * Sizes for a causal LM's symbolic dims (all but the batch) in one generation step at
 * `context` tokens: with a cache, one new token over `context - 1` cached ones; without, the
 * whole `context`-token sequence again. For counting a step's FLOPs from the graph.
 */
export function generationStepDims(info: ModelInfo, layout: CausalLmLayout, context: number): Record<string, number> {
  const minimum = layout.kvCache ? 2 : 1;
  if (!Number.isInteger(context) || context < minimum) {
    throw new EdgepoolError("E_BAD_REQUEST", `context must be an integer of at least ${minimum} tokens, got ${context}`);
  }
  const dims: Record<string, number> = {};
  const set = (io: IoInfo | undefined, axis: number, size: number): void => {
    const d = io?.shape[axis];
    if (typeof d !== "string") return;
    if (dims[d] !== undefined && dims[d] !== size) {
      throw invalid(`dim "${d}" of "${io?.name}" names both ${dims[d]} and ${size} tokens in one step; export the model with distinct symbols for sequence, past and total length`);
    }
    dims[d] = size;
  };
  const input = (name: string): IoInfo | undefined => info.inputs.find((i) => i.name === name);
  const seq = layout.kvCache ? 1 : context;
  set(input("input_ids"), 1, seq);
  set(input("position_ids"), 1, seq);
  set(input("attention_mask"), 1, context);
  if (layout.kvCache) {
    for (const io of info.inputs) if (PAST.test(io.name)) set(io, 2, context - 1);
  }
  return dims;
}
