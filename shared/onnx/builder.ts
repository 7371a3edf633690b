/**
 * A small ONNX graph builder for generating models in code (the built-in catalog, tests),
 * plus a seeded random source for deterministic weights.
 *
 * Output is deterministic: the same calls give byte-identical model bytes, on any JS
 * engine. That is why the random source uses only integer ops and float additions: engines
 * may differ in the last bit of Math.log/Math.cos, which a Box-Muller sampler would need.
 */
import { EdgepoolError } from "../errors.js";
import type { DType, Tensor } from "../tensor/tensor.js";
import {
  type AttributeProto,
  AttributeType,
  type Dimension,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
  encodeModel,
  onnxFromDtype,
  tensorToProto,
} from "./proto.js";

/** An attribute value; the tag says which ONNX attribute type to write. */
export type AttrValue =
  | { kind: "int"; value: number }
  | { kind: "float"; value: number }
  | { kind: "ints"; value: number[] }
  | { kind: "floats"; value: number[] }
  | { kind: "string"; value: string }
  | { kind: "tensor"; value: Tensor };

/** Constructors for attribute values: a bare JS number can't say whether it is int or float. */
export const attr = {
  int: (value: number): AttrValue => ({ kind: "int", value }),
  float: (value: number): AttrValue => ({ kind: "float", value }),
  ints: (value: number[]): AttrValue => ({ kind: "ints", value }),
  floats: (value: number[]): AttrValue => ({ kind: "floats", value }),
  string: (value: string): AttrValue => ({ kind: "string", value }),
  tensor: (value: Tensor): AttrValue => ({ kind: "tensor", value }),
};

export type Attrs = Record<string, AttrValue>;

export interface GraphBuilderOptions {
  /** Graph name written into the model. */
  name?: string;
  /** Default-domain opset (17 unless given). */
  opset?: number;
  /** ONNX IR version (8 unless given; 8 is what opset 17 tooling writes). */
  irVersion?: number;
  producerName?: string;
  producerVersion?: string;
}

const utf8 = new TextEncoder();

function attributeProto(name: string, v: AttrValue): AttributeProto {
  switch (v.kind) {
    case "int":
      return { name, type: AttributeType.INT, i: v.value };
    case "float":
      return { name, type: AttributeType.FLOAT, f: v.value };
    case "ints":
      return { name, type: AttributeType.INTS, ints: [...v.value] };
    case "floats":
      return { name, type: AttributeType.FLOATS, floats: [...v.value] };
    case "string":
      return { name, type: AttributeType.STRING, s: utf8.encode(v.value) };
    case "tensor":
      return { name, type: AttributeType.TENSOR, t: tensorToProto("", v.value) };
  }
}

function valueInfo(name: string, dtype: DType, shape: readonly (number | string)[]): ValueInfoProto {
  const dim = shape.map((d): Dimension => (typeof d === "number" ? { dimValue: d } : { dimParam: d }));
  return { name, type: { tensorType: { elemType: onnxFromDtype(dtype), shape: { dim } } } };
}

/** Builds one ONNX graph; node outputs get unique generated names unless given. */
export class GraphBuilder {
  private readonly nodes: NodeProto[] = [];
  private readonly initializers: TensorProto[] = [];
  private readonly inputs: ValueInfoProto[] = [];
  private readonly outputs: ValueInfoProto[] = [];
  private readonly names = new Set<string>();
  private counter = 0;
  private readonly opts: Required<GraphBuilderOptions>;

  constructor(opts: GraphBuilderOptions = {}) {
    this.opts = {
      name: opts.name ?? "graph",
      opset: opts.opset ?? 17,
      irVersion: opts.irVersion ?? 8,
      producerName: opts.producerName ?? "edgepool",
      producerVersion: opts.producerVersion ?? "0.1.0",
    };
  }

  private claim(name: string): string {
    if (this.names.has(name)) {
      throw new EdgepoolError("E_INTERNAL", `graph value "${name}" is defined twice; give it a unique name`);
    }
    this.names.add(name);
    return name;
  }

  /** A fresh value name with the given prefix. */
  fresh(prefix: string): string {
    let name: string;
    do name = `${prefix}_${this.counter++}`;
    while (this.names.has(name));
    return name;
  }

  /** Declares a graph input; string dims are symbolic (e.g. "batch"). Returns its name. */
  input(name: string, dtype: DType, shape: readonly (number | string)[]): string {
    this.inputs.push(valueInfo(this.claim(name), dtype, shape));
    return name;
  }

