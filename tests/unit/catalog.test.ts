import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CATALOG, type CatalogEntry, catalogModel, catalogNames } from "../../shared/onnx/catalog.js";
import { EdgepoolError } from "../../shared/errors.js";
import { readModelInfo } from "../../shared/onnx/model-info.js";
import type { Tensor } from "../../shared/tensor/tensor.js";

const EXPECTED_INFO = {
  mlp: {
    inputs: [{ name: "x", dtype: "float32", shape: ["batch", 256] }],
    outputs: [{ name: "logits", dtype: "float32", shape: ["batch", 10] }],
  },
  "wide-mlp": {
    inputs: [{ name: "x", dtype: "float32", shape: ["batch", 64] }],
    outputs: [{ name: "logits", dtype: "float32", shape: ["batch", 10] }],
  },
  scale: {
    inputs: [{ name: "x", dtype: "float32", shape: ["batch", 4096] }],
    outputs: [{ name: "y", dtype: "float32", shape: ["batch", 4096] }],
  },
  cnn: {
    inputs: [{ name: "image", dtype: "float32", shape: ["batch", 3, 32, 32] }],
    outputs: [{ name: "logits", dtype: "float32", shape: ["batch", 10] }],
  },
  transformer: {
    inputs: [
      { name: "input_ids", dtype: "int64", shape: ["batch", 16] },
      { name: "attention_mask", dtype: "int64", shape: ["batch", 16] },
    ],
    outputs: [
      { name: "embeddings", dtype: "float32", shape: ["batch", 16, 64] },
      { name: "pooled", dtype: "float32", shape: ["batch", 64] },
    ],
  },
  "llm-tiny": {
    inputs: [
      { name: "input_ids", dtype: "int64", shape: ["batch", "sequence_length"] },
      { name: "attention_mask", dtype: "int64", shape: ["batch", "total_sequence_length"] },
      { name: "position_ids", dtype: "int64", shape: ["batch", "sequence_length"] },
      { name: "past_key_values.0.key", dtype: "float32", shape: ["batch", 4, "past_sequence_length", 16] },
      { name: "past_key_values.0.value", dtype: "float32", shape: ["batch", 4, "past_sequence_length", 16] },
      { name: "past_key_values.1.key", dtype: "float32", shape: ["batch", 4, "past_sequence_length", 16] },
      { name: "past_key_values.1.value", dtype: "float32", shape: ["batch", 4, "past_sequence_length", 16] },
    ],
    outputs: [
      { name: "logits", dtype: "float32", shape: ["batch", "sequence_length", 256] },
      { name: "present.0.key", dtype: "float32", shape: ["batch", 4, "total_sequence_length", 16] },
      { name: "present.0.value", dtype: "float32", shape: ["batch", 4, "total_sequence_length", 16] },
      { name: "present.1.key", dtype: "float32", shape: ["batch", 4, "total_sequence_length", 16] },
      { name: "present.1.value", dtype: "float32", shape: ["batch", 4, "total_sequence_length", 16] },
    ],
  },
} as const;

/** Symbolic non-batch dims as the sample inputs fix them: llm-tiny's prefill of 8 tokens, no past. */
const SAMPLE_DIMS: Record<string, number> = { sequence_length: 8, total_sequence_length: 8 };

function sampleDim(d: number | string): number {
  if (typeof d === "number") return d;
  const n = SAMPLE_DIMS[d];
  if (n === undefined) throw new Error(`no sample size for dim "${d}"`);
  return n;
}

function toOrt(inputs: Record<string, Tensor>): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(inputs)) {
    feeds[name] =
      t.dtype === "int64"
        ? new ort.Tensor("int64", t.data as BigInt64Array, t.dims)
        : new ort.Tensor("float32", t.data as Float32Array, t.dims);
  }
  return feeds;
}

/** Row `i` of a batched input, as a batch of one. */
function row(inputs: Record<string, Tensor>, i: number): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(inputs)) {
    const per = t.data.length / (t.dims[0] ?? 1);
    out[name] = { dtype: t.dtype, dims: [1, ...t.dims.slice(1)], data: t.data.slice(i * per, (i + 1) * per) };
  }
  return out;
}

async function run(session: ort.InferenceSession, inputs: Record<string, Tensor>): Promise<Record<string, Float32Array>> {
  const result = await session.run(toOrt(inputs));
  const out: Record<string, Float32Array> = {};
  for (const name of session.outputNames) out[name] = result[name]?.data as Float32Array;
  return out;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] ?? NaN) - (b[i] ?? NaN)));
  return m;
}

