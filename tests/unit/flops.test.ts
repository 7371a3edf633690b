import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { catalogModel } from "../../shared/onnx/catalog.js";
import { EdgepoolError } from "../../shared/errors.js";
import { countFlops, countModelFlops } from "../../shared/onnx/flops.js";
import { GraphBuilder, attr } from "../../shared/onnx/builder.js";
import { decodeModel, encodeModel } from "../../shared/onnx/proto.js";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const zoo = path.resolve(repoRoot, "../shared/zoo");

const INT64_MAX_SATURATED = Number.MAX_SAFE_INTEGER;

describe("countFlops on the catalog", () => {
  it("mlp: exactly the hand count", () => {
    const expected =
      2 * 256 * 512 + // MatMul x·W1
      512 + // Add b1
      512 + // Relu
      2 * 512 * 10 + // MatMul h·W2
      10; // Add b2
    const r = countFlops(catalogModel("mlp").build());
    expect(r.flopsPerSample).toBe(expected);
    expect(r.flopsPerSample).toBe(273418);
    expect(r.byOp).toEqual({ MatMul: 2 * 256 * 512 + 2 * 512 * 10, Add: 522, Relu: 512 });
    expect(r).toMatchObject({ unknownOps: [], unresolved: [], complete: true, batch: 1, outputShapes: { logits: [1, 10] } });
  });

  it("wide-mlp: exactly the hand count", () => {
    const matmul = 2 * 64 * 2048 + 2 * 2048 * 2048 + 2 * 2048 * 10;
    const expected = matmul + (2048 + 2048 + 10) /* bias adds */ + (2048 + 2048) /* ReLUs */;
    const r = countFlops(catalogModel("wide-mlp").build());
    expect(r.flopsPerSample).toBe(expected);
    expect(r.flopsPerSample).toBe(8_699_914);
    expect(r.byOp).toEqual({ MatMul: matmul, Add: 4106, Relu: 4096 });
    expect(r.complete).toBe(true);
  });

  it("scale: one multiply per element of its 4096-float row", () => {
    const r = countFlops(catalogModel("scale").build());
    expect(r.flopsPerSample).toBe(4096);
    expect(r.byOp).toEqual({ Mul: 4096 });
    expect(r).toMatchObject({ unknownOps: [], complete: true, outputShapes: { y: [1, 4096] } });
  });

  it("cnn: exactly the hand count", () => {
    // Stem: 3→16, 3x3 stride 2 on 32x32 → 16x16, bias, ReLU.
    let expected = 2 * 16 * 16 * 16 * 3 * 9 + 16 * 16 * 16 + 16 * 16 * 16;
    let hw = 16;
    for (const [cin, cout, stride] of [
      [16, 32, 1],
      [32, 64, 1],
      [64, 128, 2],
      [128, 256, 1],
    ] as const) {
      hw /= stride;
      const dw = cin * hw * hw;
      expected += 2 * dw * 9 + 2 * dw + dw; // depthwise 3x3 (no bias), BatchNorm, ReLU
      const pw = cout * hw * hw;
      expected += 2 * pw * cin + pw + pw; // pointwise 1x1 with bias, ReLU
    }
    expected += 256 * 8 * 8; // GlobalAveragePool over 8x8
    expected += 2 * 256 * 10 + 10; // Gemm with C
    const r = countFlops(catalogModel("cnn").build());
    expect(r.flopsPerSample).toBe(expected);
    expect(r.flopsPerSample).toBeGreaterThan(5e6);
    expect(r.flopsPerSample).toBeLessThan(30e6);
    expect(r.complete).toBe(true);
    expect(r.outputShapes).toEqual({ logits: [1, 10] });
  });

  it("transformer: matmul FLOPs are exact and output shapes are inferred", () => {
    const s = 16;
    const d = 64;
    const expectedMatMul =
      4 * (2 * s * d * d) + // Q, K, V and output projections
      2 * (2 * 4 * s * s * (d / 4)) + // QKᵀ and P·V over 4 heads
      2 * (2 * s * d * 256); // feed-forward in and out
    const r = countFlops(catalogModel("transformer").build());
    expect(r.byOp.MatMul).toBe(expectedMatMul);
    expect(r.byOp.Softmax).toBe(3 * 4 * s * s);
    expect(r.byOp.LayerNormalization).toBe(8 * 2 * s * d);
    expect(r.byOp.ReduceMean).toBe(s * d);
    expect(r.flopsPerSample).toBe(1693728);
    expect(r).toMatchObject({ complete: true, outputShapes: { embeddings: [1, 16, 64], pooled: [1, 64] } });
  });

  it("counts per sample whatever the declared batch", () => {
    const dynamic = countFlops(catalogModel("transformer").build());
    const eight = countFlops(catalogModel("transformer").build({ batch: 8 }));
    expect(eight.batch).toBe(8);
    expect(eight.outputShapes.pooled).toEqual([8, 64]);
    expect(eight.flopsPerSample).toBe(dynamic.flopsPerSample);
    expect(eight.byOp).toEqual(dynamic.byOp);
  });
});

