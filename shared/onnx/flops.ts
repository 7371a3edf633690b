/**
 * FLOP accounting for an ONNX graph, per sample, by static shape inference.
 *
 * The graph is walked once in node order (ONNX requires topological order). Every value
 * gets a concrete shape; small integer tensors also get their values (constant folding),
 * because shape chains such as Shape → Gather → Concat → Reshape, or Constant →
 * ConstantOfShape for weights, need them. The batch dim (first dim of each graph input) is
 * set to 1 when symbolic; a fixed batch B is kept and the total divided by B.
 *
 * Conventions (one multiply-add = 2 FLOPs):
 * - Conv: 2·N·Cout·∏out·(Cin/group)·∏kernel, plus one add per output element for a bias.
 *   ConvTranspose: 2·N·Cin·∏in·(Cout/group)·∏kernel, plus bias adds.
 * - MatMul: 2·M·N·K per (broadcast) batch entry. Gemm: 2·M·N·K, plus M·N when C is given.
 * - BatchNormalization 2, LayerNormalization / InstanceNormalization / GroupNormalization 8,
 *   Softmax / LogSoftmax 3, LRN 2·size+4 — per element.
 * - MaxPool / AveragePool / LpPool: ∏kernel per output element. Global*Pool, Reduce*,
 *   ArgMax/ArgMin, TopK: one per input element.
 * - Elementwise ops (unary, binary, comparisons, Clip, Where, Resize): one per output
 *   element; variadic Sum/Max/Min: n−1 per output element, Mean: n.
 * - Shape and data-movement ops (Reshape, Transpose, Gather, Concat, Slice, Pad, Cast, ...)
 *   cost 0 but propagate shapes.
 *
 * Ops without a rule (including every op outside the default domain, and control flow) are
 * listed in `unknownOps` and cost 0; their outputs take the shapes declared in the graph's
 * value_info when there are any. A node whose input shape cannot be known is skipped and
 * listed in `unresolved`; the walk carries on with whatever can still be inferred.
 */
import { z } from "zod";
import { EdgepoolError } from "../errors.js";
import {
  type AttributeProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
  OnnxDataType,
  decodeModel,
  tensorFromProto,
} from "./proto.js";

export const FlopOptionsSchema = z.object({
  /** Values for symbolic dims other than the batch dim, e.g. { seq: 128 }. */
  dims: z.record(z.string(), z.number().int().positive()).optional(),
});
export type FlopOptions = z.infer<typeof FlopOptionsSchema>;

export interface FlopReport {
  /** Total FLOPs for one sample (batch of one). */
  flopsPerSample: number;
  /** FLOPs per sample by op type; zero-cost ops that were understood appear with 0. */
  byOp: Record<string, number>;
  /** Op types with no rule, counted as 0 ("domain:Op" outside the default domain). */
  unknownOps: string[];
  /** Nodes skipped because an input shape or constant could not be inferred. */
  unresolved: string[];
  /** True when every node was understood and resolved, so the count is the whole graph. */
  complete: boolean;
  /** The batch the graph was evaluated at (1 unless the model fixes another). */
  batch: number;
  /** Inferred shape of each graph output at that batch, null when unknown. */
  outputShapes: Record<string, number[] | null>;
}

/** Constant values are kept only for tensors up to this size: shape math never needs more. */
const MAX_CONST_ELEMENTS = 4096;

interface Val {
  shape: number[];
  /** ONNX data type code (0 when unknown). */
  dtype: number;
  /** Values, row-major, for small constant tensors. */
  data?: number[];
}

/** Internal signal: a node needs a shape or constant that is not known. */
class Unresolvable extends Error {}

const INT_TYPES = new Set<number>([
  OnnxDataType.INT8,
  OnnxDataType.UINT8,
  OnnxDataType.INT16,
  OnnxDataType.UINT16,
  OnnxDataType.INT32,
  OnnxDataType.INT64,
  OnnxDataType.UINT32,
  OnnxDataType.UINT64,
  OnnxDataType.BOOL,
]);

// ---------------------------------------------------------------------------------------
// Shape helpers

function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function at<T>(arr: readonly T[], i: number, what: string): T {
  const v = arr[i < 0 ? arr.length + i : i];
  if (v === undefined) throw new Unresolvable(`${what}: index ${i} out of range`);
  return v;
}

