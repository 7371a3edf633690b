/**
 * ONNX protobuf encode/decode for the subset of onnx.proto that edgepool reads and writes:
 * models, graphs, nodes, attributes, tensors and value infos. The schema is embedded as a
 * protobufjs JSON descriptor (field numbers as in onnx/onnx.proto) so no .proto file has to
 * be shipped or parsed at run time, and no `node:` import is needed: browsers use this too.
 *
 * Decoded messages are normalized into the plain interfaces below: int64 fields become
 * numbers (or bigints for tensor payloads), absent strings become "", absent lists become [].
 */
import protobuf from "protobufjs/light.js";
import { EdgepoolError } from "../errors.js";
import { type DType, type Tensor, type TensorData, bytesPerElement, elementCount, viewOf } from "../tensor/tensor.js";

/** ONNX TensorProto.DataType values edgepool knows by name. */
export const OnnxDataType = {
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
} as const;

/** ONNX AttributeProto.AttributeType values. */
export const AttributeType = {
  UNDEFINED: 0,
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
} as const;

const DTYPE_TO_ONNX: Record<DType, number> = {
  float32: OnnxDataType.FLOAT,
  uint8: OnnxDataType.UINT8,
  int8: OnnxDataType.INT8,
  int32: OnnxDataType.INT32,
  int64: OnnxDataType.INT64,
  bool: OnnxDataType.BOOL,
  float16: OnnxDataType.FLOAT16,
  float64: OnnxDataType.DOUBLE,
};

const ONNX_TO_DTYPE = new Map<number, DType>(
  Object.entries(DTYPE_TO_ONNX).map(([dtype, code]) => [code, dtype as DType]),
);

/** The edgepool dtype for an ONNX data type code, or undefined when edgepool has none. */
export function dtypeFromOnnx(code: number): DType | undefined {
  return ONNX_TO_DTYPE.get(code);
}

/** The ONNX data type code for an edgepool dtype. */
export function onnxFromDtype(dtype: DType): number {
  return DTYPE_TO_ONNX[dtype];
}

export interface OperatorSetId {
  domain: string;
  version: number;
}

export interface TensorProto {
  name: string;
  dims: number[];
  dataType: number;
  rawData?: Uint8Array;
  floatData?: number[];
  int32Data?: number[];
  int64Data?: bigint[];
  doubleData?: number[];
  uint64Data?: bigint[];
  stringData?: Uint8Array[];
  /** 1 = EXTERNAL: the payload lives in a side file, which edgepool does not support. */
  dataLocation?: number;
}

export interface AttributeProto {
  name: string;
  type: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: TensorProto;
  g?: GraphProto;
  floats?: number[];
  ints?: number[];
  strings?: Uint8Array[];
}

export interface NodeProto {
  name: string;
  opType: string;
  domain: string;
  input: string[];
  output: string[];
  attribute: AttributeProto[];
}

export interface Dimension {
  dimValue?: number;
  dimParam?: string;
}

export interface TensorTypeProto {
  elemType: number;
  /** Absent shape means "rank unknown", which differs from an empty dim list (a scalar). */
  shape?: { dim: Dimension[] };
}

export interface TypeProto {
  tensorType?: TensorTypeProto;
}

export interface ValueInfoProto {
  name: string;
  type?: TypeProto;
}

export interface GraphProto {
  name: string;
  node: NodeProto[];
  initializer: TensorProto[];
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  valueInfo: ValueInfoProto[];
}

export interface ModelProto {
  irVersion: number;
  opsetImport: OperatorSetId[];
  producerName: string;
  producerVersion: string;
  graph: GraphProto;
}

