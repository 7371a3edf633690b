import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EdgepoolError } from "../../shared/errors.js";
import { GraphBuilder } from "../../shared/onnx/builder.js";
import { causalLmLayout, generationStepDims, readCausalLm } from "../../shared/onnx/causal-lm.js";
import { catalogModel } from "../../shared/onnx/catalog.js";
import { readModelInfo } from "../../shared/onnx/model-info.js";

const LAYERS = 2;
const HEADS = 4;
const HEAD_DIM = 16;
const VOCAB = 256;

/** A causal-LM signature whose cache tensors are given as name -> [shape, dtype]. */
function lmSignature(
  past: Record<string, (number | string)[]>,
  present: Record<string, (number | string)[]>,
  opts: { positionIds?: boolean; dtype?: "float32" | "float16" } = {},
): Uint8Array {
  const g = new GraphBuilder({ name: "sig" });
  g.input("input_ids", "int64", ["batch", "seq"]);
  g.input("attention_mask", "int64", ["batch", "total"]);
  if (opts.positionIds === true) g.input("position_ids", "int64", ["batch", "seq"]);
  for (const [name, shape] of Object.entries(past)) g.input(name, opts.dtype ?? "float32", shape);
  const table = g.floats("table", [10, 8], new Float32Array(80));
  g.op("Gather", [table, "input_ids"], {}, "logits");
  g.output("logits", "float32", ["batch", "seq", 8]);
  const src = g.floats("kv.src", [1, 2, 0, 4], new Float32Array(0));
  for (const [name, shape] of Object.entries(present)) {
    g.op("Identity", [src], {}, name);
    g.output(name, opts.dtype ?? "float32", shape);
  }
  return g.build();
}

const kv = (past: string): (number | string)[] => ["batch", 2, past, 4];

function layoutError(bytes: Uint8Array, require?: "causal-lm" | "kv-cache"): EdgepoolError {
  try {
    causalLmLayout(readModelInfo(bytes), require === undefined ? {} : { require });
  } catch (e) {
    if (e instanceof EdgepoolError) return e;
    throw e;
  }
  throw new Error("expected an E_MODEL_INVALID error");
}

describe("causal LM layout", () => {
  it("recognises llm-tiny: layers, kv heads, head dim, vocab, parameters", () => {
    const perLayer = 2 * 2 * 64 + 4 * 64 * 64 + 2 * 64 * 256; // two norms, q/k/v/out, MLP
    // Embeddings, positions, layers, final norm, lm head, and three float scalars (mask, scale).
    const parameters = 256 * 64 + 128 * 64 + LAYERS * perLayer + 2 * 64 + 64 * 256 + 3;
    expect(readCausalLm(catalogModel("llm-tiny").build(), { require: "kv-cache" })).toEqual({
      kvCache: true,
      layers: LAYERS,
      kvHeads: HEADS,
      headDim: HEAD_DIM,
      vocab: VOCAB,
      hasPositionIds: true,
      kvDtype: "float32",
      parameters,
      weightBytes: parameters * 4,
    });
    expect(readCausalLm(catalogModel("llm-tiny").build({ batch: 1 }))).toMatchObject({ layers: 2, vocab: 256 });
  });

  it("recognises a causal LM without a KV cache, and refuses it where a cache is required", () => {
    const bytes = lmSignature({}, {});
    expect(causalLmLayout(readModelInfo(bytes))).toEqual({ kvCache: false, vocab: 8, hasPositionIds: false });
    const err = layoutError(bytes, "kv-cache");
    expect(err.code).toBe("E_MODEL_INVALID");
    expect(err.message).toContain("has no KV cache");
  });

  it("says what is missing from a model that is not a causal LM, only when asked to require one", () => {
    const bytes = catalogModel("transformer").build();
    expect(causalLmLayout(readModelInfo(bytes))).toBeUndefined();
    const err = layoutError(bytes, "causal-lm");
    expect(err.code).toBe("E_MODEL_INVALID");
    expect(err.message).toContain('no output "logits"');
    expect(layoutError(catalogModel("mlp").build(), "causal-lm").message).toContain('no input "input_ids"');
  });

  it("rejects a value without its key", () => {
    const err = layoutError(
      lmSignature(
        { "past_key_values.0.key": kv("p"), "past_key_values.0.value": kv("p"), "past_key_values.1.value": kv("p") },
        { "present.0.key": kv("t"), "present.0.value": kv("t"), "present.1.key": kv("t"), "present.1.value": kv("t") },
      ),
    );
    expect(err.code).toBe("E_MODEL_INVALID");
    expect(err.message).toContain('"past_key_values.1.value" has no matching ".key"');
  });

  it("rejects layers not numbered 0..n-1", () => {
    const both = (i: number, prefix: string, dim: string): Record<string, (number | string)[]> => ({
      [`${prefix}.${i}.key`]: kv(dim),
      [`${prefix}.${i}.value`]: kv(dim),
    });
    const err = layoutError(
      lmSignature({ ...both(0, "past_key_values", "p"), ...both(2, "past_key_values", "p") }, { ...both(0, "present", "t"), ...both(2, "present", "t") }),
    );
    expect(err.message).toContain("numbered 0, 2");
    expect(err.message).toContain("missing: 1");
  });

  it("rejects mismatched kv dims, symbolic heads, and a cache with no present", () => {
    const mismatched = layoutError(
      lmSignature(
        { "past_key_values.0.key": kv("p"), "past_key_values.0.value": ["batch", 2, "p", 8] },
        { "present.0.key": kv("t"), "present.0.value": kv("t") },
      ),
    );
    expect(mismatched.message).toContain('"past_key_values.0.value" is float32 [batch, 2, p, 8]');
    expect(mismatched.message).toContain("same dtype, kv_heads and head_dim");

    const symbolic = layoutError(
      lmSignature(
        { "past_key_values.0.key": ["batch", "heads", "p", 4], "past_key_values.0.value": ["batch", "heads", "p", 4] },
        { "present.0.key": kv("t"), "present.0.value": kv("t") },
      ),
    );
    expect(symbolic.message).toContain("kv_heads (dim 1) and head_dim (dim 3) must be fixed numbers");

    const noPresent = layoutError(lmSignature({ "past_key_values.0.key": kv("p"), "past_key_values.0.value": kv("p") }, {}));
    expect(noPresent.message).toContain("no present.<i>.key/.value outputs");
  });
});