describe("countFlops on hand-built graphs", () => {
  it("Conv: groups, strides, pads, bias, auto_pad and dilations", () => {
    const g = new GraphBuilder();
    g.input("x", "float32", ["n", 2, 5, 5]);
    const w = g.floats("w", [4, 1, 3, 3], new Float32Array(36));
    const b = g.floats("b", [4], new Float32Array(4));
    const y = g.op("Conv", ["x", w, b], { group: attr.int(2), strides: attr.ints([2, 2]), pads: attr.ints([1, 1, 1, 1]) });
    // [1,4,3,3]: 2·Cout·Hout·Wout·(Cin/group)·kH·kW + one bias add per output.
    const w2 = g.floats("w2", [6, 4, 3, 3], new Float32Array(6 * 36));
    const same = g.op("Conv", [y, w2], { auto_pad: attr.string("SAME_UPPER"), strides: attr.ints([2, 2]) }); // [1,6,2,2]
    const valid = g.op("Conv", ["x", g.floats("w3", [1, 2, 2, 2], new Float32Array(8))], { auto_pad: attr.string("VALID") }); // [1,1,4,4]
    const dil = g.op("Conv", ["x", g.floats("w4", [3, 2, 3, 3], new Float32Array(54))], { dilations: attr.ints([2, 2]) }); // [1,3,1,1]
    g.output(same, "float32", ["n", 6, 2, 2]);
    g.output(valid, "float32", ["n", 1, 4, 4]);
    g.output(dil, "float32", ["n", 3, 1, 1]);
    const r = countFlops(g.build());
    const expected =
      2 * 4 * 3 * 3 * 1 * 9 + 4 * 3 * 3 + //
      2 * 6 * 2 * 2 * 4 * 9 +
      2 * 1 * 4 * 4 * 2 * 4 +
      2 * 3 * 1 * 1 * 2 * 9;
    expect(r.flopsPerSample).toBe(expected);
    expect(r.outputShapes).toEqual({ [same]: [1, 6, 2, 2], [valid]: [1, 1, 4, 4], [dil]: [1, 3, 1, 1] });
  });

  it("Gemm with transA/transB and C, and broadcasting MatMul", () => {
    const g = new GraphBuilder();
    g.input("a", "float32", [5, 3]);
    g.input("b", "float32", [4, 5]);
    g.input("c", "float32", [4]);
    g.input("p", "float32", [2, 1, 3, 4]);
    g.input("q", "float32", [5, 4, 6]);
    const y = g.op("Gemm", ["a", "b", "c"], { transA: attr.int(1), transB: attr.int(1) });
    const z = g.op("MatMul", ["p", "q"]);
    g.output(y, "float32", [3, 4]);
    g.output(z, "float32", [2, 5, 3, 6]);
    const r = countFlops(g.build());
    expect(r.outputShapes).toEqual({ [y]: [3, 4], [z]: [2, 5, 3, 6] });
    // The first input's first dim (5) is taken as a fixed batch: counts are divided by it.
    expect(r.batch).toBe(5);
    const gemm = 2 * 3 * 4 * 5 + 3 * 4;
    const matmul = 2 * (2 * 5) * 3 * 6 * 4;
    expect(r.byOp).toEqual({ Gemm: gemm / 5, MatMul: matmul / 5 });
    expect(r.flopsPerSample).toBe((gemm + matmul) / 5);
  });

  it("pools: ceil_mode, pads, global pools, LRN and Softmax", () => {
    const g = new GraphBuilder();
    g.input("x", "float32", ["n", 2, 6, 6]);
    const ceil = g.op("MaxPool", ["x"], { kernel_shape: attr.ints([3, 3]), strides: attr.ints([2, 2]), ceil_mode: attr.int(1) }); // 3x3
    const floor = g.op("AveragePool", ["x"], { kernel_shape: attr.ints([3, 3]), strides: attr.ints([2, 2]) }); // 2x2
    const padded = g.op("MaxPool", ["x"], { kernel_shape: attr.ints([2, 2]), pads: attr.ints([0, 0, 1, 1]), strides: attr.ints([2, 2]) }); // 3x3
    const gap = g.op("GlobalAveragePool", ["x"]);
    const lrn = g.op("LRN", ["x"], { size: attr.int(5) });
    const sm = g.op("Softmax", ["x"], { axis: attr.int(1) });
    for (const o of [ceil, floor, padded, gap, lrn, sm]) g.output(o, "float32", ["n", 2, "?", "?"]);
    const r = countFlops(g.build());
    expect(r.outputShapes).toEqual({
      [ceil]: [1, 2, 3, 3],
      [floor]: [1, 2, 2, 2],
      [padded]: [1, 2, 3, 3],
      [gap]: [1, 2, 1, 1],
      [lrn]: [1, 2, 6, 6],
      [sm]: [1, 2, 6, 6],
    });
    expect(r.byOp).toEqual({
      MaxPool: 2 * 9 * 9 + 2 * 9 * 4,
      AveragePool: 2 * 4 * 9,
      GlobalAveragePool: 72,
      LRN: (2 * 5 + 4) * 72,
      Softmax: 3 * 72,
    });
  });

  for (const opset of [11, 13]) {
    it(`folds Shape → Gather → Unsqueeze → Concat → Reshape chains (opset ${opset})`, () => {
      const g = new GraphBuilder({ opset });
      g.input("x", "float32", ["batch", 3, 4]);
      const shape = g.op("Shape", ["x"]);
      const n = g.op("Gather", [shape, g.int64s("zero", [], [0])], { axis: attr.int(0) });
      const n1 =
        opset >= 13
          ? g.op("Unsqueeze", [n, g.int64s("axes0", [1], [0])])
          : g.op("Unsqueeze", [n], { axes: attr.ints([0]) });
      const target = g.op("Concat", [n1, g.int64s("rest", [1], [-1])], { axis: attr.int(0) });
      const flat = g.op("Reshape", ["x", target]);
      const y = g.op("MatMul", [flat, g.floats("w", [12, 7], new Float32Array(84))]);
      g.output(y, "float32", ["batch", 7]);
      const r = countFlops(g.build());
      expect(r.flopsPerSample).toBe(2 * 12 * 7);
      expect(r.outputShapes[y]).toEqual([1, 7]);
      expect(r.complete).toBe(true);
    });
  }

  it("takes weight shapes from Constant → ConstantOfShape, as the zoo models do", () => {
    const g = new GraphBuilder({ opset: 9, irVersion: 3 });
    g.input("x", "float32", [1, 6]);
    const dims = g.op("Constant", [], { value: attr.tensor({ dtype: "int64", dims: [2], data: BigInt64Array.from([6n, 3n]) }) });
    const w = g.op("ConstantOfShape", [dims], { value: attr.tensor({ dtype: "float32", dims: [1], data: Float32Array.from([0.5]) }) });
    const y = g.op("MatMul", ["x", w]);
    g.output(y, "float32", [1, 3]);
    const r = countFlops(g.build());
    expect(r.flopsPerSample).toBe(2 * 6 * 3);
    expect(r.outputShapes[y]).toEqual([1, 3]);
  });

  it("propagates Slice, Split, Squeeze, Transpose, Expand, Pad, Flatten and Dropout", () => {
    const g = new GraphBuilder();
    g.input("x", "float32", ["batch", 8, 10]);
    const sliced = g.op("Slice", [
      "x",
      g.int64s("starts", [1], [2]),
      g.int64s("ends", [1], [INT64_MAX_SATURATED]),
      g.int64s("axes", [1], [2]),
    ]); // [1,8,8]
    const [, right] = g.node("Split", [sliced, g.int64s("split", [2], [3, 5])], { axis: attr.int(1) }, 2); // [1,5,8]
    const t = g.op("Transpose", [right as string], { perm: attr.ints([0, 2, 1]) }); // [1,8,5]
    const e = g.op("Expand", [g.floats("one", [1, 1, 1, 1], [1]), g.int64s("eshape", [4], [2, 1, 8, 5])]); // [2,1,8,5]
    const sum = g.op("Add", [t, e]); // [2,1,8,5] = 80
    const sq = g.op("Squeeze", [sum, g.int64s("sqaxes", [1], [1])]); // [2,8,5]
    const padded = g.op("Pad", [sq, g.int64s("pads", [6], [0, 1, 0, 0, 1, 2])]); // [2,10,7]
    const [drop] = g.node("Dropout", [padded], {}, 2);
    const flat = g.op("Flatten", [drop as string], { axis: attr.int(2) }); // [20,7]
    const r = g.op("Relu", [flat]); // 140
    g.output(r, "float32", [20, 7]);
    const report = countFlops(g.build());
    expect(report.outputShapes[r]).toEqual([20, 7]);
    expect(report.byOp.Add).toBe(80);
    expect(report.byOp.Relu).toBe(140);
    expect(report.flopsPerSample).toBe(220);
    expect(report.complete).toBe(true);
  });

  it("lists unknown ops, uses declared shapes past them, and reports what it could not resolve", () => {
    const g = new GraphBuilder();
    g.input("x", "float32", ["batch", 4]);
    const a = g.op("Relu", ["x"]);
    const [mystery] = g.node("Mystery", [a], {}, 1, { domain: "com.example" });
    const b = g.op("Relu", [mystery as string]);
    g.output(b, "float32", ["batch", 4]);
    const bytes = g.build();

    const r = countFlops(bytes);
    expect(r.unknownOps).toEqual(["com.example:Mystery"]);
    expect(r.byOp.Relu).toBe(4); // the first Relu only
    expect(r.unresolved).toHaveLength(1);
    expect(r.unresolved[0]).toContain("Relu");
    expect(r.complete).toBe(false);
    expect(r.outputShapes[b]).toEqual([1, 4]); // from the declared graph output

    // With the unknown op's output shape declared, counting continues past it.
    const model = decodeModel(bytes);
    model.graph.valueInfo.push({
      name: mystery as string,
      type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: "batch" }, { dimValue: 4 }] } } },
    });
    const r2 = countModelFlops(decodeModel(encodeModel(model)));
    expect(r2.byOp.Relu).toBe(8);
    expect(r2.unresolved).toEqual([]);
    expect(r2.unknownOps).toEqual(["com.example:Mystery"]);
    expect(r2.complete).toBe(false);
  });

  it("needs a value for symbolic dims other than the batch", () => {
    const g = new GraphBuilder();
    g.input("x", "float32", ["batch", "seq", 8]);
    const y = g.op("MatMul", ["x", g.floats("w", [8, 2], new Float32Array(16))]);
    g.output(y, "float32", ["batch", "seq", 2]);
    const bytes = g.build();
    let err: unknown;
    try {
      countFlops(bytes);
    } catch (e) {
      err = e;
    }
    expect((err as EdgepoolError).code).toBe("E_SHAPE");
    expect((err as EdgepoolError).message).toContain('"seq"');
    expect(countFlops(bytes, { dims: { seq: 10 } }).flopsPerSample).toBe(2 * 10 * 8 * 2);
  });

  it("rejects bytes that are not a model", () => {
    expect(() => countFlops(new Uint8Array([1, 2, 3]))).toThrowError(EdgepoolError);
  });
});