// Field numbers follow onnx/onnx.proto. onnx.proto is proto2, so repeated scalars are
// unpacked unless the .proto says `[packed = true]`; matching that keeps our output
// byte-compatible with what the reference tooling writes. (Decoding accepts both forms.)
const PACKED = { packed: true };
const UNPACKED = { packed: false };
const ONNX_DESCRIPTOR = {
  nested: {
    onnx: {
      nested: {
        ModelProto: {
          fields: {
            irVersion: { type: "int64", id: 1 },
            opsetImport: { rule: "repeated", type: "OperatorSetIdProto", id: 8 },
            producerName: { type: "string", id: 2 },
            producerVersion: { type: "string", id: 3 },
            graph: { type: "GraphProto", id: 7 },
          },
        },
        OperatorSetIdProto: {
          fields: {
            domain: { type: "string", id: 1 },
            version: { type: "int64", id: 2 },
          },
        },
        GraphProto: {
          fields: {
            node: { rule: "repeated", type: "NodeProto", id: 1 },
            name: { type: "string", id: 2 },
            initializer: { rule: "repeated", type: "TensorProto", id: 5 },
            input: { rule: "repeated", type: "ValueInfoProto", id: 11 },
            output: { rule: "repeated", type: "ValueInfoProto", id: 12 },
            valueInfo: { rule: "repeated", type: "ValueInfoProto", id: 13 },
          },
        },
        NodeProto: {
          fields: {
            input: { rule: "repeated", type: "string", id: 1 },
            output: { rule: "repeated", type: "string", id: 2 },
            name: { type: "string", id: 3 },
            opType: { type: "string", id: 4 },
            domain: { type: "string", id: 7 },
            attribute: { rule: "repeated", type: "AttributeProto", id: 5 },
          },
        },
        AttributeProto: {
          fields: {
            name: { type: "string", id: 1 },
            f: { type: "float", id: 2 },
            i: { type: "int64", id: 3 },
            s: { type: "bytes", id: 4 },
            t: { type: "TensorProto", id: 5 },
            g: { type: "GraphProto", id: 6 },
            floats: { rule: "repeated", type: "float", id: 7, options: UNPACKED },
            ints: { rule: "repeated", type: "int64", id: 8, options: UNPACKED },
            strings: { rule: "repeated", type: "bytes", id: 9 },
            type: { type: "int32", id: 20 },
          },
        },
        StringStringEntryProto: {
          fields: {
            key: { type: "string", id: 1 },
            value: { type: "string", id: 2 },
          },
        },
        TensorProto: {
          fields: {
            dims: { rule: "repeated", type: "int64", id: 1, options: UNPACKED },
            dataType: { type: "int32", id: 2 },
            floatData: { rule: "repeated", type: "float", id: 4, options: PACKED },
            int32Data: { rule: "repeated", type: "int32", id: 5, options: PACKED },
            stringData: { rule: "repeated", type: "bytes", id: 6 },
            int64Data: { rule: "repeated", type: "int64", id: 7, options: PACKED },
            name: { type: "string", id: 8 },
            rawData: { type: "bytes", id: 9 },
            doubleData: { rule: "repeated", type: "double", id: 10, options: PACKED },
            uint64Data: { rule: "repeated", type: "uint64", id: 11, options: PACKED },
            externalData: { rule: "repeated", type: "StringStringEntryProto", id: 13 },
            dataLocation: { type: "int32", id: 14 },
          },
        },
        ValueInfoProto: {
          fields: {
            name: { type: "string", id: 1 },
            type: { type: "TypeProto", id: 2 },
          },
        },
        TypeProto: {
          oneofs: { value: { oneof: ["tensorType"] } },
          fields: {
            tensorType: { type: "Tensor", id: 1 },
          },
          nested: {
            Tensor: {
              fields: {
                elemType: { type: "int32", id: 1 },
                shape: { type: "TensorShapeProto", id: 2 },
              },
            },
          },
        },
        TensorShapeProto: {
          fields: {
            dim: { rule: "repeated", type: "Dimension", id: 1 },
          },
          nested: {
            Dimension: {
              oneofs: { value: { oneof: ["dimValue", "dimParam"] } },
              fields: {
                dimValue: { type: "int64", id: 1 },
                dimParam: { type: "string", id: 2 },
              },
            },
          },
        },
      },
    },
  },
};