// --- greedy decoding with and without the cache ---------------------------------------------

function int64(rows: readonly (readonly number[])[]): ort.Tensor {
  const width = rows[0]?.length ?? 0;
  return new ort.Tensor("int64", BigInt64Array.from(rows.flat(), (v) => BigInt(v)), [rows.length, width]);
}

function emptyPast(batch: number): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {};
  for (let i = 0; i < LAYERS; i++) {
    for (const half of ["key", "value"]) {
      out[`past_key_values.${i}.${half}`] = new ort.Tensor("float32", new Float32Array(0), [batch, HEADS, 0, HEAD_DIM]);
    }
  }
  return out;
}

/** Position ids from a mask: cumulative sum minus 1, clamped at 0. */
function positionsFrom(mask: readonly (readonly number[])[]): number[][] {
  return mask.map((row) => {
    let sum = 0;
    return row.map((m) => {
      sum += m;
      return Math.max(sum - 1, 0);
    });
  });
}

/** The logits of row `r` at position `p` of a [batch, seq, vocab] output. */
function logitsAt(out: ort.Tensor, r: number, p: number): Float32Array {
  const [, seq = 0, vocab = 0] = out.dims;
  return (out.data as Float32Array).slice((r * seq + p) * vocab, (r * seq + p + 1) * vocab);
}

function argmax(v: Float32Array): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if ((v[i] ?? -Infinity) > (v[best] ?? -Infinity)) best = i;
  return best;
}

interface Decoded {
  tokens: number[][];
  /** Per step, per row: the logits the token was chosen from. */
  logits: Float32Array[][];
}

/**
 * Greedy decode with the KV cache: one prefill over right-padded prompts, then one token per
 * step with the previous present fed back as past. A row's first token comes from its last
 * real prompt position.
 */
