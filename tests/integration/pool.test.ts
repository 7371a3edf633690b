/**
 * End to end through real processes: a coordinator and three workers on loopback, jobs
 * submitted with the CLI, outputs compared with a single-process ONNX Runtime run.
 */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { CoordinatorClient } from "../../coordinator/client/client.js";
import { catalogModel } from "../../shared/onnx/catalog.js";
import { readNpyFile, writeNpyFile } from "../../shared/node/npy-file.js";
import { seededNormal } from "../../shared/onnx/builder.js";
import { maxAbsDiff } from "../../shared/tensor/tensor-ops.js";
import type { Tensor } from "../../shared/tensor/tensor.js";
import { runCli, startPool, tempDir } from "../../harness/procs.js";

/** The periodic summary line (observe/status.ts): an info line, not an event. */
const PoolThroughputLineSchema = z.object({
  msg: z.literal("pool throughput"),
  workers: z.number(),
  busyWorkers: z.number(),
  shardsPerSec: z.number(),
  samplesPerSec: z.number(),
  gflopsPerSec: z.number(),
});

let tmp: Awaited<ReturnType<typeof tempDir>>;
let pool: Awaited<ReturnType<typeof startPool>>;

beforeAll(async () => {
  tmp = await tempDir("pool");
  pool = await startPool(3, tmp.dir, ["--stats-interval", "300"]);
});

afterAll(async () => {
  await pool?.stop();
  await tmp?.remove();
});

async function localRun(model: Uint8Array, feeds: Record<string, Tensor>): Promise<Record<string, Tensor>> {
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1 });
  const ortFeeds: Record<string, ort.Tensor> = {};
  for (const [k, t] of Object.entries(feeds)) ortFeeds[k] = new ort.Tensor(t.dtype as "float32", t.data as Float32Array, t.dims);
  const res = await session.run(ortFeeds);
  await session.release();
  const out: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(res)) out[k] = { dtype: "float32", dims: [...v.dims], data: v.data as Float32Array };
  return out;
}

describe("a pool of three worker processes", () => {
  it("runs 1,200 mlp samples in 24 shards with outputs equal to a local run, rows in order", async () => {
    const x: Tensor = { dtype: "float32", dims: [1200, 256], data: seededNormal(11, 1200 * 256, 1) };
    await writeNpyFile(path.join(tmp.dir, "x.npy"), x);
    const out = path.join(tmp.dir, "out-mlp");
    const r = await runCli(["submit", "--coordinator", pool.url, "--model", "mlp", "--input", `x=${path.join(tmp.dir, "x.npy")}`, "--out", out, "--shard-size", "50"]);
    expect(r.stderr).toContain("1200 samples, 24 shards of 50 rows");
    expect(r.code).toBe(0);
    const got = await readNpyFile(path.join(out, "logits.npy"));
    const want = await localRun(catalogModel("mlp").build(), { x });
    expect(got.dims).toEqual([1200, 10]);
    expect(maxAbsDiff(got, want.logits!)).toBeLessThanOrEqual(1e-5);

    const status = await new CoordinatorClient(pool.url).status();
    expect(status.workers).toHaveLength(3);
    const shards = status.workers.map((w) => w.shardsDone);
    expect(shards.reduce((a, b) => a + b, 0)).toBe(24);
    expect(shards.filter((s) => s > 0).length).toBeGreaterThanOrEqual(2);
    const job = status.jobs.find((j) => j.rows === 1200)!;
    expect(job.state).toBe("done");
    expect(job.shardsDone).toBe(24);
  });

  it("logs pooled throughput while work runs", async () => {
    const entry = await pool.coordinator.waitForJson((line) => {
      const r = PoolThroughputLineSchema.safeParse(line);
      return r.success && r.data.samplesPerSec > 0 ? r.data : undefined;
    }, "a pool throughput line with samples");
    expect(entry.workers).toBe(3);
    expect(entry.samplesPerSec).toBeGreaterThan(0);
    expect(entry.gflopsPerSec).toBeGreaterThan(0);
    expect(entry).toHaveProperty("busyWorkers");
    expect(entry).toHaveProperty("shardsPerSec");
  });

  it("runs a two-input int64 transformer and returns both outputs", async () => {
    const n = 300;
    const ids = new BigInt64Array(n * 16);
    const mask = new BigInt64Array(n * 16);
    for (let i = 0; i < ids.length; i++) {
      ids[i] = BigInt((i * 7919) % 1000);
      mask[i] = i % 16 < 12 + (Math.floor(i / 16) % 4) ? 1n : 0n;
    }
    const idsT: Tensor = { dtype: "int64", dims: [n, 16], data: ids };
    const maskT: Tensor = { dtype: "int64", dims: [n, 16], data: mask };
    await writeNpyFile(path.join(tmp.dir, "ids.npy"), idsT);
    await writeNpyFile(path.join(tmp.dir, "mask.npy"), maskT);
    const out = path.join(tmp.dir, "out-tf");
    const r = await runCli([
      "submit", "--coordinator", pool.url, "--model", "transformer",
      "--input", `input_ids=${path.join(tmp.dir, "ids.npy")}`, "--input", `attention_mask=${path.join(tmp.dir, "mask.npy")}`,
      "--out", out, "--shard-size", "32",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const session = await ort.InferenceSession.create(catalogModel("transformer").build());
    const want = await session.run({ input_ids: new ort.Tensor("int64", ids, [n, 16]), attention_mask: new ort.Tensor("int64", mask, [n, 16]) });
    await session.release();
    const emb = await readNpyFile(path.join(out, "embeddings.npy"));
    const pooled = await readNpyFile(path.join(out, "pooled.npy"));
    expect(emb.dims).toEqual([n, 16, 64]);
    expect(pooled.dims).toEqual([n, 64]);
    expect(maxAbsDiff(emb, { dtype: "float32", dims: [...want.embeddings!.dims], data: want.embeddings!.data as Float32Array })).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(pooled, { dtype: "float32", dims: [...want.pooled!.dims], data: want.pooled!.data as Float32Array })).toBeLessThanOrEqual(1e-5);
  });

  it("runs a model with a fixed batch of 1 on a batch of 8", async () => {
    const fixed = catalogModel("mlp").build({ batch: 1 });
    const modelFile = path.join(tmp.dir, "mlp-b1.onnx");
    await writeFile(modelFile, fixed);
    const x: Tensor = { dtype: "float32", dims: [8, 256], data: seededNormal(3, 8 * 256, 1) };
    await writeNpyFile(path.join(tmp.dir, "x8.npy"), x);
    const out = path.join(tmp.dir, "out-b1");
    const r = await runCli(["submit", "--coordinator", pool.url, "--model", modelFile, "--input", `x=${path.join(tmp.dir, "x8.npy")}`, "--out", out, "--shard-size", "3"]);
    expect(r.code, r.stderr).toBe(0);
    const got = await readNpyFile(path.join(out, "logits.npy"));
    const want = await localRun(catalogModel("mlp").build(), { x });
    expect(got.dims).toEqual([8, 10]);
    expect(maxAbsDiff(got, want.logits!)).toBeLessThanOrEqual(1e-5);
  });
});