function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= Math.max(rank, 1)) throw new Unresolvable(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

function broadcast(shapes: readonly (readonly number[])[]): number[] {
  const r = Math.max(0, ...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    let d = 1;
    for (const s of shapes) {
      const x = s[s.length - r + i] ?? 1;
      if (x === 1) continue;
      if (d !== 1 && d !== x) {
        throw new Unresolvable(`shapes ${shapes.map((s) => `[${s.join(",")}]`).join(" and ")} do not broadcast`);
      }
      d = x;
    }
    out.push(d);
  }
  return out;
}

/** Evaluates `fn` elementwise over broadcast constant inputs. */
function evalBroadcast(inputs: readonly Val[], outShape: readonly number[], fn: (xs: number[]) => number): number[] | undefined {
  const datas = inputs.map((v) => v.data);
  const n = numel(outShape);
  if (n > MAX_CONST_ELEMENTS || datas.some((d) => d === undefined)) return undefined;
  const r = outShape.length;
  const strides = inputs.map((v) => {
    const st = new Array<number>(r).fill(0);
    let acc = 1;
    for (let i = v.shape.length - 1; i >= 0; i--) {
      const d = v.shape[i] ?? 1;
      st[r - v.shape.length + i] = d === 1 ? 0 : acc;
      acc *= d;
    }
    return st;
  });
  const idx = new Array<number>(r).fill(0);
  const out: number[] = [];
  for (let k = 0; k < n; k++) {
    const xs = datas.map((d, j) => {
      let off = 0;
      const st = strides[j] ?? [];
      for (let i = 0; i < r; i++) off += (idx[i] ?? 0) * (st[i] ?? 0);
      return d?.[off] ?? 0;
    });
    out.push(fn(xs));
    for (let i = r - 1; i >= 0; i--) {
      idx[i] = (idx[i] ?? 0) + 1;
      if ((idx[i] ?? 0) < (outShape[i] ?? 0)) break;
      idx[i] = 0;
    }
  }
  return out;
}

function withData(shape: number[], dtype: number, data: number[] | undefined): Val {
  return data !== undefined && data.length === numel(shape) && data.length <= MAX_CONST_ELEMENTS
    ? { shape, dtype, data }
    : { shape, dtype };
}

function tensorVal(t: TensorProto): Val {
  const shape = [...t.dims];
  if (numel(shape) > MAX_CONST_ELEMENTS || t.dataType === OnnxDataType.FLOAT16) return { shape, dtype: t.dataType };
  try {
    const tensor = tensorFromProto(t);
    const data = Array.from(tensor.data as ArrayLike<number | bigint>, (x) => clampInt(x));
    return withData(shape, t.dataType, data);
  } catch {
    // Unsupported element type or payload: the shape is still good for counting.
    return { shape, dtype: t.dataType };
  }
}

function clampInt(x: number | bigint): number {
  if (typeof x === "number") return x;
  if (x > BigInt(Number.MAX_SAFE_INTEGER)) return Number.MAX_SAFE_INTEGER;
  if (x < BigInt(Number.MIN_SAFE_INTEGER)) return Number.MIN_SAFE_INTEGER;
  return Number(x);
}

// ---------------------------------------------------------------------------------------
// Node context

const utf8 = new TextDecoder();

class Ctx {
  private readonly attrs: Map<string, AttributeProto>;

  constructor(
    readonly node: NodeProto,
    private readonly ins: (Val | undefined)[],
    readonly opset: number,
  ) {
    this.attrs = new Map(node.attribute.map((a) => [a.name, a]));
  }

  get inputCount(): number {
    return this.node.input.length;
  }

  /** Whether optional input i was given (ONNX marks an omitted one with ""). */
  has(i: number): boolean {
    return (this.node.input[i] ?? "") !== "";
  }

  val(i: number): Val {
    const v = this.ins[i];
    if (v === undefined) throw new Unresolvable(`shape of input ${i} ("${this.node.input[i] ?? ""}") is unknown`);
    return v;
  }

  shape(i: number): number[] {
    return this.val(i).shape;
  }

  dtype(i: number): number {
    return this.ins[i]?.dtype ?? 0;
  }

  /** Values of a constant input (shape tensors, axes, ...). */
  data(i: number): number[] {
    const d = this.val(i).data;
    if (d === undefined) throw new Unresolvable(`input ${i} ("${this.node.input[i] ?? ""}") is not a known constant`);
    return d;
  }

  hasAttr(name: string): boolean {
    return this.attrs.has(name);
  }

  int(name: string, def: number): number {
    return this.attrs.get(name)?.i ?? def;
  }

  float(name: string, def: number): number {
    return this.attrs.get(name)?.f ?? def;
  }

  ints(name: string): number[] | undefined {
    const a = this.attrs.get(name);
    if (a === undefined) return undefined;
    return a.ints ?? [];
  }

  string(name: string, def: string): string {
    const s = this.attrs.get(name)?.s;
    return s === undefined ? def : utf8.decode(s);
  }

  tensor(name: string): TensorProto | undefined {
    return this.attrs.get(name)?.t;
  }

  /** Axes given as an attribute in older opsets and as input `i` from `inputSince` on. */
  axes(inputIndex: number, inputSince: number): number[] | undefined {
    if (this.opset >= inputSince) return this.has(inputIndex) ? this.data(inputIndex) : undefined;
    return this.ints("axes");
  }
}

interface Result {
  outs: (Val | undefined)[];
  flops: number;
}

type Rule = (c: Ctx) => Result;

// ---------------------------------------------------------------------------------------
// Rules

const unary: Rule = (c) => {
  const v = c.val(0);
  return { outs: [{ shape: v.shape, dtype: v.dtype }], flops: numel(v.shape) };
};

const identity: Rule = (c) => {
  const v = c.val(0);
  return { outs: [v, { shape: v.shape, dtype: OnnxDataType.BOOL }], flops: 0 };
};

function binary(fold?: (a: number, b: number) => number, boolOut = false): Rule {
  return (c) => {
    const a = c.val(0);
    const b = c.val(1);
    const shape = broadcast([a.shape, b.shape]);
    const dtype = boolOut ? OnnxDataType.BOOL : a.dtype || b.dtype;
    const isInt = INT_TYPES.has(dtype);
    const data =
      fold &&
      evalBroadcast([a, b], shape, ([x = 0, y = 0]) => {
        const r = fold(x, y);
        return isInt && !boolOut ? Math.trunc(r) : r;
      });
    return { outs: [withData(shape, dtype, data || undefined)], flops: numel(shape) };
  };
}

function variadic(perElement: (n: number) => number, fold?: (xs: number[]) => number): Rule {
  return (c) => {
    const vals = c.node.input.map((_, i) => c.val(i));
    const shape = broadcast(vals.map((v) => v.shape));
    const data = fold && evalBroadcast(vals, shape, fold);
    return { outs: [withData(shape, vals[0]?.dtype ?? 0, data || undefined)], flops: perElement(vals.length) * numel(shape) };
  };
}

function perElement(k: (c: Ctx) => number): Rule {
  return (c) => {
    const v = c.val(0);
    return { outs: [{ shape: v.shape, dtype: v.dtype }], flops: k(c) * numel(v.shape) };
  };
}

/** Output spatial dims of a sliding window (Conv, pools). */
function windowOut(c: Ctx, inSpatial: readonly number[], kernel: readonly number[], ceilMode: boolean): number[] {
  const r = inSpatial.length;
  const strides = c.ints("strides") ?? new Array<number>(r).fill(1);
  const dil = c.ints("dilations") ?? new Array<number>(r).fill(1);
  const pads = c.ints("pads") ?? new Array<number>(2 * r).fill(0);
  const autoPad = c.string("auto_pad", "NOTSET");
  return inSpatial.map((inDim, i) => {
    const s = strides[i] ?? 1;
    const ek = ((kernel[i] ?? 1) - 1) * (dil[i] ?? 1) + 1;
    if (autoPad === "SAME_UPPER" || autoPad === "SAME_LOWER") return Math.ceil(inDim / s);
    if (autoPad === "VALID") return Math.floor((inDim - ek) / s) + 1;
    const pb = pads[i] ?? 0;
    const pe = pads[i + r] ?? 0;
    const span = (inDim + pb + pe - ek) / s;
    let out = (ceilMode ? Math.ceil(span) : Math.floor(span)) + 1;
    // With ceil_mode the last window must still start inside the input or left padding.
    if (ceilMode && (out - 1) * s >= inDim + pb) out -= 1;
    return out;
  });
}

const conv: Rule = (c) => {
  const x = c.shape(0);
  const w = c.shape(1);
  const group = c.int("group", 1);
  const kernel = c.ints("kernel_shape") ?? w.slice(2);
  const n = at(x, 0, "Conv X");
  const cin = at(x, 1, "Conv X");
  const cout = at(w, 0, "Conv W");
  if (at(w, 1, "Conv W") * group !== cin) {
    throw new Unresolvable(`Conv weight [${w.join(",")}] with group ${group} does not fit input [${x.join(",")}]`);
  }
  const out = windowOut(c, x.slice(2), kernel, false);
  const outElems = n * cout * numel(out);
  const macs = outElems * (cin / group) * numel(kernel);
  const bias = c.has(2) ? outElems : 0;
  return { outs: [{ shape: [n, cout, ...out], dtype: c.dtype(0) }], flops: 2 * macs + bias };
};

const convTranspose: Rule = (c) => {
  const x = c.shape(0);
  const w = c.shape(1);
  const group = c.int("group", 1);
  const kernel = c.ints("kernel_shape") ?? w.slice(2);
  const n = at(x, 0, "ConvTranspose X");
  const cin = at(x, 1, "ConvTranspose X");
  const cout = at(w, 1, "ConvTranspose W") * group;
  const inSp = x.slice(2);
  const r = inSp.length;
  const strides = c.ints("strides") ?? new Array<number>(r).fill(1);
  const dil = c.ints("dilations") ?? new Array<number>(r).fill(1);
  const pads = c.ints("pads") ?? new Array<number>(2 * r).fill(0);
  const outPad = c.ints("output_padding") ?? new Array<number>(r).fill(0);
  const given = c.ints("output_shape");
  const autoPad = c.string("auto_pad", "NOTSET");
  const out = inSp.map((d, i) => {
    if (given !== undefined) return at(given, given.length === r ? i : i + 2, "output_shape");
    const s = strides[i] ?? 1;
    if (autoPad === "SAME_UPPER" || autoPad === "SAME_LOWER") return d * s;
    const ek = ((kernel[i] ?? 1) - 1) * (dil[i] ?? 1) + 1;
    return s * (d - 1) + (outPad[i] ?? 0) + ek - (pads[i] ?? 0) - (pads[i + r] ?? 0);
  });
  const macs = n * cin * numel(inSp) * (cout / group) * numel(kernel);
  const bias = c.has(2) ? n * cout * numel(out) : 0;
  return { outs: [{ shape: [n, cout, ...out], dtype: c.dtype(0) }], flops: 2 * macs + bias };
};

const matmul: Rule = (c) => {
  let a = c.shape(0);
  let b = c.shape(1);
  const aVec = a.length === 1;
  const bVec = b.length === 1;
  if (aVec) a = [1, ...a];
  if (bVec) b = [...b, 1];
  const m = at(a, -2, "MatMul A");
  const k = at(a, -1, "MatMul A");
  const n = at(b, -1, "MatMul B");
  if (at(b, -2, "MatMul B") !== k) throw new Unresolvable(`MatMul inner dims differ: [${a.join(",")}] x [${b.join(",")}]`);
  const batch = broadcast([a.slice(0, -2), b.slice(0, -2)]);
  const shape = [...batch, ...(aVec ? [] : [m]), ...(bVec ? [] : [n])];
  return { outs: [{ shape, dtype: c.dtype(0) }], flops: 2 * numel(batch) * m * n * k };
};

const gemm: Rule = (c) => {
  const a = c.shape(0);
  const b = c.shape(1);
  const transA = c.int("transA", 0) !== 0;
  const transB = c.int("transB", 0) !== 0;
  const m = at(a, transA ? 1 : 0, "Gemm A");
  const k = at(a, transA ? 0 : 1, "Gemm A");
  const n = at(b, transB ? 0 : 1, "Gemm B");
  if (at(b, transB ? 1 : 0, "Gemm B") !== k) {
    throw new Unresolvable(`Gemm inner dims differ: [${a.join(",")}] x [${b.join(",")}]`);
  }
  const bias = c.has(2) ? m * n : 0;
  return { outs: [{ shape: [m, n], dtype: c.dtype(0) }], flops: 2 * m * n * k + bias };
};

function pool(c: Ctx): Result {
  const x = c.shape(0);
  const kernel = c.ints("kernel_shape");
  if (kernel === undefined) throw new Unresolvable("pool without kernel_shape");
  const out = windowOut(c, x.slice(2), kernel, c.int("ceil_mode", 0) !== 0);
  const shape = [...x.slice(0, 2), ...out];
  return {
    outs: [{ shape, dtype: c.dtype(0) }, { shape, dtype: OnnxDataType.INT64 }],
    flops: numel(shape) * numel(kernel),
  };
}

const globalPool: Rule = (c) => {
  const x = c.shape(0);
  const shape = [...x.slice(0, 2), ...x.slice(2).map(() => 1)];
  return { outs: [{ shape, dtype: c.dtype(0) }], flops: numel(x) };
};

const batchNorm: Rule = (c) => {
  const x = c.shape(0);
  const ch = [x[1] ?? 1];
  const stat = { shape: ch, dtype: c.dtype(0) };
  return { outs: [{ shape: x, dtype: c.dtype(0) }, stat, stat, stat, stat], flops: 2 * numel(x) };
};

const layerNorm: Rule = (c) => {
  const x = c.shape(0);
  const axis = normAxis(c.int("axis", -1), x.length);
  const stat = { shape: x.map((d, i) => (i < axis ? d : 1)), dtype: OnnxDataType.FLOAT };
  return { outs: [{ shape: x, dtype: c.dtype(0) }, stat, stat], flops: 8 * numel(x) };
};

function reduceRule(axesInputSince: number): Rule {
  return (c) => {
    const x = c.shape(0);
    const keep = c.int("keepdims", 1) !== 0;
    const given = c.axes(1, axesInputSince);
    const all = given === undefined || given.length === 0;
    if (all && c.int("noop_with_empty_axes", 0) !== 0) return { outs: [{ shape: x, dtype: c.dtype(0) }], flops: 0 };
    const axes = new Set(all ? x.map((_, i) => i) : given.map((a) => normAxis(a, x.length)));
    const shape = keep ? x.map((d, i) => (axes.has(i) ? 1 : d)) : x.filter((_, i) => !axes.has(i));
    return { outs: [{ shape, dtype: c.dtype(0) }], flops: numel(x) };
  };
}

const argReduce: Rule = (c) => {
  const x = c.shape(0);
  const axis = normAxis(c.int("axis", 0), x.length);
  const shape = c.int("keepdims", 1) !== 0 ? x.map((d, i) => (i === axis ? 1 : d)) : x.filter((_, i) => i !== axis);
  return { outs: [{ shape, dtype: OnnxDataType.INT64 }], flops: numel(x) };
};

const reshape: Rule = (c) => {
  const v = c.val(0);
  const target = c.opset < 5 ? (c.ints("shape") ?? []) : c.data(1);
  const allowZero = c.int("allowzero", 0) !== 0;
  const shape = target.map((d, i) => (d === 0 && !allowZero ? at(v.shape, i, "Reshape input") : d));
  const neg = shape.indexOf(-1);
  if (neg >= 0) {
    const rest = numel(shape.filter((_, i) => i !== neg));
    shape[neg] = rest === 0 ? 0 : numel(v.shape) / rest;
  }
  if (numel(shape) !== numel(v.shape)) {
    throw new Unresolvable(`Reshape from [${v.shape.join(",")}] to [${shape.join(",")}] changes the element count`);
  }
  return { outs: [withData(shape, v.dtype, v.data)], flops: 0 };
};

const flatten: Rule = (c) => {
  const v = c.val(0);
  const axis = c.int("axis", 1);
  const a = axis < 0 ? axis + v.shape.length : axis;
  const shape = [numel(v.shape.slice(0, a)), numel(v.shape.slice(a))];
  return { outs: [withData(shape, v.dtype, v.data)], flops: 0 };
};

const transpose: Rule = (c) => {
  const v = c.val(0);
  const perm = c.ints("perm") ?? v.shape.map((_, i) => v.shape.length - 1 - i);
  const shape = perm.map((p) => at(v.shape, p, "Transpose perm"));
  // Values are kept only where transposing can't reorder them (at most one dim above 1).
  const trivial = v.shape.filter((d) => d !== 1).length <= 1;
  return { outs: [withData(shape, v.dtype, trivial ? v.data : undefined)], flops: 0 };
};

const squeeze: Rule = (c) => {
  const v = c.val(0);
  const given = c.axes(1, 13);
  const axes = new Set(
    given === undefined || given.length === 0
      ? v.shape.flatMap((d, i) => (d === 1 ? [i] : []))
      : given.map((a) => normAxis(a, v.shape.length)),
  );
  return { outs: [withData(v.shape.filter((_, i) => !axes.has(i)), v.dtype, v.data)], flops: 0 };
};

const unsqueeze: Rule = (c) => {
  const v = c.val(0);
  const given = c.axes(1, 13) ?? [];
  const rank = v.shape.length + given.length;
  const axes = new Set(given.map((a) => normAxis(a, rank)));
  const shape: number[] = [];
  let j = 0;
  for (let i = 0; i < rank; i++) shape.push(axes.has(i) ? 1 : at(v.shape, j++, "Unsqueeze input"));
  return { outs: [withData(shape, v.dtype, v.data)], flops: 0 };
};

const concat: Rule = (c) => {
  const vals = c.node.input.flatMap((name, i) => (name === "" ? [] : [c.val(i)]));
  const first = at(vals, 0, "Concat inputs");
  const axis = normAxis(c.int("axis", 0), first.shape.length);
  const shape = [...first.shape];
  shape[axis] = vals.reduce((s, v) => s + at(v.shape, axis, "Concat input"), 0);
  let data: number[] | undefined;
  if (vals.every((v) => v.data !== undefined)) {
    const outer = numel(first.shape.slice(0, axis));
    data = [];
    for (let o = 0; o < outer; o++) {
      for (const v of vals) {
        const chunk = numel(v.shape.slice(axis));
        data.push(...(v.data ?? []).slice(o * chunk, (o + 1) * chunk));
      }
    }
  }
  return { outs: [withData(shape, first.dtype, data)], flops: 0 };
};

const split: Rule = (c) => {
  const v = c.val(0);
  const axis = normAxis(c.int("axis", 0), v.shape.length);
  const dim = at(v.shape, axis, "Split input");
  const count = c.node.output.length;
  let sizes = c.opset >= 13 ? (c.has(1) ? c.data(1) : undefined) : c.ints("split");
  if (sizes === undefined || sizes.length === 0) {
    const parts = c.hasAttr("num_outputs") ? c.int("num_outputs", count) : count;
    const each = Math.ceil(dim / parts);
    sizes = Array.from({ length: parts }, (_, i) => Math.max(0, Math.min(each, dim - i * each)));
  }
  let offset = 0;
  const outs = sizes.map((size) => {
    const shape = [...v.shape];
    shape[axis] = size;
    const data = v.shape.length === 1 ? v.data?.slice(offset, offset + size) : undefined;
    offset += size;
    return withData(shape, v.dtype, data);
  });
  return { outs, flops: 0 };
};

const slice: Rule = (c) => {
  const v = c.val(0);
  const starts = c.opset < 10 ? (c.ints("starts") ?? []) : c.data(1);
  const ends = c.opset < 10 ? (c.ints("ends") ?? []) : c.data(2);
  const axesIn = c.opset < 10 ? c.ints("axes") : c.has(3) ? c.data(3) : undefined;
  const steps = c.opset >= 10 && c.has(4) ? c.data(4) : undefined;
  const axes = axesIn ?? starts.map((_, i) => i);
  const shape = [...v.shape];
  const picks = new Map<number, { start: number; step: number; len: number }>();
  axes.forEach((ax, i) => {
    const axis = normAxis(ax, v.shape.length);
    const dim = at(v.shape, axis, "Slice input");
    const step = steps?.[i] ?? 1;
    let start = at(starts, i, "Slice starts");
    let end = at(ends, i, "Slice ends");
    if (start < 0) start += dim;
    if (end < 0) end += dim;
    let len: number;
    if (step > 0) {
      start = Math.min(Math.max(start, 0), dim);
      end = Math.min(Math.max(end, 0), dim);
      len = Math.max(0, Math.ceil((end - start) / step));
    } else {
      start = Math.min(Math.max(start, 0), dim - 1);
      end = Math.min(Math.max(end, -1), dim - 1);
      len = Math.max(0, Math.ceil((start - end) / -step));
    }
    shape[axis] = len;
    picks.set(axis, { start, step, len });
  });
  let data: number[] | undefined;
  const p = picks.get(0);
  if (v.shape.length === 1 && v.data !== undefined && p !== undefined) {
    data = Array.from({ length: p.len }, (_, i) => v.data?.[p.start + i * p.step] ?? 0);
  }
  return { outs: [withData(shape, v.dtype, data)], flops: 0 };
};

const gather: Rule = (c) => {
  const d = c.val(0);
  const idx = c.val(1);
  const axis = normAxis(c.int("axis", 0), d.shape.length);
  const axisLen = at(d.shape, axis, "Gather data");
  const shape = [...d.shape.slice(0, axis), ...idx.shape, ...d.shape.slice(axis + 1)];
  let data: number[] | undefined;
  if (d.data !== undefined && idx.data !== undefined && numel(shape) <= MAX_CONST_ELEMENTS) {
    const outer = numel(d.shape.slice(0, axis));
    const inner = numel(d.shape.slice(axis + 1));
    data = [];
    for (let o = 0; o < outer; o++) {
      for (const raw of idx.data) {
        const j = raw < 0 ? raw + axisLen : raw;
        for (let k = 0; k < inner; k++) data.push(d.data[(o * axisLen + j) * inner + k] ?? 0);
      }
    }
  }
  return { outs: [withData(shape, d.dtype, data)], flops: 0 };
};

const shapeOp: Rule = (c) => {
  const x = c.shape(0);
  const r = x.length;
  const clampIdx = (i: number): number => Math.min(Math.max(i < 0 ? i + r : i, 0), r);
  const dims = x.slice(clampIdx(c.int("start", 0)), c.hasAttr("end") ? clampIdx(c.int("end", r)) : r);
  return { outs: [{ shape: [dims.length], dtype: OnnxDataType.INT64, data: dims }], flops: 0 };
};

const sizeOp: Rule = (c) => ({
  outs: [{ shape: [], dtype: OnnxDataType.INT64, data: [numel(c.shape(0))] }],
  flops: 0,
});

function castValues(data: number[] | undefined, to: number): number[] | undefined {
  if (data === undefined) return undefined;
  if (to === OnnxDataType.BOOL) return data.map((x) => (x !== 0 ? 1 : 0));
  if (INT_TYPES.has(to)) return data.map((x) => Math.trunc(x));
  return data;
}

const cast: Rule = (c) => {
  const v = c.val(0);
  const to = c.int("to", 0);
  return { outs: [withData(v.shape, to, castValues(v.data, to))], flops: 0 };
};

const castLike: Rule = (c) => {
  const v = c.val(0);
  const to = c.dtype(1);
  return { outs: [withData(v.shape, to, castValues(v.data, to))], flops: 0 };
};

const constant: Rule = (c) => {
  const t = c.tensor("value");
  if (t !== undefined) return { outs: [tensorVal(t)], flops: 0 };
  const scalar = (dtype: number, data: number[], shape: number[] = []): Result => ({ outs: [{ shape, dtype, data }], flops: 0 });
  if (c.hasAttr("value_float")) return scalar(OnnxDataType.FLOAT, [c.float("value_float", 0)]);
  if (c.hasAttr("value_int")) return scalar(OnnxDataType.INT64, [c.int("value_int", 0)]);
  const ints = c.ints("value_ints");
  if (ints !== undefined) return scalar(OnnxDataType.INT64, ints, [ints.length]);
  throw new Unresolvable("Constant without a tensor, float or int value");
};

const constantOfShape: Rule = (c) => {
  const shape = c.data(0);
  const t = c.tensor("value");
  const fill = t !== undefined ? tensorVal(t) : { shape: [1], dtype: OnnxDataType.FLOAT, data: [0] };
  const value = fill.data?.[0];
  const n = numel(shape);
  const data = value !== undefined && n <= MAX_CONST_ELEMENTS ? new Array<number>(n).fill(value) : undefined;
  return { outs: [withData(shape, fill.dtype, data)], flops: 0 };
};

const expand: Rule = (c) => {
  const v = c.val(0);
  const shape = broadcast([v.shape, c.data(1)]);
  return { outs: [withData(shape, v.dtype, evalBroadcast([v], shape, ([x = 0]) => x))], flops: 0 };
};

const tile: Rule = (c) => {
  const v = c.val(0);
  const reps = c.data(1);
  return { outs: [{ shape: v.shape.map((d, i) => d * (reps[i] ?? 1)), dtype: v.dtype }], flops: 0 };
};

const pad: Rule = (c) => {
  const v = c.val(0);
  const r = v.shape.length;
  const pads = c.opset < 11 ? (c.ints("pads") ?? c.ints("paddings") ?? []) : c.data(1);
  const axes = c.opset >= 18 && c.has(3) ? c.data(3).map((a) => normAxis(a, r)) : v.shape.map((_, i) => i);
  const shape = [...v.shape];
  axes.forEach((axis, i) => {
    shape[axis] = at(shape, axis, "Pad input") + (pads[i] ?? 0) + (pads[i + axes.length] ?? 0);
  });
  return { outs: [{ shape, dtype: v.dtype }], flops: 0 };
};

const range: Rule = (c) => {
  const start = at(c.data(0), 0, "Range start");
  const limit = at(c.data(1), 0, "Range limit");
  const delta = at(c.data(2), 0, "Range delta");
  const n = Math.max(Math.ceil((limit - start) / delta), 0);
  const data = n <= MAX_CONST_ELEMENTS ? Array.from({ length: n }, (_, i) => start + i * delta) : undefined;
  return { outs: [withData([n], c.dtype(0), data)], flops: 0 };
};

const where: Rule = (c) => {
  const vals = [c.val(0), c.val(1), c.val(2)];
  const shape = broadcast(vals.map((v) => v.shape));
  const data = evalBroadcast(vals, shape, ([cond = 0, x = 0, y = 0]) => (cond !== 0 ? x : y));
  return { outs: [withData(shape, c.dtype(1), data)], flops: numel(shape) };
};

const topK: Rule = (c) => {
  const x = c.shape(0);
  const axis = normAxis(c.int("axis", -1), x.length);
  const k = c.opset < 10 ? c.int("k", 1) : at(c.data(1), 0, "TopK k");
  const shape = x.map((d, i) => (i === axis ? k : d));
  return { outs: [{ shape, dtype: c.dtype(0) }, { shape, dtype: OnnxDataType.INT64 }], flops: numel(x) };
};

const resize: Rule = (c) => {
  const x = c.shape(0);
  const scaled = (scales: readonly number[]): number[] => x.map((d, i) => Math.floor(d * (scales[i] ?? 1)));
  let shape: number[];
  if (c.node.opType === "Upsample") {
    shape = scaled(c.opset < 9 ? (c.ints("scales") ?? []) : c.data(1));
  } else if (c.opset < 11) {
    shape = scaled(c.data(1));
  } else {
    const axes = c.ints("axes")?.map((a) => normAxis(a, x.length)) ?? x.map((_, i) => i);
    const sizes = c.has(3) ? c.data(3) : [];
    const scales = c.has(2) ? c.data(2) : [];
    if (sizes.length === 0 && scales.length === 0) throw new Unresolvable("Resize without constant scales or sizes");
    const out = [...x];
    axes.forEach((a, i) => {
      out[a] =
        sizes.length > 0
          ? at(sizes, i, "Resize sizes")
          : Math.floor(at(x, a, "Resize input") * at(scales, i, "Resize scales"));
    });
    shape = out;
  }
  return { outs: [{ shape, dtype: c.dtype(0) }], flops: numel(shape) };
};

const depthToSpace: Rule = (c) => {
  const [n = 1, ch = 1, h = 1, w = 1] = c.shape(0);
  const b = c.int("blocksize", 1);
  return { outs: [{ shape: [n, ch / (b * b), h * b, w * b], dtype: c.dtype(0) }], flops: 0 };
};

const spaceToDepth: Rule = (c) => {
  const [n = 1, ch = 1, h = 1, w = 1] = c.shape(0);
  const b = c.int("blocksize", 1);
  return { outs: [{ shape: [n, ch * b * b, h / b, w / b], dtype: c.dtype(0) }], flops: 0 };
};

const UNARY = [
  "Relu", "Sigmoid", "Tanh", "Erf", "Sqrt", "Exp", "Log", "Neg", "Abs", "Reciprocal", "Floor", "Ceil",
  "Round", "Sign", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh",
  "Softplus", "Softsign", "Elu", "Selu", "Celu", "LeakyRelu", "ThresholdedRelu", "HardSigmoid", "HardSwish",
  "Mish", "Gelu", "Clip", "Not", "IsNaN", "IsInf", "Shrink", "BitwiseNot",
];

// ReduceSum takes axes as an input from opset 13, the rest of the family from opset 18.
const REDUCE_AXES_INPUT_SINCE_18 = [
  "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp",
  "ReduceSumSquare",
];

const RULES = new Map<string, Rule>([
  ...UNARY.map((op): [string, Rule] => [op, unary]),
  ["Add", binary((a, b) => a + b)],
  ["Sub", binary((a, b) => a - b)],
  ["Mul", binary((a, b) => a * b)],
  ["Div", binary((a, b) => a / b)],
  ["Pow", binary((a, b) => a ** b)],
  ["Mod", binary()],
  ["PRelu", binary()],
  ["BitShift", binary()],
  ["BitwiseAnd", binary()],
  ["BitwiseOr", binary()],
  ["BitwiseXor", binary()],
  ["Equal", binary((a, b) => (a === b ? 1 : 0), true)],
  ["Less", binary((a, b) => (a < b ? 1 : 0), true)],
  ["LessOrEqual", binary((a, b) => (a <= b ? 1 : 0), true)],
  ["Greater", binary((a, b) => (a > b ? 1 : 0), true)],
  ["GreaterOrEqual", binary((a, b) => (a >= b ? 1 : 0), true)],
  ["And", binary((a, b) => (a && b ? 1 : 0), true)],
  ["Or", binary((a, b) => (a || b ? 1 : 0), true)],
  ["Xor", binary((a, b) => (!a !== !b ? 1 : 0), true)],
  ["Sum", variadic((n) => n - 1, (xs) => xs.reduce((s, x) => s + x, 0))],
  ["Max", variadic((n) => n - 1, (xs) => Math.max(...xs))],
  ["Min", variadic((n) => n - 1, (xs) => Math.min(...xs))],
  ["Mean", variadic((n) => n)],
  ["Where", where],
  ["Conv", conv],
  ["ConvTranspose", convTranspose],
  ["MatMul", matmul],
  ["Gemm", gemm],
  ["MaxPool", pool],
  ["AveragePool", pool],
  ["LpPool", pool],
  ["GlobalAveragePool", globalPool],
  ["GlobalMaxPool", globalPool],
  ["GlobalLpPool", globalPool],
  ["BatchNormalization", batchNorm],
  ["LayerNormalization", layerNorm],
  ["InstanceNormalization", perElement(() => 8)],
  ["GroupNormalization", perElement(() => 8)],
  ["Softmax", perElement(() => 3)],
  ["LogSoftmax", perElement(() => 3)],
  ["Hardmax", perElement(() => 1)],
  ["LRN", perElement((c) => 2 * c.int("size", 1) + 4)],
  ["ReduceSum", reduceRule(13)],
  ...REDUCE_AXES_INPUT_SINCE_18.map((op): [string, Rule] => [op, reduceRule(18)]),
  ["ArgMax", argReduce],
  ["ArgMin", argReduce],
  ["TopK", topK],
  ["Reshape", reshape],
  ["Flatten", flatten],
  ["Transpose", transpose],
  ["Squeeze", squeeze],
  ["Unsqueeze", unsqueeze],
  ["Concat", concat],
  ["Split", split],
  ["Slice", slice],
  ["Gather", gather],
  ["Shape", shapeOp],
  ["Size", sizeOp],
  ["Cast", cast],
  ["CastLike", castLike],
  ["Constant", constant],
  ["ConstantOfShape", constantOfShape],
  ["Expand", expand],
  ["Tile", tile],
  ["Pad", pad],
  ["Range", range],
  ["Identity", identity],
  ["Dropout", identity],
  ["Resize", resize],
  ["Upsample", resize],
  ["DepthToSpace", depthToSpace],
  ["SpaceToDepth", spaceToDepth],
]);

// ---------------------------------------------------------------------------------------
// The walk

function declaredShape(vi: ValueInfoProto, dims: ReadonlyMap<string, number>): number[] | undefined {
  const dimList = vi.type?.tensorType?.shape?.dim;
  if (dimList === undefined) return undefined;
  const out: number[] = [];
  for (const d of dimList) {
    const v = d.dimValue ?? (d.dimParam !== undefined ? dims.get(d.dimParam) : undefined);
    if (v === undefined) return undefined;
    out.push(v);
  }
  return out;
}

function shapeError(input: string, i: number, what: string): EdgepoolError {
  return new EdgepoolError(
    "E_SHAPE",
    `model input "${input}" dim ${i} is ${what}; pass its size in the options, e.g. { dims: { name: 128 } }`,
  );
}

/** Counts FLOPs per sample of an already decoded model. */
export function countModelFlops(model: ModelProto, options: FlopOptions = {}): FlopReport {
  const opts = FlopOptionsSchema.parse(options);
  const graph = model.graph;
  const opset = model.opsetImport.find((o) => o.domain === "" || o.domain === "ai.onnx")?.version ?? 1;
  const vals = new Map<string, Val>();
  for (const t of graph.initializer) vals.set(t.name, tensorVal(t));

  // The batch dim: the first dim of every real input; symbolic ones are evaluated at 1.
  const inputs = graph.input.filter((vi) => !vals.has(vi.name));
  const dims = new Map<string, number>(Object.entries(opts.dims ?? {}));
  for (const vi of inputs) {
    const d0 = vi.type?.tensorType?.shape?.dim[0];
    if (d0?.dimParam) dims.set(d0.dimParam, 1);
  }
  let batch = 1;
  inputs.forEach((vi, n) => {
    const dimList = vi.type?.tensorType?.shape?.dim;
    if (dimList === undefined) return; // unknown rank: dependants are reported as unresolved
    const shape = dimList.map((d, i) => {
      if (d.dimValue !== undefined) return d.dimValue;
      if (i === 0) return 1;
      if (d.dimParam === undefined || d.dimParam === "") throw shapeError(vi.name, i, "unnamed and unknown");
      const v = dims.get(d.dimParam);
      if (v === undefined) throw shapeError(vi.name, i, `the symbol "${d.dimParam}"`);
      return v;
    });
    if (n === 0 && shape.length > 0 && (shape[0] ?? 0) > 0) batch = shape[0] ?? 1;
    vals.set(vi.name, { shape, dtype: vi.type?.tensorType?.elemType ?? 0 });
  });

  const declared = new Map<string, number[]>();
  for (const vi of [...graph.valueInfo, ...graph.output]) {
    const s = declaredShape(vi, dims);
    if (s !== undefined) declared.set(vi.name, s);
  }

  const byOp: Record<string, number> = {};
  const unknown = new Set<string>();
  const unresolved: string[] = [];
  let total = 0;
  graph.node.forEach((node, index) => {
    const isDefault = node.domain === "" || node.domain === "ai.onnx";
    const rule = isDefault ? RULES.get(node.opType) : undefined;
    let outs: (Val | undefined)[] = [];
    if (rule === undefined) {
      unknown.add(isDefault ? node.opType : `${node.domain}:${node.opType}`);
    } else {
      try {
        const result = rule(new Ctx(node, node.input.map((name) => vals.get(name)), opset));
        outs = result.outs;
        total += result.flops;
        byOp[node.opType] = (byOp[node.opType] ?? 0) + result.flops;
      } catch (err) {
        if (!(err instanceof Unresolvable)) throw err;
        unresolved.push(`${node.name || `#${index}`} (${node.opType}): ${err.message}`);
      }
    }
    node.output.forEach((name, i) => {
      if (name === "") return;
      const v = outs[i];
      const fallback = declared.get(name);
      if (v !== undefined) vals.set(name, v);
      else if (fallback !== undefined) vals.set(name, { shape: fallback, dtype: 0 });
    });
  });

  for (const op of Object.keys(byOp)) byOp[op] = (byOp[op] ?? 0) / batch;
  const outputShapes: Record<string, number[] | null> = {};
  for (const vi of graph.output) outputShapes[vi.name] = vals.get(vi.name)?.shape ?? null;
  const unknownOps = [...unknown].sort();
  return {
    flopsPerSample: total / batch,
    byOp,
    unknownOps,
    unresolved,
    complete: unknownOps.length === 0 && unresolved.length === 0,
    batch,
    outputShapes,
  };
}

/** Counts FLOPs per sample of ONNX model bytes; see the module comment for conventions. */
export function countFlops(bytes: Uint8Array, options: FlopOptions = {}): FlopReport {
  return countModelFlops(decodeModel(bytes), options);
}