async function decodeCached(session: ort.InferenceSession, prompts: number[][], mask: number[][], steps: number): Promise<Decoded> {
  const batch = prompts.length;
  const lengths = mask.map((row) => row.reduce((a, b) => a + b, 0));
  let out = await session.run({
    input_ids: int64(prompts),
    attention_mask: int64(mask),
    position_ids: int64(positionsFrom(mask)),
    ...emptyPast(batch),
  });
  const logitsOut = (o: ort.InferenceSession.OnnxValueMapType): ort.Tensor => {
    const l = o.logits;
    if (l === undefined) throw new Error("no logits");
    return l;
  };
  let stepLogits = lengths.map((len, r) => logitsAt(logitsOut(out), r, len - 1));
  const tokens: number[][] = Array.from({ length: batch }, () => []);
  const logits: Float32Array[][] = [];
  const fullMask = mask.map((row) => [...row]);
  for (let k = 0; ; k++) {
    logits.push(stepLogits);
    stepLogits.forEach((l, r) => tokens[r]?.push(argmax(l)));
    if (k === steps - 1) break;
    const past: Record<string, ort.Tensor> = {};
    for (let i = 0; i < LAYERS; i++) {
      for (const half of ["key", "value"]) {
        const t = out[`present.${i}.${half}`];
        if (t === undefined) throw new Error(`no present.${i}.${half}`);
        past[`past_key_values.${i}.${half}`] = t;
      }
    }
    for (const row of fullMask) row.push(1);
    out = await session.run({
      input_ids: int64(tokens.map((row) => [row[k] ?? 0])),
      attention_mask: int64(fullMask),
      position_ids: int64(lengths.map((len) => [len + k])),
      ...past,
    });
    stepLogits = Array.from({ length: batch }, (_, r) => logitsAt(logitsOut(out), r, 0));
  }
  return { tokens, logits };
}

/** Greedy decode without the cache: every step re-runs the whole (unpadded, equal-length) sequences. */
async function decodeFull(session: ort.InferenceSession, prompts: number[][], steps: number): Promise<Decoded> {
  const seqs = prompts.map((p) => [...p]);
  const tokens: number[][] = prompts.map(() => []);
  const logits: Float32Array[][] = [];
  for (let k = 0; k < steps; k++) {
    const width = seqs[0]?.length ?? 0;
    const ones = seqs.map((s) => s.map(() => 1));
    const out = await session.run({
      input_ids: int64(seqs),
      attention_mask: int64(ones),
      position_ids: int64(positionsFrom(ones)),
      ...emptyPast(seqs.length),
    });
    const l = out.logits;
    if (l === undefined) throw new Error("no logits");
    const step = seqs.map((_, r) => logitsAt(l, r, width - 1));
    logits.push(step);
    step.forEach((v, r) => {
      const t = argmax(v);
      tokens[r]?.push(t);
      seqs[r]?.push(t);
    });
  }
  return { tokens, logits };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] ?? NaN) - (b[i] ?? NaN)));
  return m;
}

/** The largest logit difference between two decodes, over every step and row. */
function worstLogitGap(a: Decoded, b: Decoded): number {
  let m = 0;
  a.logits.forEach((step, k) => step.forEach((l, r) => (m = Math.max(m, maxAbsDiff(l, b.logits[k]?.[r] ?? new Float32Array(0))))));
  return m;
}

