/**
 * Untrusted workers, end to end: four worker processes, one of which corrupts every result it
 * returns (EDGEPOOL_FAULT_INJECT=corrupt:1). A job submitted with --redundancy 2 still writes
 * the right outputs, and the liar ends up quarantined in status. With --canaries instead, a
 * new liar fails the canary row the coordinator computed itself, before it writes anything.
 */
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoordinatorClient } from "../../coordinator/client/client.js";
import { catalogModel } from "../../shared/onnx/catalog.js";
import { readNpyFile, writeNpyFile } from "../../shared/node/npy-file.js";
import { seededNormal } from "../../shared/onnx/builder.js";
import { maxAbsDiff } from "../../shared/tensor/tensor-ops.js";
import type { Tensor } from "../../shared/tensor/tensor.js";
import { runLocally } from "../../worker/local-run.js";
import { type Proc, runCli, startCoordinator, startProc, startWorker, tempDir, waitForEvent } from "../../harness/procs.js";

const ROWS = 1600;

let tmp: Awaited<ReturnType<typeof tempDir>>;
let coordinator: Proc;
let url: string;
const workers: Proc[] = [];

beforeAll(async () => {
  tmp = await tempDir("verify");
  ({ proc: coordinator, url } = await startCoordinator(["--port", "0", "--data-dir", path.join(tmp.dir, "c")]));
  for (const name of ["honest-1", "honest-2", "honest-3"]) workers.push(await startWorker(coordinator, url, name, path.join(tmp.dir, name)));
  const liar = startProc(["worker", "--coordinator", url.replace("http", "ws"), "--name", "liar", "--state-dir", path.join(tmp.dir, "liar"), "--log-level", "warn"], {
    EDGEPOOL_FAULT_INJECT: "corrupt:1",
  });
  workers.push(liar);
  await waitForEvent(coordinator, "workerJoined", (e) => e.name === "liar");
});

afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  await coordinator?.stop();
  await tmp?.remove();
});

describe("--redundancy 2 with a worker that corrupts every result", () => {
  it("writes correct outputs and quarantines the faulty worker", async () => {
    const x: Tensor = { dtype: "float32", dims: [ROWS, 256], data: seededNormal(21, ROWS * 256, 1) };
    const xFile = path.join(tmp.dir, "x.npy");
    await writeNpyFile(xFile, x);
    const out = path.join(tmp.dir, "out");
    const r = await runCli(["submit", "--coordinator", url, "--model", "mlp", "--input", `x=${xFile}`, "--out", out, "--shard-size", "40", "--redundancy", "2"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("each computed by 2 workers and compared");

    const got = await readNpyFile(path.join(out, "logits.npy"));
    const want = (await runLocally(catalogModel("mlp").build(), "x", x, { chunk: 400, threads: 1 })).out;
    expect(got.dims).toEqual([ROWS, 10]);
    expect(maxAbsDiff(got, want)).toBeLessThan(1e-4);

    const s = await new CoordinatorClient(url).status();
    const liar = s.workers.find((w) => w.name === "liar")!;
    expect(liar.quarantined).toBe(true);
    expect(liar.disagreements).toBeGreaterThanOrEqual(2);
    expect(liar.trust).toBeLessThan(0.5);
    for (const w of s.workers.filter((w) => w.name !== "liar")) {
      expect(w.quarantined, w.name).toBe(false);
      expect(w.disagreements, w.name).toBe(0);
    }
    expect(s.counters.verified).toBe(ROWS / 40);
    expect(s.counters.replicaMismatches).toBe(liar.disagreements);
    expect(s.counters.quarantined).toBe(1);
    // The pool's useful work counts each row once, however many workers computed it.
    expect(s.throughput.totalSamples).toBe(ROWS);
    expect(coordinator.stdout()).toMatch(/"worker":"liar"[^\n]*"msg":"worker quarantined"/);

    const table = await runCli(["status", "--coordinator", url]);
    expect(table.stdout).toMatch(/^liar\s.*QUARANTINED/m);

    // A quarantined worker gets nothing more: a second verified job runs on the three others.
    const liarBefore = liar.shardsDone;
    const r2 = await runCli(["submit", "--coordinator", url, "--model", "mlp", "--input", `x=${xFile}`, "--out", path.join(tmp.dir, "out2"), "--shard-size", "40", "--redundancy", "2"]);
    expect(r2.code, r2.stderr).toBe(0);
    expect(maxAbsDiff(await readNpyFile(path.join(tmp.dir, "out2", "logits.npy")), want)).toBeLessThan(1e-4);
    const after = await new CoordinatorClient(url).status();
    expect(after.workers.find((w) => w.name === "liar")!.shardsDone).toBe(liarBefore);
  });

  it("with --canaries and no redundancy, a new liar is caught by its canary before it writes a single row", async () => {
    const liar2 = startProc(["worker", "--coordinator", url.replace("http", "ws"), "--name", "liar-2", "--state-dir", path.join(tmp.dir, "liar-2"), "--log-level", "warn"], {
      EDGEPOOL_FAULT_INJECT: "corrupt:1",
    });
    workers.push(liar2);
    await waitForEvent(coordinator, "workerJoined", (e) => e.name === "liar-2");
    const x: Tensor = { dtype: "float32", dims: [ROWS, 256], data: seededNormal(22, ROWS * 256, 1) };
    const xFile = path.join(tmp.dir, "x-canary.npy");
    await writeNpyFile(xFile, x);
    const before = (await new CoordinatorClient(url).status()).counters;
    const r = await runCli(["submit", "--coordinator", url, "--model", "mlp", "--input", `x=${xFile}`, "--out", path.join(tmp.dir, "out-canary"), "--shard-size", "40", "--canaries", "3"]);
    expect(r.code, r.stderr).toBe(0);
    const want = (await runLocally(catalogModel("mlp").build(), "x", x, { chunk: 400, threads: 1 })).out;
    expect(maxAbsDiff(await readNpyFile(path.join(tmp.dir, "out-canary", "logits.npy")), want)).toBeLessThan(1e-4);

    // A new worker loads the model before it answers its canary; the honest three may finish
    // this small job first. Its real shards wait on that answer, so it still wrote nothing.
    const client = new CoordinatorClient(url);
    await waitForEvent(coordinator, "workerQuarantined", (e) => e.name === "liar-2", { timeoutMs: 15_000 });
    const s = await client.status();
    const caught = s.workers.find((w) => w.name === "liar-2")!;
    expect(caught.quarantined).toBe(true);
    expect(caught.shardsDone).toBe(0);
    expect(s.counters.canariesFailed! - (before.canariesFailed ?? 0)).toBe(1);
    // The three honest workers each got a canary at once and pass it (a slow one may answer
    // after the others have finished the job).
    await expect.poll(async () => ((await client.status()).counters.canariesPassed ?? 0) - (before.canariesPassed ?? 0), { timeout: 15_000 }).toBe(3);
    expect(coordinator.stdout()).toMatch(/"worker":"liar-2"[^\n]*"msg":"worker answered a canary shard wrongly"/);
  });
});
