import { createHash } from "node:crypto";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { catalogModel } from "../../shared/onnx/catalog.js";
import { EdgepoolError } from "../../shared/errors.js";
import type { NamedTensor } from "../../shared/protocol/frame.js";
import { maxAbsDiff, sliceRows } from "../../shared/tensor/tensor-ops.js";
import type { Tensor } from "../../shared/tensor/tensor.js";
import { parseResultFrame } from "../../shared/protocol/messages.js";
import { Runner } from "../../worker/runner.js";
import { computeShard, computeShards } from "../../worker/shard-exec.js";

const log = pino({ level: "silent" });
const runners: Runner[] = [];

function sha(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

async function loaded(bytes: Uint8Array): Promise<{ runner: Runner; sha256: string }> {
  const runner = new Runner({ threads: 1, log });
  runners.push(runner);
  const sha256 = sha(bytes);
  await runner.load(sha256, async () => bytes);
  return { runner, sha256 };
}

function named(inputs: Record<string, Tensor>): NamedTensor[] {
  return Object.entries(inputs).map(([name, t]) => ({ name, ...t }));
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(EdgepoolError);
    return (err as EdgepoolError).code;
  }
  throw new Error("expected the run to fail");
}

afterEach(async () => {
  await Promise.all(runners.splice(0).map((r) => r.close()));
});