describe("llm-tiny greedy decoding in onnxruntime-node", () => {
  const STEPS = 12;
  let session: ort.InferenceSession;

  beforeAll(async () => {
    session = await ort.InferenceSession.create(catalogModel("llm-tiny").build(), { intraOpNumThreads: 1 });
  });

  afterAll(async () => {
    await session.release();
  });

  it("the KV cache gives the tokens of a full re-run, for prompts of equal length", async () => {
    const prompts = [
      [17, 3, 200, 45, 9],
      [88, 120, 5, 61, 250],
    ];
    const cached = await decodeCached(session, prompts, prompts.map((p) => p.map(() => 1)), STEPS);
    const full = await decodeFull(session, prompts, STEPS);
    expect(cached.tokens).toEqual(full.tokens);
    expect(cached.tokens[0]).toHaveLength(STEPS);
    // The model is not degenerate: rows differ and each row uses more than one token.
    expect(cached.tokens[0]).not.toEqual(cached.tokens[1]);
    for (const row of cached.tokens) expect(new Set(row).size).toBeGreaterThan(1);
    expect(worstLogitGap(cached, full)).toBeLessThan(1e-4);
  });

  it("the KV cache gives each row's own tokens for right-padded prompts of different lengths", async () => {
    const real = [
      [31, 7, 140, 99, 2, 77, 18],
      [64, 201, 13],
    ];
    const width = 7;
    // Padding holds a real token id, so a leak through the mask would change the answer.
    const padded = real.map((p) => [...p, ...Array<number>(width - p.length).fill(42)]);
    const mask = real.map((p) => Array.from({ length: width }, (_, j) => (j < p.length ? 1 : 0)));
    const cached = await decodeCached(session, padded, mask, STEPS);
    for (const [r, prompt] of real.entries()) {
      const alone = await decodeFull(session, [prompt], STEPS);
      expect(cached.tokens[r]).toEqual(alone.tokens[0]);
      const gap = Math.max(...alone.logits.map((step, k) => maxAbsDiff(step[0] ?? new Float32Array(0), cached.logits[k]?.[r] ?? new Float32Array(0))));
      expect(gap).toBeLessThan(1e-4);
    }
    expect(cached.tokens[0]).not.toEqual(cached.tokens[1]);
  });

  it("present holds past and new keys: [batch, kv_heads, past+seq, head_dim]", async () => {
    const prompts = [[1, 2, 3]];
    const ones = [[1, 1, 1]];
    const pre = await session.run({ input_ids: int64(prompts), attention_mask: int64(ones), position_ids: int64([[0, 1, 2]]), ...emptyPast(1) });
    expect(pre["present.1.value"]?.dims).toEqual([1, HEADS, 3, HEAD_DIM]);
    const past: Record<string, ort.Tensor> = {};
    for (let i = 0; i < LAYERS; i++) {
      for (const half of ["key", "value"]) past[`past_key_values.${i}.${half}`] = pre[`present.${i}.${half}`] as ort.Tensor;
    }
    const next = await session.run({ input_ids: int64([[4]]), attention_mask: int64([[1, 1, 1, 1]]), position_ids: int64([[3]]), ...past });
    const key = next["present.0.key"] as ort.Tensor;
    expect(key.dims).toEqual([1, HEADS, 4, HEAD_DIM]);
    // The first three positions are the past, unchanged, for every head.
    const before = pre["present.0.key"]?.data as Float32Array;
    const after = key.data as Float32Array;
    for (let h = 0; h < HEADS; h++) {
      expect(Array.from(after.subarray(h * 4 * HEAD_DIM, (h * 4 + 3) * HEAD_DIM))).toEqual(
        Array.from(before.subarray(h * 3 * HEAD_DIM, (h + 1) * 3 * HEAD_DIM)),
      );
    }
  });
});

describe("generation step dims", () => {
  it("sizes one cached decode step: one new token over context - 1 cached ones", () => {
    const info = readModelInfo(catalogModel("llm-tiny").build());
    const layout = causalLmLayout(info, { require: "kv-cache" });
    if (layout === undefined) throw new Error("llm-tiny not recognised");
    expect(generationStepDims(info, layout, 128)).toEqual({ sequence_length: 1, total_sequence_length: 128, past_sequence_length: 127 });
    expect(() => generationStepDims(info, layout, 1)).toThrowError(/at least 2 tokens/);
  });

  it("sizes a step without a cache as the whole sequence, and refuses one symbol meaning two lengths", () => {
    const noCache = readModelInfo(lmSignature({}, {}));
    const layout = causalLmLayout(noCache);
    if (layout === undefined) throw new Error("not recognised");
    expect(generationStepDims(noCache, layout, 32)).toEqual({ seq: 32, total: 32 });

    // Past and new tokens under one symbol: a cached step cannot say how long each is.
    const shared = readModelInfo(
      lmSignature({ "past_key_values.0.key": kv("seq"), "past_key_values.0.value": kv("seq") }, { "present.0.key": kv("t"), "present.0.value": kv("t") }),
    );
    const sharedLayout = causalLmLayout(shared);
    if (sharedLayout === undefined) throw new Error("not recognised");
    expect(() => generationStepDims(shared, sharedLayout, 16)).toThrowError(/dim "seq" .* names both 1 and 15 tokens/);
  });

  it("refuses inputs a decode loop cannot feed, naming them", () => {
    const g = new GraphBuilder({ name: "merged" });
    g.input("input_ids", "int64", ["batch", "seq"]);
    g.input("attention_mask", "int64", ["batch", "total"]);
    g.input("use_cache_branch", "bool", [1]);
    g.op("Gather", [g.floats("table", [10, 8], new Float32Array(80)), "input_ids"], {}, "logits");
    g.output("logits", "float32", ["batch", "seq", 8]);
    const err = layoutError(g.build());
    expect(err.code).toBe("E_MODEL_INVALID");
    expect(err.message).toContain('input(s) "use_cache_branch" that a decode loop cannot feed');
  });
});
