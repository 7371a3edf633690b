/**
 * The built-in model catalog. Models are generated in code (no binaries ship), with seeded
 * weights so every build is byte-identical, scaled so activations stay O(1): outputs are
 * finite, vary with the input, and are useful for checking that a sharded run matches a
 * single run. They are not trained; their outputs mean nothing beyond that.
 *
 * Every model's first input dim is the batch: symbolic ("batch") by default, or fixed when
 * `build({ batch: n })` asks for it, as models exported for a batch of one often are.
 */
import { EdgepoolError } from "../errors.js";
import type { Tensor } from "../tensor/tensor.js";
import { GraphBuilder, SeededRandom, attr } from "./builder.js";
import { batchDim, heStd, normalInput, type CatalogBuildOptions } from "./catalog-build.js";
import { LM_DIM, LM_HEADS, LM_LAYERS, LM_MAX_POSITIONS, LM_VOCAB, buildLlmTiny, llmTinyInputs } from "./catalog-llm.js";

export { CatalogBuildOptionsSchema, type CatalogBuildOptions } from "./catalog-build.js";

export interface CatalogEntry {
  name: string;
  description: string;
  /** ONNX model bytes; the same options always give the same bytes. */
  build(opts?: CatalogBuildOptions): Uint8Array;
  /** Deterministic, valid example inputs for `batch` rows, keyed by input name. */
  sampleInputs(batch: number, seed?: number): Record<string, Tensor>;
}

// --- mlp ---------------------------------------------------------------------------------

const MLP_IN = 256;
const MLP_HIDDEN = 512;
const MLP_OUT = 10;
/** Compute-dense perceptron: ~8.7 MFLOP per 256-byte sample, for pools where compute, not transfer, dominates. */
const WIDE_MLP_SIZES = [64, 2048, 2048, 10] as const;

/** A perceptron x [batch, sizes[0]] -> ReLU hidden layers -> logits [batch, sizes.at(-1)]. */
function buildPerceptron(name: string, seed: number, sizes: readonly number[], opts?: CatalogBuildOptions): Uint8Array {
  const batch = batchDim(opts, name);
  const rng = new SeededRandom(seed);
  const g = new GraphBuilder({ name });
  g.input("x", "float32", [batch, sizes[0]!]);
  let h = "x";
  for (let i = 1; i < sizes.length; i++) {
    const fanIn = sizes[i - 1]!;
    const fanOut = sizes[i]!;
    const last = i === sizes.length - 1;
    const w = g.floats(`fc${i}.weight`, [fanIn, fanOut], rng.normalArray(fanIn * fanOut, last ? Math.sqrt(1 / fanIn) : heStd(fanIn)));
    const b = g.floats(`fc${i}.bias`, [fanOut], rng.normalArray(fanOut, 0.05));
    const z = last ? g.op("Add", [g.op("MatMul", [h, w]), b], {}, "logits") : g.op("Add", [g.op("MatMul", [h, w]), b]);
    h = last ? z : g.op("Relu", [z]);
  }
  g.output("logits", "float32", [batch, sizes[sizes.length - 1]!]);
  return g.build();
}

function buildMlp(opts?: CatalogBuildOptions): Uint8Array {
  return buildPerceptron("mlp", 0x6d6c70, [MLP_IN, MLP_HIDDEN, MLP_OUT], opts);
}

function buildWideMlp(opts?: CatalogBuildOptions): Uint8Array {
  return buildPerceptron("wide-mlp", 0x776d6c70, WIDE_MLP_SIZES, opts);
}

// --- scale -------------------------------------------------------------------------------

/** Floats per row of the I/O-bound model: 16 KiB in and 16 KiB out per sample. */
const SCALE_WIDTH = 4096;

/** y = 2x: one multiply per 8 bytes moved, so a pool running it measures transport, not compute. */
function buildScale(opts?: CatalogBuildOptions): Uint8Array {
  const batch = batchDim(opts, "scale");
  const g = new GraphBuilder({ name: "scale" });
  g.input("x", "float32", [batch, SCALE_WIDTH]);
  const two = g.floats("two", [1], [2]);
  g.op("Mul", ["x", two], {}, "y");
  g.output("y", "float32", [batch, SCALE_WIDTH]);
  return g.build();
}

// --- cnn ---------------------------------------------------------------------------------