const root = protobuf.Root.fromJSON(ONNX_DESCRIPTOR);
const ModelType = root.lookupType("onnx.ModelProto");
const TensorType = root.lookupType("onnx.TensorProto");

// ---------------------------------------------------------------------------------------
// int64 handling. protobufjs yields a Long when the `long` package is loadable and a plain
// number otherwise (e.g. in some browser bundles); both are accepted here.

type Rec = Record<string, unknown>;

function isRec(v: unknown): v is Rec {
  return typeof v === "object" && v !== null;
}

function invalid(what: string, cause?: unknown): EdgepoolError {
  return new EdgepoolError(
    "E_MODEL_INVALID",
    `${what}; check that the file is an ONNX model (.onnx) saved completely and uploaded unmodified`,
    cause === undefined ? undefined : { cause },
  );
}

/** Exact value of a protobuf int64/uint64 field as a bigint. */
function int64ToBigInt(v: unknown, unsigned = false): bigint {
  if (typeof v === "bigint") return v;
  if (typeof v === "number") return BigInt(Math.trunc(v));
  if (typeof v === "string") return BigInt(v);
  if (isRec(v) && typeof v.low === "number" && typeof v.high === "number") {
    const lo = BigInt(v.low >>> 0);
    const hi = BigInt(v.high | 0);
    const bits = (hi << 32n) | lo;
    const isUnsigned = v.unsigned === true || unsigned;
    return isUnsigned ? BigInt.asUintN(64, bits) : BigInt.asIntN(64, bits);
  }
  throw invalid(`expected an integer, got ${typeof v}`);
}

/** An int64 that must fit a JS number exactly (dims, versions): out of range is an error. */
function int64ToSafeNumber(v: unknown, what: string): number {
  const b = int64ToBigInt(v);
  if (b > BigInt(Number.MAX_SAFE_INTEGER) || b < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw invalid(`${what} is ${b}, beyond what this decoder can represent`);
  }
  return Number(b);
}

/**
 * An int64 attribute value as a number. Exporters use INT64_MAX/INT64_MIN as "to the end"
 * sentinels (Slice ends, for one); saturating keeps that meaning where an exact value can't
 * be held in a double.
 */
function int64Saturating(v: unknown): number {
  const b = int64ToBigInt(v);
  if (b > BigInt(Number.MAX_SAFE_INTEGER)) return Number.MAX_SAFE_INTEGER;
  if (b < BigInt(Number.MIN_SAFE_INTEGER)) return Number.MIN_SAFE_INTEGER;
  return Number(b);
}

/** A bigint in the {low, high} shape protobufjs writers accept without the `long` package. */
function bigintToBits(b: bigint): { low: number; high: number; unsigned: boolean } {
  const u = BigInt.asUintN(64, b);
  return { low: Number(u & 0xffffffffn) | 0, high: Number(u >> 32n) | 0, unsigned: false };
}

// ---------------------------------------------------------------------------------------
// Normalization of decoded messages. Fields absent on the wire live on the prototype as
// defaults, so presence is checked with Object.hasOwn.

function has(m: Rec, key: string): boolean {
  return Object.hasOwn(m, key) && m[key] !== null && m[key] !== undefined;
}

function str(m: Rec, key: string): string {
  const v = m[key];
  return typeof v === "string" ? v : "";
}

function list(m: Rec, key: string): unknown[] {
  const v = m[key];
  return Array.isArray(v) ? v : [];
}

function bytesOf(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return v;
  throw invalid("expected a bytes field");
}

function numList(m: Rec, key: string): number[] {
  return list(m, key).map((x) => Number(x));
}

