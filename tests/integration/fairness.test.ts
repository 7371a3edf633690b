/**
 * Several jobs share one pool: two equal jobs progress at similar rates, and a cancelled job
 * stops taking the pool's time at once (its late results are dropped, never written).
 */
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CoordinatorClient, type JobView } from "../../coordinator/client/client.js";
import { catalogModel } from "../../shared/onnx/catalog.js";
import { writeNpyFile } from "../../shared/node/npy-file.js";
import { seededNormal } from "../../shared/onnx/builder.js";
import { type Proc, startCoordinator, startWorker, tempDir } from "../../harness/procs.js";

const procs: Proc[] = [];
let tmp: Awaited<ReturnType<typeof tempDir>> | undefined;
afterAll(async () => {
  for (const p of procs.reverse()) await p.stop();
  await tmp?.remove();
});

describe("several jobs at once", () => {
  it("share the pool fairly, and a cancelled job releases it", async () => {
    tmp = await tempDir("fair");
    const { proc: coordinator, url } = await startCoordinator(["--port", "0", "--data-dir", path.join(tmp.dir, "c")]);
    procs.push(coordinator);
    for (const n of ["f1", "f2"]) procs.push(await startWorker(coordinator, url, n, path.join(tmp.dir, n), ["--max-cpu", "20"]));

    const rows = 20_000;
    const file = path.join(tmp.dir, "x.npy");
    await writeNpyFile(file, { dtype: "float32", dims: [rows, 64], data: seededNormal(2, rows * 64, 1) });
    const client = new CoordinatorClient(url);
    const model = await client.uploadModel(catalogModel("wide-mlp").build());
    const create = async () => client.createJob({ model: model.sha256, inputs: { x: (await client.uploadNpy(file)).id }, shardSize: 100 });
    const [a, b] = [await create(), await create()];

    let ja: JobView;
    let jb: JobView;
    for (;;) {
      [ja, jb] = [await client.job(a.id), await client.job(b.id)];
      if (ja.progress >= 0.4 || jb.progress >= 0.4) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    // Round-robin dispatch: neither job is more than a few shards ahead of the other.
    expect(Math.abs(ja.progress - jb.progress)).toBeLessThan(0.1);

    const cancelled = await client.cancel(b.id);
    expect(cancelled.state).toBe("cancelled");
    const doneAtCancel = cancelled.samplesDone;
    const finished = await client.waitForJob(a.id);
    expect(finished.state).toBe("done");
    const after = await client.job(b.id);
    expect(after.state).toBe("cancelled");
    // Results of shards that were running when it was cancelled are dropped, not counted.
    expect(after.samplesDone).toBe(doneAtCancel);
    const s = await client.status();
    expect(s.throughput.totalSamples).toBe(rows + doneAtCancel);
    expect(s.workers.every((w) => w.inflight === 0)).toBe(true);
    const outputs = await fetch(`${url}/api/jobs/${b.id}/outputs/logits`);
    expect(outputs.status).toBe(409);
  }, 120_000);
});
