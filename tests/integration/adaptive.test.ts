/**
 * Heterogeneous pools are the normal case: a worker capped at 25% CPU beside an uncapped
 * one. Shard sizes must follow each worker's measured speed, and the slow worker must not
 * hold the job: it ends no later than the fast worker alone would take, plus a small tail.
 */
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CoordinatorClient } from "../../coordinator/client/client.js";
import { submitJob } from "../../coordinator/client/submit-job.js";
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

describe("adaptive shard sizes", () => {
  it("give a 25%-CPU worker smaller shards and finish within the fast worker's time plus a tail", async () => {
    tmp = await tempDir("adaptive");
    const { proc: coordinator, url } = await startCoordinator(["--port", "0", "--data-dir", path.join(tmp.dir, "c"), "--shard-ms", "300"]);
    procs.push(coordinator);
    procs.push(await startWorker(coordinator, url, "fast", path.join(tmp.dir, "fast")));
    procs.push(await startWorker(coordinator, url, "slow", path.join(tmp.dir, "slow"), ["--max-cpu", "25"]));

    const rows = 96_000;
    const file = path.join(tmp.dir, "x.npy");
    await writeNpyFile(file, { dtype: "float32", dims: [rows, 64], data: seededNormal(8, rows * 64, 1) });
    const client = new CoordinatorClient(url);
    const { job } = await submitJob(client, { model: catalogModel("wide-mlp").build(), inputs: { x: file }, outDir: path.join(tmp.dir, "out") });
    expect(job.state).toBe("done");
    expect(job.shardSize).toBeNull();

    const s = await client.status();
    const fast = s.workers.find((w) => w.name === "fast")!;
    const slow = s.workers.find((w) => w.name === "slow")!;
    expect(slow.maxCpu).toBe(25);
    expect(fast.shardsDone).toBeGreaterThan(0);
    expect(slow.shardsDone).toBeGreaterThan(0);
    // Sizes follow speed: the uncapped worker's shards are larger. Its steady shards are about
    // four times the capped one's, but its mean also counts the small first shards and the
    // tail (measured means: 1.85 to 2.4 times), so the bound is 1.5: equal sizes fail it.
    expect(fast.meanShardRows).toBeGreaterThan(1.5 * slow.meanShardRows);
    expect(fast.samplesDone).toBeGreaterThan(2 * slow.samplesDone);

    const wallSec = (job.finishedAt! - job.startedAt!) / 1000;
    const fastAloneSec = rows / fast.samplesPerSec;
    const tailSec = 1.0;
    expect(wallSec).toBeLessThanOrEqual(fastAloneSec + tailSec);
  }, 120_000);
});