const CNN_BLOCKS: readonly { cin: number; cout: number; stride: number }[] = [
  { cin: 16, cout: 32, stride: 1 },
  { cin: 32, cout: 64, stride: 1 },
  { cin: 64, cout: 128, stride: 2 },
  { cin: 128, cout: 256, stride: 1 },
];
const CNN_CLASSES = 10;

function buildCnn(opts?: CatalogBuildOptions): Uint8Array {
  const batch = batchDim(opts, "cnn");
  const rng = new SeededRandom(0x636e6e);
  const g = new GraphBuilder({ name: "cnn" });
  g.input("image", "float32", [batch, 3, 32, 32]);
  const conv3x3 = { kernel_shape: attr.ints([3, 3]), pads: attr.ints([1, 1, 1, 1]) };

  const stemW = g.floats("stem.weight", [16, 3, 3, 3], rng.normalArray(16 * 27, heStd(27)));
  const stemB = g.floats("stem.bias", [16], rng.normalArray(16, 0.05));
  let x = g.op("Relu", [g.op("Conv", ["image", stemW, stemB], { ...conv3x3, strides: attr.ints([2, 2]) })]);

  CNN_BLOCKS.forEach(({ cin, cout, stride }, i) => {
    const p = `block${i + 1}`;
    const dwW = g.floats(`${p}.dw.weight`, [cin, 1, 3, 3], rng.normalArray(cin * 9, heStd(9)));
    const dw = g.op("Conv", [x, dwW], { ...conv3x3, group: attr.int(cin), strides: attr.ints([stride, stride]) });
    // Inference-mode batch norm with unit statistics: close to identity, so the scale set
    // by the init survives, while the graph still has the op real MobileNets have.
    const scale = g.floats(`${p}.bn.scale`, [cin], rng.normalArray(cin, 0.05, 1));
    const bias = g.floats(`${p}.bn.bias`, [cin], rng.normalArray(cin, 0.05));
    const mean = g.floats(`${p}.bn.mean`, [cin], new Float32Array(cin));
    const variance = g.floats(`${p}.bn.var`, [cin], new Float32Array(cin).fill(1));
    const bn = g.op("BatchNormalization", [dw, scale, bias, mean, variance], { epsilon: attr.float(1e-5) });
    const h = g.op("Relu", [bn]);
    const pwW = g.floats(`${p}.pw.weight`, [cout, cin, 1, 1], rng.normalArray(cout * cin, heStd(cin)));
    const pwB = g.floats(`${p}.pw.bias`, [cout], rng.normalArray(cout, 0.05));
    x = g.op("Relu", [g.op("Conv", [h, pwW, pwB], { kernel_shape: attr.ints([1, 1]) })]);
  });

  const last = CNN_BLOCKS[CNN_BLOCKS.length - 1]?.cout ?? 0;
  const pooled = g.op("Flatten", [g.op("GlobalAveragePool", [x])], { axis: attr.int(1) });
  const fcW = g.floats("fc.weight", [CNN_CLASSES, last], rng.normalArray(CNN_CLASSES * last, Math.sqrt(1 / last)));
  const fcB = g.floats("fc.bias", [CNN_CLASSES], rng.normalArray(CNN_CLASSES, 0.05));
  g.op("Gemm", [pooled, fcW, fcB], { transB: attr.int(1) }, "logits");
  g.output("logits", "float32", [batch, CNN_CLASSES]);
  return g.build();
}

// --- transformer -------------------------------------------------------------------------

const TF_SEQ = 16;
const TF_VOCAB = 1000;
const TF_DIM = 64;
const TF_HEADS = 4;
const TF_HEAD_DIM = TF_DIM / TF_HEADS;
const TF_FFN = 256;

