import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { EdgepoolError } from "../../shared/errors.js";
import { GraphBuilder, SeededRandom, attr, mulberry32, seededNormal } from "../../shared/onnx/builder.js";
import { ModelInfoSchema, readModelInfo } from "../../shared/onnx/model-info.js";
import {
  AttributeType,
  OnnxDataType,
  type ModelProto,
  decodeModel,
  decodeTensorProto,
  encodeModel,
  encodeTensorProto,
  tensorFromProto,
  tensorToProto,
} from "../../shared/onnx/proto.js";
import type { Tensor } from "../../shared/tensor/tensor.js";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const zoo = path.resolve(repoRoot, "../shared/zoo");

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof EdgepoolError ? err.code : `not an EdgepoolError: ${String(err)}`;
  }
  return undefined;
}

const SAMPLE_TENSORS: Tensor[] = [
  { dtype: "float32", dims: [2, 3], data: Float32Array.from([1.5, -2, 0, 3.25, 1e-7, -1e30]) },
  { dtype: "float16", dims: [2], data: Uint16Array.from([0x3c00, 0xc000]) },
  { dtype: "float64", dims: [3], data: Float64Array.from([Math.PI, -0, 1e300]) },
  { dtype: "int8", dims: [3], data: Int8Array.from([-128, 0, 127]) },
  { dtype: "uint8", dims: [3], data: Uint8Array.from([0, 128, 255]) },
  { dtype: "int32", dims: [2], data: Int32Array.from([-2147483648, 2147483647]) },
  { dtype: "int64", dims: [3], data: BigInt64Array.from([-(2n ** 63n), 2n ** 53n + 1n, 7n]) },
  { dtype: "bool", dims: [1, 3], data: Uint8Array.from([1, 0, 1]) },
  { dtype: "float32", dims: [0, 4], data: new Float32Array(0) },
];

function tinyModel(): Uint8Array {
  const g = new GraphBuilder({ name: "tiny" });
  g.input("x", "float32", ["batch", 4]);
  const w = g.floats("w", [4, 2], [1, 2, 3, 4, 5, 6, 7, 8]);
  const y = g.op("MatMul", ["x", w]);
  g.op(
    "Custom",
    [y],
    {
      alpha: attr.float(0.25),
      count: attr.int(-3),
      sizes: attr.ints([1, 2, 9007199254740991]),
      scales: attr.floats([0.5, 1.5]),
      mode: attr.string("nearest"),
      table: attr.tensor({ dtype: "int64", dims: [2], data: BigInt64Array.from([5n, -6n]) }),
    },
    "out",
  );
  g.output("out", "float32", ["batch", 2]);
  return g.build();
}