function normTensor(m: Rec): TensorProto {
  const t: TensorProto = {
    name: str(m, "name"),
    dims: list(m, "dims").map((d) => int64ToSafeNumber(d, "a tensor dim")),
    dataType: Number(m.dataType ?? 0),
  };
  if (has(m, "rawData")) t.rawData = bytesOf(m.rawData);
  if (list(m, "floatData").length > 0) t.floatData = numList(m, "floatData");
  if (list(m, "int32Data").length > 0) t.int32Data = numList(m, "int32Data");
  if (list(m, "int64Data").length > 0) t.int64Data = list(m, "int64Data").map((x) => int64ToBigInt(x));
  if (list(m, "doubleData").length > 0) t.doubleData = numList(m, "doubleData");
  if (list(m, "uint64Data").length > 0) t.uint64Data = list(m, "uint64Data").map((x) => int64ToBigInt(x, true));
  if (list(m, "stringData").length > 0) t.stringData = list(m, "stringData").map(bytesOf);
  if (has(m, "dataLocation")) t.dataLocation = Number(m.dataLocation);
  return t;
}

function normAttribute(m: Rec): AttributeProto {
  const a: AttributeProto = { name: str(m, "name"), type: Number(m.type ?? 0) };
  if (has(m, "f")) a.f = Number(m.f);
  if (has(m, "i")) a.i = int64Saturating(m.i);
  if (has(m, "s")) a.s = bytesOf(m.s);
  if (has(m, "t") && isRec(m.t)) a.t = normTensor(m.t);
  if (has(m, "g") && isRec(m.g)) a.g = normGraph(m.g);
  if (list(m, "floats").length > 0) a.floats = numList(m, "floats");
  if (list(m, "ints").length > 0) a.ints = list(m, "ints").map(int64Saturating);
  if (list(m, "strings").length > 0) a.strings = list(m, "strings").map(bytesOf);
  return a;
}

function normNode(m: Rec): NodeProto {
  return {
    name: str(m, "name"),
    opType: str(m, "opType"),
    domain: str(m, "domain"),
    input: list(m, "input").map(String),
    output: list(m, "output").map(String),
    attribute: list(m, "attribute").filter(isRec).map(normAttribute),
  };
}

function normValueInfo(m: Rec): ValueInfoProto {
  const vi: ValueInfoProto = { name: str(m, "name") };
  const type = m.type;
  if (has(m, "type") && isRec(type) && has(type, "tensorType") && isRec(type.tensorType)) {
    const tt = type.tensorType;
    const tensorType: TensorTypeProto = { elemType: Number(tt.elemType ?? 0) };
    if (has(tt, "shape") && isRec(tt.shape)) {
      const dim = list(tt.shape, "dim")
        .filter(isRec)
        .map((d): Dimension => {
          if (has(d, "dimValue")) return { dimValue: int64ToSafeNumber(d.dimValue, `a dim of ${vi.name}`) };
          if (has(d, "dimParam")) return { dimParam: str(d, "dimParam") };
          return {};
        });
      tensorType.shape = { dim };
    }
    vi.type = { tensorType };
  } else if (has(m, "type")) {
    vi.type = {};
  }
  return vi;
}

function normGraph(m: Rec): GraphProto {
  return {
    name: str(m, "name"),
    node: list(m, "node").filter(isRec).map(normNode),
    initializer: list(m, "initializer").filter(isRec).map(normTensor),
    input: list(m, "input").filter(isRec).map(normValueInfo),
    output: list(m, "output").filter(isRec).map(normValueInfo),
    valueInfo: list(m, "valueInfo").filter(isRec).map(normValueInfo),
  };
}

function decodeWith(type: protobuf.Type, bytes: Uint8Array, what: string): Rec {
  if (!(bytes instanceof Uint8Array) || bytes.byteLength === 0) {
    throw invalid(`${what}: no bytes to decode`);
  }
  try {
    return type.decode(bytes) as unknown as Rec;
  } catch (err) {
    throw invalid(`${what} could not be decoded (${err instanceof Error ? err.message : String(err)})`, err);
  }
}

