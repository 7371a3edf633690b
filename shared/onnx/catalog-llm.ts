/** The catalog's language models (llm-tiny): decoder-only transformers in the Optimum "decoder with past" layout. */
import type { Tensor } from "../tensor/tensor.js";
import { GraphBuilder, SeededRandom, attr } from "./builder.js";
import { batchDim, heStd, type CatalogBuildOptions } from "./catalog-build.js";

// --- llm-tiny ----------------------------------------------------------------------------

export const LM_VOCAB = 256;
export const LM_DIM = 64;
export const LM_LAYERS = 2;
export const LM_HEADS = 4;
const LM_HEAD_DIM = LM_DIM / LM_HEADS;
const LM_FFN = 256;
export const LM_MAX_POSITIONS = 128;
/** Prompt length of the sample inputs. */
const LM_SAMPLE_SEQ = 8;

/**
 * A decoder-only transformer in the Optimum "decoder with past" layout: every layer takes its
 * cached keys and values, appends this call's, returns the lot as `present.<i>.*` and attends
 * over it. A prefill passes past tensors with a sequence dim of 0; a decode step passes one
 * token and the previous call's present. Pre-norm blocks, SiLU MLP, learned positions.
 */
export function buildLlmTiny(opts?: CatalogBuildOptions): Uint8Array {
  const batch = batchDim(opts, "llm-tiny");
  const rng = new SeededRandom(0x6c6c6d);
  const g = new GraphBuilder({ name: "llm-tiny" });
  g.input("input_ids", "int64", [batch, "sequence_length"]);
  g.input("attention_mask", "int64", [batch, "total_sequence_length"]);
  g.input("position_ids", "int64", [batch, "sequence_length"]);
  for (let i = 0; i < LM_LAYERS; i++) {
    for (const kv of ["key", "value"]) {
      g.input(`past_key_values.${i}.${kv}`, "float32", [batch, LM_HEADS, "past_sequence_length", LM_HEAD_DIM]);
    }
  }

  const matmul = (name: string, x: string, fanIn: number, fanOut: number, std: number): string =>
    g.op("MatMul", [x, g.floats(`${name}.weight`, [fanIn, fanOut], rng.normalArray(fanIn * fanOut, std))]);
  const layerNorm = (name: string, x: string): string => {
    const scale = g.floats(`${name}.scale`, [LM_DIM], rng.normalArray(LM_DIM, 0.05, 1));
    const bias = g.floats(`${name}.bias`, [LM_DIM], rng.normalArray(LM_DIM, 0.05));
    return g.op("LayerNormalization", [x, scale, bias], { axis: attr.int(-1), epsilon: attr.float(1e-5) });
  };

  const tokTable = g.floats("embed.tokens", [LM_VOCAB, LM_DIM], rng.normalArray(LM_VOCAB * LM_DIM, 1));
  const posTable = g.floats("embed.positions", [LM_MAX_POSITIONS, LM_DIM], rng.normalArray(LM_MAX_POSITIONS * LM_DIM, 0.5));
  let x = g.op("Add", [
    g.op("Gather", [tokTable, "input_ids"], { axis: attr.int(0) }),
    g.op("Gather", [posTable, "position_ids"], { axis: attr.int(0) }),
  ]); // [b,s,d]

  // One additive bias [b,1,s,total] shared by every layer: -1e4 on padded keys (from the mask)
  // and on keys after the query (causal: query i sits at absolute position past+i). -1e4, not
  // -Inf, so a padding query whose keys are all masked still gets a finite softmax; exp of
  // -1e4 is exactly 0 in float32, so masked keys contribute nothing, cached or not.
  const one = g.floats("mask.one", [], [1]);
  const negLarge = g.floats("mask.neg", [], [-1e4]);
  const idx0 = g.int64s("mask.idx0", [], [0]);
  const idx1 = g.int64s("mask.idx1", [], [1]);
  const step = g.int64s("mask.step", [], [1]);
  const maskF = g.op("Cast", ["attention_mask"], { to: attr.int(1) });
  const padBias = g.op("Unsqueeze", [g.op("Mul", [g.op("Sub", [one, maskF]), negLarge]), g.int64s("mask.pad_axes", [2], [1, 2])]); // [b,1,1,t]
  const seqLen = g.op("Gather", [g.op("Shape", ["input_ids"]), idx1], { axis: attr.int(0) });
  const totalLen = g.op("Gather", [g.op("Shape", ["attention_mask"]), idx1], { axis: attr.int(0) });
  const queryPos = g.op("Range", [g.op("Sub", [totalLen, seqLen]), totalLen, step]); // [s]
  const keyPos = g.op("Range", [idx0, totalLen, step]); // [t]
  const future = g.op("Greater", [
    g.op("Unsqueeze", [keyPos, g.int64s("mask.key_axes", [1], [0])]), // [1,t]
    g.op("Unsqueeze", [queryPos, g.int64s("mask.query_axes", [1], [1])]), // [s,1]
  ]); // [s,t]
  const causalBias = g.op("Mul", [g.op("Cast", [future], { to: attr.int(1) }), negLarge]);
  const bias = g.op("Add", [padBias, causalBias]); // [b,1,s,t]

  // Reshape's 0 copies the batch and sequence dims, so one graph serves any batch and length.
  const headsShape = g.int64s("attn.heads_shape", [4], [0, 0, LM_HEADS, LM_HEAD_DIM]);
  const mergedShape = g.int64s("attn.merged_shape", [3], [0, 0, LM_DIM]);
  const scaleConst = g.floats("attn.scale", [], [1 / Math.sqrt(LM_HEAD_DIM)]);
  const projStd = Math.sqrt(1 / LM_DIM);
  const heads = (t: string): string =>
    g.op("Transpose", [g.op("Reshape", [t, headsShape])], { perm: attr.ints([0, 2, 1, 3]) }); // [b,h,s,hd]

  for (let i = 0; i < LM_LAYERS; i++) {
    const p = `layers.${i}`;
    const h = layerNorm(`${p}.attn_norm`, x);
    const q = heads(matmul(`${p}.attn.q`, h, LM_DIM, LM_DIM, projStd));
    const kNew = heads(matmul(`${p}.attn.k`, h, LM_DIM, LM_DIM, projStd));
    const vNew = heads(matmul(`${p}.attn.v`, h, LM_DIM, LM_DIM, projStd));
    const k = g.op("Concat", [`past_key_values.${i}.key`, kNew], { axis: attr.int(2) }, `present.${i}.key`); // [b,h,t,hd]
    const v = g.op("Concat", [`past_key_values.${i}.value`, vNew], { axis: attr.int(2) }, `present.${i}.value`);
    const kT = g.op("Transpose", [k], { perm: attr.ints([0, 1, 3, 2]) });
    const scores = g.op("Add", [g.op("Mul", [g.op("MatMul", [q, kT]), scaleConst]), bias]); // [b,h,s,t]
    const probs = g.op("Softmax", [scores], { axis: attr.int(-1) });
    const ctx = g.op("Reshape", [
      g.op("Transpose", [g.op("MatMul", [probs, v])], { perm: attr.ints([0, 2, 1, 3]) }),
      mergedShape,
    ]);
    x = g.op("Add", [x, matmul(`${p}.attn.out`, ctx, LM_DIM, LM_DIM, projStd)]);

    // SiLU MLP: u * sigmoid(u).
    const u = matmul(`${p}.mlp.up`, layerNorm(`${p}.mlp_norm`, x), LM_DIM, LM_FFN, heStd(LM_DIM));
    const act = g.op("Mul", [u, g.op("Sigmoid", [u])]);
    x = g.op("Add", [x, matmul(`${p}.mlp.down`, act, LM_FFN, LM_DIM, Math.sqrt(1 / LM_FFN))]);
  }

  const head = g.floats("lm_head.weight", [LM_DIM, LM_VOCAB], rng.normalArray(LM_DIM * LM_VOCAB, Math.sqrt(1 / LM_DIM)));
  g.op("MatMul", [layerNorm("final_norm", x), head], {}, "logits");
  g.output("logits", "float32", [batch, "sequence_length", LM_VOCAB]);
  for (let i = 0; i < LM_LAYERS; i++) {
    for (const kv of ["key", "value"]) {
      g.output(`present.${i}.${kv}`, "float32", [batch, LM_HEADS, "total_sequence_length", LM_HEAD_DIM]);
    }
  }
  return g.build();
}