describe("ONNX protobuf codec", () => {
  it("round-trips a built model through encode and decode", () => {
    const bytes = tinyModel();
    const model = decodeModel(bytes);
    expect(model.irVersion).toBe(8);
    expect(model.opsetImport).toEqual([{ domain: "", version: 17 }]);
    expect(model.producerName).toBe("edgepool");
    expect(model.graph.name).toBe("tiny");
    expect(model.graph.node.map((n) => n.opType)).toEqual(["MatMul", "Custom"]);
    expect(model.graph.node[1]?.output).toEqual(["out"]);
    expect(model.graph.input[0]?.type?.tensorType?.shape?.dim).toEqual([{ dimParam: "batch" }, { dimValue: 4 }]);
    expect(model.graph.input[0]?.type?.tensorType?.elemType).toBe(OnnxDataType.FLOAT);

    const attrs = new Map(model.graph.node[1]?.attribute.map((a) => [a.name, a]));
    expect(attrs.get("alpha")).toMatchObject({ type: AttributeType.FLOAT, f: 0.25 });
    expect(attrs.get("count")).toMatchObject({ type: AttributeType.INT, i: -3 });
    expect(attrs.get("sizes")).toMatchObject({ type: AttributeType.INTS, ints: [1, 2, 9007199254740991] });
    expect(attrs.get("scales")).toMatchObject({ type: AttributeType.FLOATS, floats: [0.5, 1.5] });
    expect(new TextDecoder().decode(attrs.get("mode")?.s)).toBe("nearest");
    const table = attrs.get("table")?.t;
    expect(table && Array.from(tensorFromProto(table).data as BigInt64Array)).toEqual([5n, -6n]);

    const w = model.graph.initializer[0];
    expect(w?.name).toBe("w");
    expect(w && tensorFromProto(w)).toEqual({ dtype: "float32", dims: [4, 2], data: Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]) });

    // Re-encoding the decoded message gives the same bytes.
    expect(Buffer.from(encodeModel(model)).equals(Buffer.from(bytes))).toBe(true);
  });

  it("round-trips every supported dtype through tensorToProto / raw_data", () => {
    for (const t of SAMPLE_TENSORS) {
      const bytes = encodeTensorProto(tensorToProto("t", t));
      const back = decodeTensorProto(bytes);
      expect(back.dtype).toBe(t.dtype);
      expect(back.dims).toEqual(t.dims);
      expect(Array.from(back.data as ArrayLike<number | bigint>)).toEqual(Array.from(t.data as ArrayLike<number | bigint>));
    }
  });

  it("decodes the typed *_data fields", () => {
    const cases: [Parameters<typeof encodeTensorProto>[0], Tensor][] = [
      [
        { name: "f", dims: [2], dataType: OnnxDataType.FLOAT, floatData: [0.5, -1] },
        { dtype: "float32", dims: [2], data: Float32Array.from([0.5, -1]) },
      ],
      [
        { name: "d", dims: [1], dataType: OnnxDataType.DOUBLE, doubleData: [0.1] },
        { dtype: "float64", dims: [1], data: Float64Array.from([0.1]) },
      ],
      [
        { name: "i", dims: [3], dataType: OnnxDataType.INT32, int32Data: [-1, 0, 1] },
        { dtype: "int32", dims: [3], data: Int32Array.from([-1, 0, 1]) },
      ],
      [
        { name: "u8", dims: [2], dataType: OnnxDataType.UINT8, int32Data: [200, 3] },
        { dtype: "uint8", dims: [2], data: Uint8Array.from([200, 3]) },
      ],
      [
        { name: "i8", dims: [2], dataType: OnnxDataType.INT8, int32Data: [-100, 3] },
        { dtype: "int8", dims: [2], data: Int8Array.from([-100, 3]) },
      ],
      [
        { name: "b", dims: [3], dataType: OnnxDataType.BOOL, int32Data: [1, 0, 1] },
        { dtype: "bool", dims: [3], data: Uint8Array.from([1, 0, 1]) },
      ],
      [
        { name: "h", dims: [1], dataType: OnnxDataType.FLOAT16, int32Data: [0x3c00] },
        { dtype: "float16", dims: [1], data: Uint16Array.from([0x3c00]) },
      ],
      [
        { name: "l", dims: [2, 1], dataType: OnnxDataType.INT64, int64Data: [2n ** 62n, -5n] },
        { dtype: "int64", dims: [2, 1], data: BigInt64Array.from([2n ** 62n, -5n]) },
      ],
    ];
    for (const [proto, expected] of cases) {
      expect(decodeTensorProto(encodeTensorProto(proto))).toEqual(expected);
    }
  });

  it("keeps int64 exact in tensors and saturates INT64_MAX sentinels in attributes", () => {
    const g = new GraphBuilder();
    g.input("x", "float32", [10]);
    g.op("Identity", ["x"], {}, "y");
    g.output("y", "float32", [10]);
    const model = g.toModel();
    // INT64_MAX as Slice "ends" is common in exported models.
    model.graph.node[0]?.attribute.push({ name: "ends", type: AttributeType.INTS, ints: [Number.MAX_SAFE_INTEGER] });
    model.graph.initializer.push({ name: "big", dims: [1], dataType: OnnxDataType.INT64, int64Data: [2n ** 63n - 1n] });
    const back = decodeModel(encodeModel(model));
    expect(back.graph.node[0]?.attribute[0]?.ints).toEqual([Number.MAX_SAFE_INTEGER]);
    const big = back.graph.initializer[0];
    expect(big && Array.from(tensorFromProto(big).data as BigInt64Array)).toEqual([2n ** 63n - 1n]);
  });

  it("rejects garbage with E_MODEL_INVALID", () => {
    const rand = mulberry32(42);
    const noise = Uint8Array.from({ length: 512 }, () => Math.floor(rand() * 256));
    const model = tinyModel();
    expect(codeOf(() => decodeModel(noise))).toBe("E_MODEL_INVALID");
    expect(codeOf(() => decodeModel(new Uint8Array(0)))).toBe("E_MODEL_INVALID");
    expect(codeOf(() => decodeModel(new TextEncoder().encode('{"not":"onnx"}')))).toBe("E_MODEL_INVALID");
    expect(codeOf(() => decodeModel(model.subarray(0, model.length - 7)))).toBe("E_MODEL_INVALID");
    // A valid message of the wrong kind (a tensor) has no graph.
    expect(codeOf(() => decodeModel(encodeTensorProto(tensorToProto("t", SAMPLE_TENSORS[0] as Tensor))))).toBe(
      "E_MODEL_INVALID",
    );
    expect(codeOf(() => decodeTensorProto(noise))).toBe("E_MODEL_INVALID");
  });

  it("rejects tensors whose payload does not match their dims, and unsupported types", () => {
    const short = { name: "s", dims: [4], dataType: OnnxDataType.FLOAT, floatData: [1, 2] };
    expect(codeOf(() => tensorFromProto(short))).toBe("E_MODEL_INVALID");
    const raw = { name: "r", dims: [3], dataType: OnnxDataType.INT32, rawData: new Uint8Array(8) };
    expect(codeOf(() => tensorFromProto(raw))).toBe("E_MODEL_INVALID");
    const str = { name: "s", dims: [1], dataType: OnnxDataType.STRING, stringData: [new Uint8Array(1)] };
    expect(codeOf(() => tensorFromProto(str))).toBe("E_DTYPE");
    const ext = { name: "e", dims: [1], dataType: OnnxDataType.FLOAT, dataLocation: 1 };
    expect(codeOf(() => tensorFromProto(ext))).toBe("E_MODEL_INVALID");
  });

  it.skipIf(!existsSync(zoo))("decodes a reference output TensorProto from the zoo", () => {
    const t = decodeTensorProto(readFileSync(path.join(zoo, "light_resnet50_output_0.pb")));
    expect(t.dtype).toBe("float32");
    expect(t.dims).toEqual([1, 1000]);
    const data = t.data as Float32Array;
    expect(data.length).toBe(1000);
    // A softmax output: non-negative, summing to one.
    expect(data.every((v) => v >= 0 && v <= 1)).toBe(true);
    expect(data.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 3);
  });
});