/** Decodes ONNX model bytes; throws E_MODEL_INVALID for anything that is not a model. */
export function decodeModel(bytes: Uint8Array): ModelProto {
  const m = decodeWith(ModelType, bytes, "ONNX model");
  try {
    if (!has(m, "graph") || !isRec(m.graph)) throw invalid("ONNX model has no graph");
    const opsetImport = list(m, "opsetImport")
      .filter(isRec)
      .map((o) => ({ domain: str(o, "domain"), version: int64ToSafeNumber(o.version ?? 0, "an opset version") }));
    const irVersion = has(m, "irVersion") ? int64ToSafeNumber(m.irVersion, "ir_version") : 0;
    if (irVersion <= 0 && opsetImport.length === 0) throw invalid("ONNX model has neither ir_version nor opset_import");
    return {
      irVersion,
      opsetImport,
      producerName: str(m, "producerName"),
      producerVersion: str(m, "producerVersion"),
      graph: normGraph(m.graph),
    };
  } catch (err) {
    if (err instanceof EdgepoolError) throw err;
    throw invalid("ONNX model has malformed fields", err);
  }
}

/** Empty strings are left off the wire, as the reference writers do, to keep output small. */
function withName(w: Rec, key: string, value: string): Rec {
  if (value !== "") w[key] = value;
  return w;
}

function tensorToWire(t: TensorProto): Rec {
  const w = withName({ dims: t.dims, dataType: t.dataType }, "name", t.name);
  if (t.rawData) w.rawData = t.rawData;
  if (t.floatData) w.floatData = t.floatData;
  if (t.int32Data) w.int32Data = t.int32Data;
  if (t.int64Data) w.int64Data = t.int64Data.map(bigintToBits);
  if (t.doubleData) w.doubleData = t.doubleData;
  if (t.uint64Data) w.uint64Data = t.uint64Data.map((b) => ({ ...bigintToBits(b), unsigned: true }));
  if (t.stringData) w.stringData = t.stringData;
  if (t.dataLocation !== undefined) w.dataLocation = t.dataLocation;
  return w;
}

function attributeToWire(a: AttributeProto): Rec {
  const w = withName({ type: a.type }, "name", a.name);
  if (a.f !== undefined) w.f = a.f;
  if (a.i !== undefined) w.i = a.i;
  if (a.s !== undefined) w.s = a.s;
  if (a.t !== undefined) w.t = tensorToWire(a.t);
  if (a.g !== undefined) w.g = graphToWire(a.g);
  if (a.floats !== undefined) w.floats = a.floats;
  if (a.ints !== undefined) w.ints = a.ints;
  if (a.strings !== undefined) w.strings = a.strings;
  return w;
}

function nodeToWire(n: NodeProto): Rec {
  const w: Rec = { input: n.input, output: n.output, opType: n.opType, attribute: n.attribute.map(attributeToWire) };
  withName(w, "name", n.name);
  return withName(w, "domain", n.domain);
}

function graphToWire(g: GraphProto): Rec {
  const w: Rec = {
    node: g.node.map(nodeToWire),
    initializer: g.initializer.map(tensorToWire),
    input: g.input,
    output: g.output,
    valueInfo: g.valueInfo,
  };
  return withName(w, "name", g.name);
}