describe("catalog", () => {
  it("lists the built-in models and finds them by name", () => {
    expect(catalogNames()).toEqual(["mlp", "wide-mlp", "scale", "cnn", "transformer", "llm-tiny"]);
    expect(catalogModel("cnn").name).toBe("cnn");
    let err: unknown;
    try {
      catalogModel("resnet9000");
    } catch (e) {
      err = e;
    }
    expect((err as EdgepoolError).code).toBe("E_NOT_FOUND");
    expect((err as EdgepoolError).message).toContain("mlp, wide-mlp, scale, cnn, transformer, llm-tiny");
  });

  it("rejects a bad batch option", () => {
    expect(() => catalogModel("mlp").build({ batch: 0 })).toThrowError(EdgepoolError);
    expect(() => catalogModel("mlp").build({ batch: 1.5 })).toThrowError(EdgepoolError);
  });

  for (const entry of CATALOG) {
    const expected = EXPECTED_INFO[entry.name as keyof typeof EXPECTED_INFO];

    it(`${entry.name}: declares its signature with a symbolic batch by default`, () => {
      expect(readModelInfo(entry.build())).toEqual({ ...expected, opset: 17, fixedBatch: false });
    });

    it(`${entry.name}: the fixed variant declares a batch of 1`, () => {
      const info = readModelInfo(entry.build({ batch: 1 }));
      expect(info.fixedBatch).toBe(true);
      const one = (io: { shape: readonly (number | string)[] }): (number | string)[] => [1, ...io.shape.slice(1)];
      expect(info.inputs.map((i) => i.shape)).toEqual(expected.inputs.map(one));
      expect(info.outputs.map((o) => o.shape)).toEqual(expected.outputs.map(one));
    });

    it(`${entry.name}: builds byte-identical models`, () => {
      const a = entry.build();
      const b = entry.build({ batch: "dynamic" });
      expect(a.length).toBeGreaterThan(100);
      expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
      expect(Buffer.from(entry.build({ batch: 1 })).equals(Buffer.from(entry.build({ batch: 1 })))).toBe(true);
    });
  }
});

describe("catalog models in onnxruntime-node", () => {
  const sessions = new Map<string, { dynamic: ort.InferenceSession; fixed: ort.InferenceSession }>();

  beforeAll(async () => {
    for (const entry of CATALOG) {
      sessions.set(entry.name, {
        dynamic: await ort.InferenceSession.create(entry.build(), { intraOpNumThreads: 1 }),
        fixed: await ort.InferenceSession.create(entry.build({ batch: 1 }), { intraOpNumThreads: 1 }),
      });
    }
  });

  afterAll(async () => {
    for (const s of sessions.values()) {
      await s.dynamic.release();
      await s.fixed.release();
    }
  });

  function sessionsOf(entry: CatalogEntry): { dynamic: ort.InferenceSession; fixed: ort.InferenceSession } {
    const s = sessions.get(entry.name);
    if (s === undefined) throw new Error(`no session for ${entry.name}`);
    return s;
  }

  for (const entry of CATALOG) {
    it(`${entry.name}: batches of 1, 7 and 64 give finite, varying outputs equal to per-row runs`, async () => {
      const { dynamic, fixed } = sessionsOf(entry);
      const expected = EXPECTED_INFO[entry.name as keyof typeof EXPECTED_INFO];
      for (const batch of [1, 7, 64]) {
        const inputs = entry.sampleInputs(batch, batch);
        const out = await run(dynamic, inputs);
        for (const spec of expected.outputs) {
          const data = out[spec.name];
          if (data === undefined) throw new Error(`missing output ${spec.name}`);
          expect(data.length).toBe(batch * spec.shape.slice(1).reduce<number>((n, d) => n * sampleDim(d), 1));
          expect(data.every(Number.isFinite)).toBe(true);
          // Not constant: activations were scaled to stay alive through the network.
          let lo = Infinity;
          let hi = -Infinity;
          for (const v of data) {
            lo = Math.min(lo, v);
            hi = Math.max(hi, v);
          }
          expect(hi - lo).toBeGreaterThan(0.1);
          expect(Math.max(hi, -lo)).toBeLessThan(100);
        }
        for (let i = 0; i < batch; i++) {
          const single = await run(dynamic, row(inputs, i));
          const singleFixed = await run(fixed, row(inputs, i));
          for (const spec of expected.outputs) {
            const full = out[spec.name] as Float32Array;
            const per = full.length / batch;
            const slice = full.subarray(i * per, (i + 1) * per);
            expect(maxAbsDiff(slice, single[spec.name] as Float32Array)).toBeLessThanOrEqual(1e-5);
            expect(maxAbsDiff(slice, singleFixed[spec.name] as Float32Array)).toBeLessThanOrEqual(1e-5);
          }
        }
        if (batch > 1) {
          // Different rows give different answers (the model actually looks at its input).
          const first = expected.outputs[0];
          const full = out[first.name] as Float32Array;
          const per = full.length / batch;
          expect(maxAbsDiff(full.subarray(0, per), full.subarray(per, 2 * per))).toBeGreaterThan(1e-3);
        }
      }
    });
  }

  it("transformer: padded tokens do not change the embeddings of attended ones", async () => {
    const { dynamic } = sessionsOf(catalogModel("transformer"));
    const inputs = catalogModel("transformer").sampleInputs(1, 5);
    const ids = inputs.input_ids?.data as BigInt64Array;
    const mask = inputs.attention_mask?.data as BigInt64Array;
    mask.fill(1n, 0, 8).fill(0n, 8);
    const a = await run(dynamic, inputs);
    ids.fill(999n, 8); // change only the padded tokens
    const b = await run(dynamic, inputs);
    const ea = a.embeddings as Float32Array;
    const eb = b.embeddings as Float32Array;
    // Attended positions (first 8 tokens × 64) are unaffected by what the padding holds.
    expect(maxAbsDiff(ea.subarray(0, 8 * 64), eb.subarray(0, 8 * 64))).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(ea.subarray(8 * 64), eb.subarray(8 * 64))).toBeGreaterThan(1e-3);
  });
});
