/**
 * Jobs in one request: POST /api/jobs with a frame body (settings in the header, inputs as its
 * tensors) and ?wait. The answer carries the outputs, in row order, equal to a local run; the
 * job is also an ordinary job afterwards (its record ends done, its outputs download). Bad
 * frames and bad inputs get a 400 that says what is wrong, and the coordinator carries on.
 */
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoordinatorClient } from "../../coordinator/client/client.js";
import { catalogModel } from "../../shared/onnx/catalog.js";
import { FRAME_MEDIA_TYPE, encodeFrame, type NamedTensor } from "../../shared/protocol/frame.js";
import { readNpyFile } from "../../shared/node/npy-file.js";
import { seededNormal } from "../../shared/onnx/builder.js";
import { maxAbsDiff } from "../../shared/tensor/tensor-ops.js";
import type { Tensor } from "../../shared/tensor/tensor.js";
import { runLocally } from "../../worker/local-run.js";
import { errorOf } from "../harness/errors.js";
import { startCoordinator, startPool, startProc, startWorker, tempDir, waitForEvent } from "../../harness/procs.js";

let tmp: Awaited<ReturnType<typeof tempDir>>;
let pool: Awaited<ReturnType<typeof startPool>>;
let client: CoordinatorClient;
let model: string;
const mlp = catalogModel("mlp").build();

function rowsOf(n: number, seed: number): Tensor {
  return { dtype: "float32", dims: [n, 256], data: seededNormal(seed, n * 256, 1) };
}

async function expected(x: Tensor): Promise<Tensor> {
  return (await runLocally(mlp, "x", x, { chunk: 64, threads: 1 })).out;
}

beforeAll(async () => {
  tmp = await tempDir("inline");
  pool = await startPool(2, tmp.dir);
  client = new CoordinatorClient(pool.url);
  model = (await client.uploadModel(mlp)).sha256;
});

afterAll(async () => {
  await pool?.stop();
  await tmp?.remove();
});

describe("an inline job", () => {
  it("answers its outputs in the same request, equal to a local run", async () => {
    const x = rowsOf(3, 31);
    const { job, outputs } = await client.createInlineJob({ model }, [{ name: "x", ...x }], 30_000);
    expect(job.state).toBe("done");
    expect(job.samplesDone).toBe(3);
    expect(outputs).not.toBeNull();
    expect(outputs!.map((o) => o.name)).toEqual(["logits"]);
    expect(outputs![0]!.dims).toEqual([3, 10]);
    expect(maxAbsDiff(outputs![0]!, await expected(x))).toBeLessThan(1e-5);

    // It is an ordinary job too: its record ends done and its output file holds the same rows.
    const stored = await client.waitForJob(job.id, { intervalMs: 5000 });
    expect(stored.state).toBe("done");
    const file = path.join(tmp.dir, "inline-out.npy");
    await client.downloadOutput(job.id, "logits", file);
    expect(maxAbsDiff(await readNpyFile(file), outputs![0]!)).toBe(0);
  });

  it("puts the rows of many shards back in order", async () => {
    const x = rowsOf(37, 32);
    const { job, outputs } = await client.createInlineJob({ model, shardSize: 4 }, [{ name: "x", ...x }], 30_000);
    expect(job.shards).toBe(10);
    expect(outputs![0]!.dims).toEqual([37, 10]);
    expect(maxAbsDiff(outputs![0]!, await expected(x))).toBeLessThan(1e-5);
  });

  it("without ?wait answers the created job, whose outputs are downloaded once done", async () => {
    const x = rowsOf(5, 33);
    const { job, outputs } = await client.createInlineJob({ model }, [{ name: "x", ...x }]);
    expect(outputs).toBeNull();
    expect(job.rows).toBe(5);
    expect((await client.waitForJob(job.id, { intervalMs: 5000 })).state).toBe("done");
    const file = path.join(tmp.dir, "later.npy");
    await client.downloadOutput(job.id, "logits", file);
    expect(maxAbsDiff(await readNpyFile(file), await expected(x))).toBeLessThan(1e-5);
  });

  it("refuses wrong inputs and settings with a reason", async () => {
    const wrongName = await errorOf(client.createInlineJob({ model }, [{ name: "y", ...rowsOf(2, 34) }], 5000));
    expect(wrongName.code).toBe("E_BAD_REQUEST");
    expect(wrongName.message).toContain("no input named 'y'");

    const wrongShape: NamedTensor = { name: "x", dtype: "float32", dims: [2, 128], data: new Float32Array(256) };
    const shape = await errorOf(client.createInlineJob({ model }, [wrongShape], 5000));
    expect(shape.code).toBe("E_SHAPE");

    const noModel = await errorOf(client.createInlineJob({ model: "0".repeat(64) }, [{ name: "x", ...rowsOf(1, 35) }], 5000));
    expect(noModel.code).toBe("E_NOT_FOUND");
    expect(noModel.message).toContain("upload it first");
  });

  it("refuses a body that is not a frame, or a header with unknown settings", async () => {
    const post = (body: Uint8Array) =>
      fetch(`${pool.url}/api/jobs?wait=1000`, { method: "POST", body: Buffer.from(body), headers: { "content-type": FRAME_MEDIA_TYPE } });
    const garbage = await post(new TextEncoder().encode("not a frame at all"));
    expect(garbage.status).toBe(400);
    expect(((await garbage.json()) as { error: { message: string } }).error.message).toContain("not an edgepool frame");

    const unknown = await post(encodeFrame({ model, shardsize: 3 }, [{ name: "x", ...rowsOf(1, 36) }]));
    expect(unknown.status).toBe(400);
    expect(((await unknown.json()) as { error: { message: string } }).error.message).toContain("invalid inline job header");

    // The coordinator is still there and still right.
    const x = rowsOf(2, 37);
    const { outputs } = await client.createInlineJob({ model }, [{ name: "x", ...x }], 30_000);
    expect(maxAbsDiff(outputs![0]!, await expected(x))).toBeLessThan(1e-5);
  });

  it("survives a coordinator killed before any worker ran it: the restart resumes it from its files", async () => {
    const dataDir = path.join(tmp.dir, "restart");
    const { proc: first, url, listening } = await startCoordinator(["--port", "0", "--data-dir", dataDir]);
    expect(listening.resumedJobs).toBe(0);
    const c1 = new CoordinatorClient(url);
    const m = (await c1.uploadModel(mlp)).sha256;
    const x = rowsOf(9, 38);
    // No worker yet, no wait: answered once its inputs are on disk.
    const { job } = await c1.createInlineJob({ model: m, shardSize: 2 }, [{ name: "x", ...x }]);
    expect(job.state).toBe("queued");
    first.child.kill("SIGKILL");
    await new Promise((r) => first.child.once("exit", r));

    const second = startProc(["coordinator", "--port", new URL(url).port, "--data-dir", dataDir]);
    try {
      expect((await waitForEvent(second, "coordinatorListening")).resumedJobs).toBe(1);
      const w = await startWorker(second, url, "late", path.join(tmp.dir, "late"));
      try {
        const done = await c1.waitForJob(job.id, { intervalMs: 5000 });
        expect(done.state).toBe("done");
        const file = path.join(tmp.dir, "resumed.npy");
        await c1.downloadOutput(job.id, "logits", file);
        expect(maxAbsDiff(await readNpyFile(file), await expected(x))).toBeLessThan(1e-5);
      } finally {
        await w.stop();
      }
    } finally {
      await second.stop();
    }
  }, 60_000);
});