function buildTransformer(opts?: CatalogBuildOptions): Uint8Array {
  const batch = batchDim(opts, "transformer");
  const rng = new SeededRandom(0x74666d);
  const g = new GraphBuilder({ name: "transformer" });
  g.input("input_ids", "int64", [batch, TF_SEQ]);
  g.input("attention_mask", "int64", [batch, TF_SEQ]);

  const linear = (name: string, x: string, fanIn: number, fanOut: number, std: number): string => {
    const w = g.floats(`${name}.weight`, [fanIn, fanOut], rng.normalArray(fanIn * fanOut, std));
    const b = g.floats(`${name}.bias`, [fanOut], rng.normalArray(fanOut, 0.02));
    return g.op("Add", [g.op("MatMul", [x, w]), b]);
  };
  const layerNorm = (name: string, x: string, output?: string): string => {
    const scale = g.floats(`${name}.scale`, [TF_DIM], rng.normalArray(TF_DIM, 0.05, 1));
    const bias = g.floats(`${name}.bias`, [TF_DIM], rng.normalArray(TF_DIM, 0.05));
    return g.op("LayerNormalization", [x, scale, bias], { axis: attr.int(-1), epsilon: attr.float(1e-5) }, output);
  };

  // Embeddings: token lookup plus a learned position table broadcast over the batch.
  const tokTable = g.floats("embed.tokens", [TF_VOCAB, TF_DIM], rng.normalArray(TF_VOCAB * TF_DIM, 1));
  const posTable = g.floats("embed.positions", [TF_SEQ, TF_DIM], rng.normalArray(TF_SEQ * TF_DIM, 0.5));
  const emb = g.op("Add", [g.op("Gather", [tokTable, "input_ids"], { axis: attr.int(0) }), posTable]);
  const h0 = layerNorm("embed.norm", emb);

  // Multi-head self-attention. Reshape uses 0 to copy the batch dim, so the same graph
  // serves a symbolic and a fixed batch.
  const headsShape = g.int64s("attn.heads_shape", [4], [0, TF_SEQ, TF_HEADS, TF_HEAD_DIM]);
  const mergedShape = g.int64s("attn.merged_shape", [3], [0, TF_SEQ, TF_DIM]);
  const qkvStd = Math.sqrt(1 / TF_DIM);
  const split = (x: string, perm: number[]): string =>
    g.op("Transpose", [g.op("Reshape", [x, headsShape])], { perm: attr.ints(perm) });
  const q = split(linear("attn.q", h0, TF_DIM, TF_DIM, qkvStd), [0, 2, 1, 3]); // [b,h,s,d]
  const k = split(linear("attn.k", h0, TF_DIM, TF_DIM, qkvStd), [0, 2, 3, 1]); // [b,h,d,s]
  const v = split(linear("attn.v", h0, TF_DIM, TF_DIM, qkvStd), [0, 2, 1, 3]); // [b,h,s,d]
  const scaleConst = g.floats("attn.scale", [], [1 / Math.sqrt(TF_HEAD_DIM)]);
  const scores = g.op("Mul", [g.op("MatMul", [q, k]), scaleConst]); // [b,h,s,s]

  // Padding mask → additive bias: 0 where attended, -1e4 where padded (not -Inf, so a row
  // that is all padding still gives a finite, uniform softmax).
  const one = g.floats("mask.one", [], [1]);
  const negLarge = g.floats("mask.neg", [], [-1e4]);
  const unsqueezeAxes = g.int64s("mask.axes", [2], [1, 2]);
  const maskF = g.op("Cast", ["attention_mask"], { to: attr.int(1) });
  const maskBias = g.op("Unsqueeze", [g.op("Mul", [g.op("Sub", [one, maskF]), negLarge]), unsqueezeAxes]); // [b,1,1,s]
  const probs = g.op("Softmax", [g.op("Add", [scores, maskBias])], { axis: attr.int(-1) });
  const ctx = g.op("Reshape", [
    g.op("Transpose", [g.op("MatMul", [probs, v])], { perm: attr.ints([0, 2, 1, 3]) }),
    mergedShape,
  ]);
  const h1 = g.op("Add", [h0, linear("attn.out", ctx, TF_DIM, TF_DIM, qkvStd)]);

  // Feed-forward with the exact (erf) GELU: 0.5 * x * (1 + erf(x / sqrt(2))).
  const f1 = linear("ffn.in", h1, TF_DIM, TF_FFN, heStd(TF_DIM));
  const sqrt2 = g.floats("gelu.sqrt2", [], [Math.SQRT2]);
  const half = g.floats("gelu.half", [], [0.5]);
  const erf = g.op("Erf", [g.op("Div", [f1, sqrt2])]);
  const gelu = g.op("Mul", [g.op("Mul", [f1, g.op("Add", [erf, one])]), half]);
  const f2 = linear("ffn.out", gelu, TF_FFN, TF_DIM, Math.sqrt(1 / TF_FFN));
  const h2 = g.op("Add", [h1, f2]);

  layerNorm("out.norm", h2, "embeddings");
  g.op("ReduceMean", ["embeddings"], { axes: attr.ints([1]), keepdims: attr.int(0) }, "pooled");
  g.output("embeddings", "float32", [batch, TF_SEQ, TF_DIM]);
  g.output("pooled", "float32", [batch, TF_DIM]);
  return g.build();
}