const ZOO_MODELS = [
  "light_bvlc_alexnet",
  "light_densenet121",
  "light_inception_v1",
  "light_inception_v2",
  "light_resnet50",
  "light_shufflenet",
  "light_squeezenet",
  "light_vgg19",
  "light_zfnet512",
];

/** Published per-image costs (2 FLOPs per multiply-add) for the well-known architectures. */
const PUBLISHED_GFLOPS: Record<string, number> = {
  light_resnet50: 8.2,
  light_bvlc_alexnet: 1.4,
  light_vgg19: 39,
  light_squeezenet: 0.7,
  light_densenet121: 5.7,
  light_inception_v1: 3.0,
};

describe.skipIf(!existsSync(zoo))("countFlops on the reference zoo", () => {
  for (const name of ZOO_MODELS) {
    it(`${name}: every op understood, output shapes inferred`, () => {
      const bytes = readFileSync(path.join(zoo, `${name}.onnx`));
      const r = countFlops(bytes);
      expect(r.unknownOps).toEqual([]);
      expect(r.unresolved).toEqual([]);
      expect(r.complete).toBe(true);
      expect(r.batch).toBe(1);
      const declared = Object.fromEntries(
        decodeModel(bytes).graph.output.map((o) => [o.name, o.type?.tensorType?.shape?.dim.map((d) => d.dimValue)]),
      );
      expect(r.outputShapes).toEqual(declared);
      expect(r.flopsPerSample).toBeGreaterThan(1e8);
      const published = PUBLISHED_GFLOPS[name];
      if (published !== undefined) {
        expect(r.flopsPerSample / 1e9).toBeGreaterThan(published * 0.9);
        expect(r.flopsPerSample / 1e9).toBeLessThan(published * 1.1);
      }
    });
  }
});
