/**
 * A real coordinator process and an in-process swarm of 500 simulated workers over real
 * sockets: they join as virtual workers, run a job to completion with zero outputs of the
 * model's shapes, and leave when the swarm closes.
 */
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoordinatorClient } from "../../coordinator/client/client.js";
import { submitJob } from "../../coordinator/client/submit-job.js";
import { catalogModel } from "../../shared/onnx/catalog.js";
import { createLogger } from "../../shared/node/logger.js";
import { readNpyFile, writeNpyFile } from "../../shared/node/npy-file.js";
import { Swarm, parseSwarmConfig } from "../../worker/swarm/swarm.js";
import { assignTiers, parseProfileMix } from "../../worker/swarm/profiles.js";
import { startCoordinator, tempDir, waitForEvent, type Proc } from "../../harness/procs.js";

const COUNT = 500;
const ROWS = 3000;

let tmp: Awaited<ReturnType<typeof tempDir>>;
let coordinator: Proc;
let url: string;
let swarm: Swarm | undefined;

beforeAll(async () => {
  tmp = await tempDir("swarm");
  // At info: the coordinator's worker events are what the test waits on.
  ({ proc: coordinator, url } = await startCoordinator(["--port", "0", "--data-dir", path.join(tmp.dir, "coordinator"), "--log-level", "info"]));
});

afterAll(async () => {
  await swarm?.close();
  await coordinator?.stop();
  await tmp?.remove();
});

describe("profiles", () => {
  it("refuses an unknown tier with E_CONFIG naming the valid ones", () => {
    expect(() => parseProfileMix("flagship:0.5,potato:0.5")).toThrow(/unknown device tier 'potato'; valid tiers: flagship, mid, low/);
    try {
      parseSwarmConfig({ coordinator: "ws://127.0.0.1:1", count: 1, profile: "potato" });
      expect.unreachable();
    } catch (e) {
      expect((e as { code?: string }).code).toBe("E_CONFIG");
      expect((e as Error).message).toMatch(/--profile/);
    }
  });

  it("splits a mix by its normalised weights", () => {
    const mix = parseProfileMix("flagship:2, mid:4.5, low:3.5");
    expect(mix.map((m) => [m.tier, m.share])).toEqual([
      ["flagship", 0.2],
      ["mid", 0.45],
      ["low", 0.35],
    ]);
    const tiers = assignTiers(mix, 1000);
    expect(tiers.filter((t) => t === "flagship")).toHaveLength(200);
    expect(tiers.filter((t) => t === "mid")).toHaveLength(450);
    expect(tiers.filter((t) => t === "low")).toHaveLength(350);
    // Interleaved: the first 100 already hold about the whole mix.
    expect(tiers.slice(0, 100).filter((t) => t === "flagship").length).toBe(20);
  });
});

describe("a swarm of 500 virtual workers", () => {
  it("joins as virtual workers, runs a job to completion with zero outputs, and leaves on close", async () => {
    const client = new CoordinatorClient(url);
    const config = parseSwarmConfig({ coordinator: url, count: COUNT, profile: "flagship:0.2,mid:0.45,low:0.35", jitter: 0.2 });
    swarm = new Swarm(config, createLogger({ name: "swarm", level: "warn", stderr: true }));
    const connected = swarm.whenAllConnected(30_000);
    swarm.start();
    await connected;
    expect(swarm.stats.connected).toBe(COUNT);

    // The coordinator has every one once it has logged their joins (a swarm counts its sockets open at welcome).
    await waitForEvent(coordinator, "workerJoined", (e) => e.platform === "virtual", { nth: COUNT, timeoutMs: 20_000 });
    const joined = await client.status();
    expect(joined.workers).toHaveLength(COUNT);
    expect(joined.workers.every((w) => w.virtual)).toBe(true);
    expect(new Set(joined.workers.map((w) => w.id)).size).toBe(COUNT);
    expect(joined.workers.filter((w) => w.name.startsWith("virtual-mid-"))).toHaveLength(225);
    expect(joined.workers.every((w) => w.platform === "virtual" && w.slots === 1 && w.threads === 1 && w.cpus === 1)).toBe(true);

    const entry = catalogModel("mlp");
    const xFile = path.join(tmp.dir, "x.npy");
    await writeNpyFile(xFile, entry.sampleInputs(ROWS).x!);
    const { job, files } = await submitJob(client, { model: entry.build(), inputs: { x: xFile }, outDir: path.join(tmp.dir, "out"), shardSize: 20 });
    expect(job.state).toBe("done");
    expect(job.samplesDone).toBe(ROWS);
    expect(job.shards).toBe(ROWS / 20);

    const logits = await readNpyFile(files.logits!);
    expect(logits.dims).toEqual([ROWS, 10]);
    expect(logits.dtype).toBe("float32");
    expect((logits.data as Float32Array).every((v) => v === 0)).toBe(true);

    const after = await client.status();
    const done = after.jobs.find((j) => j.id === job.id)!;
    expect(done.samplesDone).toBe(ROWS);
    expect(after.virtualThroughput.totalSamples).toBe(ROWS);
    expect(after.throughput.totalSamples).toBe(0);
    expect(after.workers.reduce((s, w) => s + w.samplesDone, 0)).toBe(ROWS);
    expect(after.workers.filter((w) => w.shardsDone > 0).length).toBeGreaterThan(50);
    expect(swarm.stats.samplesDone).toBeGreaterThanOrEqual(ROWS);
    expect(swarm.stats.shardErrors).toBe(0);

    await swarm.close();
    expect(swarm.stats.connected).toBe(0);
    await swarm.close(); // a second close is a no-op
    await waitForEvent(coordinator, "workerLeft", (e) => e.name.startsWith("virtual-"), { nth: COUNT, timeoutMs: 20_000 });
    const left = await client.status();
    expect(left.workers).toHaveLength(0);
  });
});