function transformerInputs(batch: number, seed = 1): Record<string, Tensor> {
  const rng = new SeededRandom(seed);
  const ids = new BigInt64Array(batch * TF_SEQ);
  const mask = new BigInt64Array(batch * TF_SEQ);
  for (let b = 0; b < batch; b++) {
    // Each row has 1..16 real tokens followed by padding.
    const len = rng.int(1, TF_SEQ + 1);
    for (let s = 0; s < TF_SEQ; s++) {
      ids[b * TF_SEQ + s] = s < len ? BigInt(rng.int(1, TF_VOCAB)) : 0n;
      mask[b * TF_SEQ + s] = s < len ? 1n : 0n;
    }
  }
  return {
    input_ids: { dtype: "int64", dims: [batch, TF_SEQ], data: ids },
    attention_mask: { dtype: "int64", dims: [batch, TF_SEQ], data: mask },
  };
}

/** The built-in models, in the order they are listed to users. */
export const CATALOG: readonly CatalogEntry[] = [
  {
    name: "mlp",
    description: "Two-layer perceptron: x [batch,256] → 512 (ReLU) → logits [batch,10]",
    build: buildMlp,
    sampleInputs: (batch, seed = 1) => ({ x: normalInput([batch, MLP_IN], seed) }),
  },
  {
    name: "wide-mlp",
    description: "Compute-dense perceptron: x [batch,64] → 2048 → 2048 (ReLU) → logits [batch,10]; ~8.7 MFLOP per 256-byte sample",
    build: buildWideMlp,
    sampleInputs: (batch, seed = 1) => ({ x: normalInput([batch, WIDE_MLP_SIZES[0]], seed) }),
  },
  {
    name: "scale",
    description: `I/O-bound: y = 2x on x [batch,${SCALE_WIDTH}] (16 KiB in and out per sample, one multiply per 8 bytes); for transport measurements`,
    build: buildScale,
    sampleInputs: (batch, seed = 1) => ({ x: normalInput([batch, SCALE_WIDTH], seed) }),
  },
  {
    name: "cnn",
    description:
      "MobileNet-style CNN: image [batch,3,32,32] → stem conv + 4 depthwise-separable blocks → logits [batch,10]",
    build: buildCnn,
    sampleInputs: (batch, seed = 1) => ({ image: normalInput([batch, 3, 32, 32], seed) }),
  },
  {
    name: "transformer",
    description:
      "One transformer encoder block (4 heads, d=64, vocab 1000): input_ids/attention_mask [batch,16] → " +
      "embeddings [batch,16,64], pooled [batch,64]",
    build: buildTransformer,
    sampleInputs: transformerInputs,
  },
  {
    name: "llm-tiny",
    description:
      `Decoder-only LM with a KV cache (Optimum decoder-with-past layout; ${LM_LAYERS} layers, ${LM_HEADS} heads, ` +
      `d=${LM_DIM}, vocab ${LM_VOCAB}, ${LM_MAX_POSITIONS} positions): input_ids/attention_mask/position_ids + ` +
      "past_key_values.<i>.key/.value → logits [batch,seq,256] + present.<i>.key/.value; for generation tests",
    build: buildLlmTiny,
    sampleInputs: llmTinyInputs,
  },
];

/** Names of the built-in models. */
export function catalogNames(): string[] {
  return CATALOG.map((m) => m.name);
}

/** The catalog entry called `name`; throws E_NOT_FOUND naming the ones that exist. */
export function catalogModel(name: string): CatalogEntry {
  const entry = CATALOG.find((m) => m.name === name);
  if (entry === undefined) {
    throw new EdgepoolError("E_NOT_FOUND", `no built-in model "${name}"; choose one of: ${catalogNames().join(", ")}`);
  }
  return entry;
}