/**
 * A prefill for `batch` right-padded prompts of 1..8 tokens: ids, mask, position ids from the
 * mask (cumulative sum minus 1, clamped at 0) and empty past tensors.
 */
export function llmTinyInputs(batch: number, seed = 1): Record<string, Tensor> {
  const rng = new SeededRandom(seed);
  const s = LM_SAMPLE_SEQ;
  const ids = new BigInt64Array(batch * s);
  const mask = new BigInt64Array(batch * s);
  const pos = new BigInt64Array(batch * s);
  for (let b = 0; b < batch; b++) {
    const len = rng.int(1, s + 1);
    for (let j = 0; j < s; j++) {
      ids[b * s + j] = j < len ? BigInt(rng.int(1, LM_VOCAB)) : 0n;
      mask[b * s + j] = j < len ? 1n : 0n;
      pos[b * s + j] = BigInt(Math.min(j, len - 1));
    }
  }
  const out: Record<string, Tensor> = {
    input_ids: { dtype: "int64", dims: [batch, s], data: ids },
    attention_mask: { dtype: "int64", dims: [batch, s], data: mask },
    position_ids: { dtype: "int64", dims: [batch, s], data: pos },
  };
  for (let i = 0; i < LM_LAYERS; i++) {
    for (const kv of ["key", "value"]) {
      out[`past_key_values.${i}.${kv}`] = { dtype: "float32", dims: [batch, LM_HEADS, 0, LM_HEAD_DIM], data: new Float32Array(0) };
    }
  }
  return out;
}