describe("readModelInfo", () => {
  function modelWith(edit: (m: ModelProto) => void): Uint8Array {
    const g = new GraphBuilder();
    g.input("x", "float32", ["batch", 3, "height", 5]);
    g.input("w", "float32", [3]);
    g.initializer("w", { dtype: "float32", dims: [3], data: new Float32Array(3) });
    g.op("Identity", ["x"], {}, "y");
    g.output("y", "float32", ["batch", 3, "height", 5]);
    const m = g.toModel();
    edit(m);
    return encodeModel(m);
  }

  it("reads names, dtypes and shapes, excluding initialized inputs", () => {
    const bytes = modelWith((m) => {
      // A dim with neither a value nor a name.
      const dim = m.graph.output[0]?.type?.tensorType?.shape?.dim;
      if (dim) dim[2] = {};
    });
    const info = readModelInfo(bytes);
    expect(info).toEqual({
      inputs: [{ name: "x", dtype: "float32", shape: ["batch", 3, "height", 5] }],
      outputs: [{ name: "y", dtype: "float32", shape: ["batch", 3, "?", 5] }],
      opset: 17,
      fixedBatch: false,
    });
    expect(ModelInfoSchema.parse(JSON.parse(JSON.stringify(info)))).toEqual(info);
  });

  it("reports a fixed batch only when every input starts with 1", () => {
    const fixed = modelWith((m) => {
      const dim = m.graph.input[0]?.type?.tensorType?.shape?.dim;
      if (dim) dim[0] = { dimValue: 1 };
    });
    expect(readModelInfo(fixed).fixedBatch).toBe(true);
    const eight = modelWith((m) => {
      const dim = m.graph.input[0]?.type?.tensorType?.shape?.dim;
      if (dim) dim[0] = { dimValue: 8 };
    });
    expect(readModelInfo(eight).fixedBatch).toBe(false);
  });

  it("names the input whose element type is unsupported", () => {
    const bytes = modelWith((m) => {
      const tt = m.graph.input[0]?.type?.tensorType;
      if (tt) tt.elemType = OnnxDataType.STRING;
    });
    let err: unknown;
    try {
      readModelInfo(bytes);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(EdgepoolError);
    expect((err as EdgepoolError).code).toBe("E_DTYPE");
    expect((err as EdgepoolError).message).toContain('"x"');
  });

  it("rejects non-models with E_MODEL_INVALID", () => {
    expect(codeOf(() => readModelInfo(new TextEncoder().encode("hello")))).toBe("E_MODEL_INVALID");
  });

  it.skipIf(!existsSync(zoo))("reads a zoo model whose weights are also listed as graph inputs", () => {
    const info = readModelInfo(readFileSync(path.join(zoo, "light_resnet50.onnx")));
    expect(info).toEqual({
      inputs: [{ name: "gpu_0/data_0", dtype: "float32", shape: [1, 3, 224, 224] }],
      outputs: [{ name: "gpu_0/softmax_1", dtype: "float32", shape: [1, 1000] }],
      opset: 9,
      fixedBatch: true,
    });
  });
});

describe("seeded random", () => {
  it("is deterministic and has the requested spread", () => {
    const a = seededNormal(7, 20000, 0.5);
    expect(Array.from(seededNormal(7, 20000, 0.5))).toEqual(Array.from(a));
    expect(Array.from(seededNormal(8, 10))).not.toEqual(Array.from(a.subarray(0, 10)));
    const mean = a.reduce((s, v) => s + v, 0) / a.length;
    const std = Math.sqrt(a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length);
    expect(Math.abs(mean)).toBeLessThan(0.02);
    expect(std).toBeGreaterThan(0.48);
    expect(std).toBeLessThan(0.52);
    const r = new SeededRandom(3);
    const ints = Array.from({ length: 1000 }, () => r.int(2, 5));
    expect(new Set(ints)).toEqual(new Set([2, 3, 4]));
  });
});