/** Encodes a model to ONNX bytes. */
export function encodeModel(model: ModelProto): Uint8Array {
  const wire: Rec = {
    irVersion: model.irVersion,
    opsetImport: model.opsetImport.map((o) => withName({ version: o.version }, "domain", o.domain)),
    graph: graphToWire(model.graph),
  };
  withName(wire, "producerName", model.producerName);
  withName(wire, "producerVersion", model.producerVersion);
  // protobufjs returns a Buffer under Node; callers get a plain Uint8Array view either way.
  const out = ModelType.encode(wire).finish();
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Encodes one TensorProto to bytes (the format of ONNX test-data `.pb` files). */
export function encodeTensorProto(t: TensorProto): Uint8Array {
  const out = TensorType.encode(tensorToWire(t)).finish();
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Decodes a serialized TensorProto (e.g. an ONNX test-data `.pb` file) into a Tensor. */
export function decodeTensorProto(bytes: Uint8Array): Tensor {
  const m = decodeWith(TensorType, bytes, "ONNX TensorProto");
  return tensorFromProto(normTensor(m));
}

function typedFromNumbers(dtype: DType, values: readonly number[]): TensorData {
  switch (dtype) {
    case "float32":
      return Float32Array.from(values);
    case "float64":
      return Float64Array.from(values);
    case "float16":
      // int32_data holds the raw half-precision bit patterns.
      return Uint16Array.from(values);
    case "int8":
      return Int8Array.from(values);
    case "uint8":
      return Uint8Array.from(values);
    case "bool":
      return Uint8Array.from(values, (v) => (v !== 0 ? 1 : 0));
    case "int32":
      return Int32Array.from(values);
    case "int64":
      return BigInt64Array.from(values, (v) => BigInt(v));
  }
}

/** The payload of a TensorProto as a Tensor (raw_data or the typed *_data field). */
export function tensorFromProto(t: TensorProto): Tensor {
  const label = t.name ? `tensor "${t.name}"` : "tensor";
  const dtype = dtypeFromOnnx(t.dataType);
  if (dtype === undefined) {
    throw new EdgepoolError(
      "E_DTYPE",
      `${label} has ONNX data type ${t.dataType}, which edgepool does not support; ` +
        "use float32, float16, float64, int8, uint8, int32, int64 or bool",
    );
  }
  if (t.dataLocation === 1) {
    throw invalid(`${label} keeps its data in an external file; save the model with all tensors inside the .onnx file`);
  }
  const dims = [...t.dims];
  const n = elementCount(dims);
  const bpe = bytesPerElement(dtype);
  if (t.rawData !== undefined) {
    if (t.rawData.byteLength !== n * bpe) {
      throw invalid(`${label}: raw_data has ${t.rawData.byteLength} bytes, dims [${dims.join(",")}] need ${n * bpe}`);
    }
    // Copy into a fresh buffer: the decoded bytes may sit at an offset not aligned to the
    // element size. (Not `.slice()`: on a Node Buffer that returns a view, not a copy.)
    // ONNX raw_data is little-endian, as are all hosts edgepool runs on.
    const copy = new Uint8Array(t.rawData);
    const data = viewOf(dtype, copy.buffer, 0, n);
    return { dtype, dims, data: dtype === "bool" ? (data as Uint8Array).map((v) => (v !== 0 ? 1 : 0)) : data };
  }
  let data: TensorData;
  let count: number;
  switch (dtype) {
    case "float32":
      count = t.floatData?.length ?? 0;
      data = typedFromNumbers(dtype, t.floatData ?? []);
      break;
    case "float64":
      count = t.doubleData?.length ?? 0;
      data = typedFromNumbers(dtype, t.doubleData ?? []);
      break;
    case "int64":
      count = t.int64Data?.length ?? 0;
      data = BigInt64Array.from(t.int64Data ?? []);
      break;
    default:
      count = t.int32Data?.length ?? 0;
      data = typedFromNumbers(dtype, t.int32Data ?? []);
  }
  if (count !== n) {
    throw invalid(`${label}: has ${count} values, dims [${dims.join(",")}] need ${n}`);
  }
  return { dtype, dims, data };
}

/** A TensorProto holding `tensor` as little-endian raw_data. */
export function tensorToProto(name: string, tensor: Tensor): TensorProto {
  const expected = elementCount(tensor.dims);
  if (tensor.data.length !== expected) {
    throw new EdgepoolError(
      "E_SHAPE",
      `tensor "${name}": dims [${tensor.dims.join(",")}] need ${expected} elements but data has ${tensor.data.length}`,
    );
  }
  const d = tensor.data;
  return {
    name,
    dims: [...tensor.dims],
    dataType: DTYPE_TO_ONNX[tensor.dtype],
    // A copy, so later writes to the caller's tensor cannot change an encoded model.
    rawData: new Uint8Array(d.buffer, d.byteOffset, d.byteLength).slice(),
  };
}