describe("Runner", () => {
  it("runs the mlp: logits [batch,10], deterministic and row-independent", async () => {
    const mlp = catalogModel("mlp");
    const { runner, sha256 } = await loaded(mlp.build());
    const x = mlp.sampleInputs(5, 7).x!;
    const [logits, ...rest] = await runner.run(sha256, named({ x }), 5);
    expect(rest).toHaveLength(0);
    expect(logits!.name).toBe("logits");
    expect(logits!.dtype).toBe("float32");
    expect(logits!.dims).toEqual([5, 10]);
    expect([...logits!.data].every((v) => Number.isFinite(Number(v)))).toBe(true);
    // Rows 2..4 alone, fed as a zero-copy view with a non-zero byte offset, give the same rows.
    const [part] = await runner.run(sha256, [{ name: "x", ...sliceRows(x, 2, 5) }], 3);
    expect(maxAbsDiff(part!, sliceRows(logits!, 2, 5))).toBeLessThan(1e-5);
    // Different inputs give different outputs: the model is not a constant.
    const [other] = await runner.run(sha256, named(mlp.sampleInputs(5, 8)), 5);
    expect(maxAbsDiff(other!, logits!)).toBeGreaterThan(1e-3);
  });

  it("runs the transformer with int64 inputs and returns both outputs in model order", async () => {
    const tf = catalogModel("transformer");
    const { runner, sha256 } = await loaded(tf.build());
    const inputs = tf.sampleInputs(4, 3);
    const outs = await runner.run(sha256, named(inputs), 4);
    expect(outs.map((o) => o.name)).toEqual(["embeddings", "pooled"]);
    expect(outs[0]!.dims).toEqual([4, 16, 64]);
    expect(outs[1]!.dims).toEqual([4, 64]);
    expect(outs[0]!.data).toBeInstanceOf(Float32Array);
    // Row 1 on its own matches row 1 of the batch.
    const one = await runner.run(
      sha256,
      named({ input_ids: sliceRows(inputs.input_ids!, 1, 2), attention_mask: sliceRows(inputs.attention_mask!, 1, 2) }),
      1,
    );
    expect(maxAbsDiff(one[1]!, sliceRows(outs[1]!, 1, 2))).toBeLessThan(1e-5);
  });

  it("runs a fixed-batch-1 model row by row, matching per-row runs of the dynamic model", async () => {
    const mlp = catalogModel("mlp");
    const fixed = await loaded(mlp.build({ batch: 1 }));
    const dynamic = await loaded(mlp.build());
    expect(fixed.runner.info(fixed.sha256)?.fixedBatch).toBe(true);
    const x = mlp.sampleInputs(8, 11).x!;
    const [batched] = await fixed.runner.run(fixed.sha256, named({ x }), 8);
    expect(batched!.dims).toEqual([8, 10]);
    for (let r = 0; r < 8; r++) {
      const [row] = await dynamic.runner.run(dynamic.sha256, [{ name: "x", ...sliceRows(x, r, r + 1) }], 1);
      expect(maxAbsDiff(sliceRows(batched!, r, r + 1), row!)).toBeLessThan(1e-5);
    }
    // Rows differ from each other, so a run that repeated row 0 would have failed above.
    expect(maxAbsDiff(sliceRows(batched!, 0, 1), sliceRows(batched!, 7, 8))).toBeGreaterThan(1e-3);
  });

  it("writes outputs into the buffers the caller supplies", async () => {
    const mlp = catalogModel("mlp");
    const { runner, sha256 } = await loaded(mlp.build({ batch: 1 }));
    const backing = new ArrayBuffer(8 + 3 * 10 * 4);
    const [out] = await runner.run(sha256, named(mlp.sampleInputs(3)), 3, (specs) => {
      expect(specs).toEqual([{ name: "logits", dtype: "float32", dims: [3, 10] }]);
      return [new Uint8Array(backing, 8, 3 * 10 * 4)];
    });
    expect(out!.data.buffer).toBe(backing);
    expect(new Float32Array(backing, 8, 30)).toEqual(out!.data);
    expect(new Float32Array(backing, 8, 30).some((v) => v !== 0)).toBe(true);
  });

  it("rejects a wrong input name, wrong dims, wrong dtype and a row count mismatch", async () => {
    const mlp = catalogModel("mlp");
    const { runner, sha256 } = await loaded(mlp.build());
    const x = mlp.sampleInputs(2).x!;
    expect(await codeOf(runner.run(sha256, [{ name: "input", ...x }], 2))).toBe("E_BAD_REQUEST");
    const narrow: NamedTensor = { name: "x", dtype: "float32", dims: [2, 128], data: new Float32Array(256) };
    const err = await runner.run(sha256, [narrow], 2).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EdgepoolError);
    expect((err as EdgepoolError).code).toBe("E_SHAPE");
    expect((err as EdgepoolError).message).toContain("'x'");
    expect((err as EdgepoolError).message).toContain("[2,128]");
    expect((err as EdgepoolError).message).toContain("256]");
    const f64: NamedTensor = { name: "x", dtype: "float64", dims: [2, 256], data: new Float64Array(512) };
    expect(await codeOf(runner.run(sha256, [f64], 2))).toBe("E_DTYPE");
    expect(await codeOf(runner.run(sha256, [{ name: "x", ...x }], 3))).toBe("E_SHAPE");
    // A failed run leaves the session usable.
    const [ok] = await runner.run(sha256, [{ name: "x", ...x }], 2);
    expect(ok!.dims).toEqual([2, 10]);
  });

  it("reports a model that cannot be loaded and a run on a model never loaded", async () => {
    const runner = new Runner({ threads: 1, log });
    runners.push(runner);
    const junk = new Uint8Array([1, 2, 3, 4, 5]);
    expect(await codeOf(runner.load(sha(junk), async () => junk))).toMatch(/^E_MODEL_(INVALID|LOAD)$/);
    expect(await codeOf(runner.run("0".repeat(64), [], 1))).toBe("E_STATE");
  });
});

describe("small shards run together (computeShards)", () => {
  it("answers each shard exactly as it would be answered alone", async () => {
    const bytes = catalogModel("mlp").build();
    const { runner, sha256 } = await loaded(bytes);
    const rows = [1, 3, 2];
    const headers = rows.map((n, k) => ({ type: "shard" as const, shardId: `j.${k}.1`, jobId: "j", model: sha256, start: k * 10, end: k * 10 + n }));
    const inputs = rows.map((n, k) => named({ x: { dtype: "float32", dims: [n, 256], data: new Float32Array(n * 256).map((_, i) => Math.sin(i + k)) } }));
    const together = await computeShards(runner, headers, inputs);
    expect(together).toHaveLength(3);
    for (const [k, result] of together.entries()) {
      const alone = await computeShard(runner, headers[k]!, inputs[k]!);
      const a = parseResultFrame(result.frame);
      const b = parseResultFrame(alone.frame);
      expect(a.header.shardId).toBe(headers[k]!.shardId);
      expect(a.tensors[0]!.dims).toEqual([rows[k], 10]);
      expect(maxAbsDiff(a.tensors[0]!, b.tensors[0]!)).toBeLessThan(1e-6);
      expect(result.computeMs).toBeGreaterThanOrEqual(0);
    }
  });
});
