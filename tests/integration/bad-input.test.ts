/**
 * Bad input gets a clear one-line error and a non-zero exit from `submit`, leaves no output
 * file behind, and the coordinator keeps serving other jobs.
 */
import { readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoordinatorClient } from "../../coordinator/client/client.js";
import { catalogModel } from "../../shared/onnx/catalog.js";
import { EdgepoolError } from "../../shared/errors.js";
import { writeNpyFile } from "../../shared/node/npy-file.js";
import { seededNormal } from "../../shared/onnx/builder.js";
import { runCli, startPool, tempDir } from "../../harness/procs.js";

let tmp: Awaited<ReturnType<typeof tempDir>>;
let pool: Awaited<ReturnType<typeof startPool>>;
const f = (name: string) => path.join(tmp.dir, name);

beforeAll(async () => {
  tmp = await tempDir("bad");
  pool = await startPool(1, tmp.dir);
  await writeNpyFile(f("x.npy"), { dtype: "float32", dims: [20, 256], data: seededNormal(1, 20 * 256, 1) });
  await writeNpyFile(f("x-wide.npy"), { dtype: "float32", dims: [20, 255], data: seededNormal(1, 20 * 255, 1) });
  await writeNpyFile(f("x-f64.npy"), { dtype: "float64", dims: [20, 256], data: new Float64Array(20 * 256) });
  await writeNpyFile(f("ids.npy"), { dtype: "int64", dims: [20, 16], data: new BigInt64Array(20 * 16) });
  await writeNpyFile(f("mask19.npy"), { dtype: "int64", dims: [19, 16], data: new BigInt64Array(19 * 16) });
  await writeFile(f("not.npy"), "this is a text file, not an array\n");
});

afterAll(async () => {
  await pool?.stop();
  await tmp?.remove();
});

async function expectRefused(args: string[], pattern: RegExp, outDir: string): Promise<void> {
  const r = await runCli(["submit", "--coordinator", pool?.url ?? "http://127.0.0.1:9", ...args, "--out", outDir]);
  expect(r.code).not.toBe(0);
  const lines = r.stderr.trim().split("\n");
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^edgepool submit: error: /);
  expect(lines[0]).toMatch(pattern);
  const left = await readdir(outDir).catch(() => []);
  expect(left).toEqual([]);
}

describe("submit refuses bad input with one clear line", () => {
  it("unknown model", () => expectRefused(["--model", "no-such-model", "--input", `x=${f("x.npy")}`], /unknown model 'no-such-model'.*edgepool models/, f("o1")));
  it("wrong input name", () => expectRefused(["--model", "mlp", "--input", `y=${f("x.npy")}`], /no input named 'y'; its inputs are: x/, f("o2")));
  it("wrong shape", () => expectRefused(["--model", "mlp", "--input", `x=${f("x-wide.npy")}`], /shape \[20,255\].*wants \[batch,256\]/, f("o3")));
  it("wrong dtype", () => expectRefused(["--model", "mlp", "--input", `x=${f("x-f64.npy")}`], /float64 but the model wants float32/, f("o4")));
  it("batch sizes that differ between inputs", () =>
    expectRefused(["--model", "transformer", "--input", `input_ids=${f("ids.npy")}`, "--input", `attention_mask=${f("mask19.npy")}`], /different batch sizes/, f("o5")));
  it("a file that is not .npy", () => expectRefused(["--model", "mlp", "--input", `x=${f("not.npy")}`], /not a NumPy \.npy file/, f("o6")));
  it("a missing input file", () => expectRefused(["--model", "mlp", "--input", `x=${f("missing.npy")}`], /does not exist/, f("o7")));
  it("an unreachable coordinator", async () => {
    const r = await runCli(["submit", "--coordinator", "http://127.0.0.1:9", "--model", "mlp", "--input", `x=${f("x.npy")}`, "--out", f("o8")]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/cannot reach the coordinator at http:\/\/127\.0\.0\.1:9/);
  });
  it("a bad flag", async () => {
    const r = await runCli(["submit", "--coordinator", pool.url, "--model", "mlp", "--input", `x=${f("x.npy")}`, "--out", f("o9"), "--shard-size", "zero"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/invalid --shard-size/);
  });

  it("the coordinator validates on its own: a job API call with a wrong input name is refused", async () => {
    const client = new CoordinatorClient(pool.url);
    const model = await client.uploadModel(catalogModel("mlp").build());
    const up = await client.uploadNpy(f("x.npy"));
    const err = await client.createJob({ model: model.sha256, inputs: { nope: up.id } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EdgepoolError);
    expect((err as EdgepoolError).code).toBe("E_BAD_REQUEST");
    const notNpy = await client.uploadNpy(f("not.npy")).catch((e: unknown) => e);
    expect((notNpy as EdgepoolError).code).toBe("E_NPY");
  });

  it("a second coordinator on the same data directory", async () => {
    const r = await runCli(["coordinator", "--port", "0", "--data-dir", f("coordinator")], 30_000);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/another coordinator is using .*edgepool\.sqlite; stop it, or give this one its own --data-dir/);
  });

  it("keeps serving: a good job after all of the above succeeds", async () => {
    const r = await runCli(["submit", "--coordinator", pool.url, "--model", "mlp", "--input", `x=${f("x.npy")}`, "--out", f("good")]);
    expect(r.code, r.stderr).toBe(0);
    expect(await readdir(f("good"))).toEqual(["logits.npy"]);
  });
});