  /** Declares an existing value as a graph output. */
  output(name: string, dtype: DType, shape: readonly (number | string)[]): string {
    if (!this.names.has(name)) {
      throw new EdgepoolError("E_INTERNAL", `graph output "${name}" is not produced by any node or input`);
    }
    this.outputs.push(valueInfo(name, dtype, shape));
    return name;
  }

  /**
   * Adds a constant weight. Returns its name. A name already declared as a graph input is
   * allowed: in ONNX that makes the initializer the input's default value.
   */
  initializer(name: string, tensor: Tensor): string {
    const isInput = this.inputs.some((vi) => vi.name === name);
    if (!isInput) this.claim(name);
    else if (this.initializers.some((t) => t.name === name)) this.claim(name); // throws: two defaults
    this.initializers.push(tensorToProto(name, tensor));
    return name;
  }

  /** A float32 initializer from plain values. */
  floats(name: string, dims: number[], values: ArrayLike<number>): string {
    return this.initializer(name, { dtype: "float32", dims, data: Float32Array.from(values) });
  }

  /** An int64 initializer from plain values (shapes, axes, indices). */
  int64s(name: string, dims: number[], values: readonly number[]): string {
    return this.initializer(name, { dtype: "int64", dims, data: BigInt64Array.from(values, (v) => BigInt(v)) });
  }

  /**
   * Adds a node with any number of outputs (a count for generated names, or explicit names).
   * Returns the output names.
   */
  node(
    opType: string,
    inputs: readonly string[],
    attrs: Attrs = {},
    outputs: number | readonly string[] = 1,
    opts: { name?: string; domain?: string } = {},
  ): string[] {
    const outNames =
      typeof outputs === "number"
        ? Array.from({ length: outputs }, () => this.fresh(opType.toLowerCase()))
        : outputs.map((o) => o);
    for (const o of outNames) this.claim(o);
    this.nodes.push({
      name: opts.name ?? `${opType}_${this.nodes.length}`,
      opType,
      domain: opts.domain ?? "",
      input: [...inputs],
      output: outNames,
      // Sorted so that attribute order never depends on object key insertion order.
      attribute: Object.keys(attrs)
        .sort()
        .map((k) => attributeProto(k, attrs[k] as AttrValue)),
    });
    return outNames;
  }

  /** Adds a single-output node; returns the output name (`output` if given). */
  op(opType: string, inputs: readonly string[], attrs: Attrs = {}, output?: string): string {
    const [out] = this.node(opType, inputs, attrs, output === undefined ? 1 : [output]);
    return out as string;
  }

  /** The model as a message (for inspection or further editing). */
  toModel(): ModelProto {
    return {
      irVersion: this.opts.irVersion,
      opsetImport: [{ domain: "", version: this.opts.opset }],
      producerName: this.opts.producerName,
      producerVersion: this.opts.producerVersion,
      graph: {
        name: this.opts.name,
        node: [...this.nodes],
        initializer: [...this.initializers],
        input: [...this.inputs],
        output: [...this.outputs],
        valueInfo: [],
      },
    };
  }

  /** Serialized ONNX model bytes. */
  build(): Uint8Array {
    return encodeModel(this.toModel());
  }
}

/** mulberry32: a tiny 32-bit PRNG. Returns uniform floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seeded source of uniform and (approximately) normal samples. */
export class SeededRandom {
  private readonly next: () => number;

  constructor(seed: number) {
    this.next = mulberry32(seed);
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.next();
  }

  /** An integer in [lo, hi). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo));
  }

  /**
   * Approximately standard normal: the Irwin-Hall sum of 12 uniforms minus 6 (mean 0,
   * variance 1, tails cut at ±6). Only additions, so every engine gives the same bits.
   */
  normal(): number {
    let s = 0;
    for (let i = 0; i < 12; i++) s += this.next();
    return s - 6;
  }

  /** `count` normal samples with standard deviation `std` (and mean `mean`). */
  normalArray(count: number, std = 1, mean = 0): Float32Array {
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = mean + std * this.normal();
    return out;
  }
}

/** `count` deterministic normal samples with standard deviation `std`, from `seed`. */
export function seededNormal(seed: number, count: number, std = 1): Float32Array {
  return new SeededRandom(seed).normalArray(count, std);
}
