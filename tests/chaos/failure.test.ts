/**
 * Devices come and go: workers killed and stopped mid-job, a coordinator killed and
 * restarted. Every job must still finish with every row correct, in order, exactly once.
 * Real processes on loopback; each test bounds itself in time.
 */
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CoordinatorClient } from "../../coordinator/client/client.js";
import { catalogModel } from "../../shared/onnx/catalog.js";
import { readNpyFile, writeNpyFile } from "../../shared/node/npy-file.js";
import { seededNormal } from "../../shared/onnx/builder.js";
import { maxAbsDiff } from "../../shared/tensor/tensor-ops.js";
import type { Tensor } from "../../shared/tensor/tensor.js";
import { type Proc, startCoordinator, startProc, startWorker, tempDir, waitForEvent } from "../../harness/procs.js";
import { runLocally } from "../../worker/local-run.js";

const referenceRun = async (model: Uint8Array, input: string, x: Tensor, chunk: number) => (await runLocally(model, input, x, { chunk, threads: 1 })).out;

/** Compute-dense, small inputs: jobs last seconds without writing big files. */
const MODEL = "wide-mlp";
/** Workers idle most of the time, so jobs last long enough for things to happen during them. */
const CAP = ["--max-cpu", "20"];

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function setup(prefix: string, rows: number): Promise<{ dir: string; input: string; x: Tensor }> {
  const tmp = await tempDir(prefix);
  cleanups.push(tmp.remove);
  const x: Tensor = { dtype: "float32", dims: [rows, 64], data: seededNormal(rows, rows * 64, 1) };
  const input = path.join(tmp.dir, "x.npy");
  await writeNpyFile(input, x);
  return { dir: tmp.dir, input, x };
}

async function coordinator(dir: string, args: string[] = []): Promise<{ proc: Proc; url: string }> {
  const { proc, url } = await startCoordinator(["--port", "0", "--data-dir", path.join(dir, "coordinator"), "--log-level", "info", ...args]);
  cleanups.push(() => proc.stop("SIGKILL"));
  return { proc, url };
}

async function worker(c: { proc: Proc; url: string }, dir: string, name: string, extra: string[] = []): Promise<Proc> {
  const w = await startWorker(c.proc, c.url, name, path.join(dir, name), extra);
  cleanups.push(() => w.stop("SIGKILL"));
  return w;
}

/** Resolves once the job's progress reaches `fraction` (polling the status API). */
async function progressAt(client: CoordinatorClient, fraction: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await client.status().catch(() => undefined);
    const job = s?.jobs[0];
    if (job && (job.progress >= fraction || ["done", "failed", "cancelled"].includes(job.state))) return;
    if (Date.now() > deadline) throw new Error(`job did not reach ${fraction} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function submit(url: string, input: string, out: string, extra: string[] = []): Proc {
  const p = startProc(["submit", "--coordinator", url, "--model", MODEL, "--input", `x=${input}`, "--out", out, ...extra]);
  cleanups.push(() => p.stop("SIGKILL"));
  return p;
}

function exitOf(p: Proc): Promise<number | null> {
  return p.child.exitCode !== null ? Promise.resolve(p.child.exitCode) : new Promise((r) => p.child.once("exit", (code) => r(code)));
}

describe("failure handling", () => {
  it("chaos: two of four workers SIGKILLed at random moments, one joins; every row exactly once", async () => {
    const rows = 400 * 100;
    const { dir, input, x } = await setup("chaos", rows);
    const c = await coordinator(dir, ["--heartbeat-timeout", "3000"]);
    const workers = await Promise.all(["w1", "w2", "w3", "w4"].map((n) => worker(c, dir, n, CAP)));
    const client = new CoordinatorClient(c.url);
    const sub = submit(c.url, input, path.join(dir, "out"), ["--shard-size", "100"]);
    const victims = [workers[0]!, workers[2]!];
    const moments = [0.1 + Math.random() * 0.25, 0.4 + Math.random() * 0.25].sort();
    for (const [i, v] of victims.entries()) {
      await progressAt(client, moments[i]!);
      v.child.kill("SIGKILL");
      if (i === 0) await worker(c, dir, "w5", CAP);
    }
    expect(await exitOf(sub), sub.stderr()).toBe(0);

    const got = await readNpyFile(path.join(dir, "out", "logits.npy"));
    const want = await referenceRun(catalogModel(MODEL).build(), "x", x, 100);
    expect(got.dims).toEqual([rows, 10]);
    expect(maxAbsDiff(got, want)).toBe(0);
    const s = await client.status();
    const job = s.jobs[0]!;
    expect(job.state).toBe("done");
    expect(job.shardsDone).toBe(400);
    expect(job.samplesDone).toBe(rows);
    // Accepted work adds up to the job exactly: nothing missing, nothing written twice.
    expect(s.throughput.totalSamples).toBe(rows);
    expect(s.throughput.totalShards).toBe(400);
    expect(s.workers.map((w) => w.name).sort()).toEqual(["w2", "w4", "w5"]);
    expect(s.workers.find((w) => w.name === "w5")!.shardsDone).toBeGreaterThan(0);
  }, 120_000);

  it.each(["SIGKILL", "SIGTERM"] as const)("a coordinator stopped with %s mid-job and restarted on its data directory finishes the job; submit exits 0", async (signal) => {
    const rows = 200 * 100;
    const { dir, input, x } = await setup("restart", rows);
    const first = await coordinator(dir);
    const port = new URL(first.url).port;
    await worker(first, dir, "r1", CAP);
    await worker(first, dir, "r2", CAP);
    const client = new CoordinatorClient(first.url);
    const sub = submit(first.url, input, path.join(dir, "out"), ["--shard-size", "100"]);
    await progressAt(client, 0.3);
    const atKill = (await client.status()).jobs[0]!;
    first.proc.child.kill(signal);
    expect(atKill.state).toBe("running");
    expect(atKill.samplesDone).toBeLessThan(rows);
    const code = await exitOf(first.proc);
    // A graceful stop persists state and exits 0; a kill leaves the same durable state behind.
    if (signal === "SIGTERM") expect(code).toBe(0);
    const before = (await client.status().catch((e: unknown) => e)) as Error;
    expect(before).toBeInstanceOf(Error);

    const second = startProc(["coordinator", "--port", port, "--data-dir", path.join(dir, "coordinator")]);
    cleanups.push(() => second.stop("SIGKILL"));
    const resumed = await waitForEvent(second, "coordinatorListening");
    expect(resumed.resumedJobs).toBe(1);
    expect(await exitOf(sub), sub.stderr()).toBe(0);
    expect(sub.stderr()).toMatch(/coordinator unreachable/);

    const got = await readNpyFile(path.join(dir, "out", "logits.npy"));
    const want = await referenceRun(catalogModel(MODEL).build(), "x", x, 100);
    expect(maxAbsDiff(got, want)).toBe(0);
    const job = (await client.status()).jobs[0]!;
    expect(job.state).toBe("done");
    expect(job.samplesDone).toBe(rows);
    expect(job.shardsDone).toBe(200);
  }, 120_000);

  it("a worker stopped with SIGSTOP (socket left open) is declared dead and its shards are redone", async () => {
    const rows = 150 * 100;
    const { dir, input, x } = await setup("sigstop", rows);
    const c = await coordinator(dir, ["--heartbeat-timeout", "1500"]);
    const frozen = await worker(c, dir, "s1", CAP);
    await worker(c, dir, "s2", CAP);
    cleanups.push(async () => frozen.child.kill("SIGCONT"));
    const client = new CoordinatorClient(c.url);
    const sub = submit(c.url, input, path.join(dir, "out"), ["--shard-size", "100"]);
    await progressAt(client, 0.2);
    frozen.child.kill("SIGSTOP");
    const dead = await c.proc.waitFor(/\{[^\n]*"worker":"s1"[^\n]*"worker unresponsive; disconnecting"[^\n]*\}/, 30_000);
    const silentMs = (JSON.parse(dead[0]) as { silentMs: number }).silentMs;
    // Declared dead within the heartbeat timeout, after at least three missed pings.
    expect(silentMs).toBeGreaterThanOrEqual(1125);
    expect(silentMs).toBeLessThanOrEqual(1500 + 250); // + timer slack on a loaded machine
    expect(await exitOf(sub), sub.stderr()).toBe(0);
    const got = await readNpyFile(path.join(dir, "out", "logits.npy"));
    expect(maxAbsDiff(got, await referenceRun(catalogModel(MODEL).build(), "x", x, 100))).toBe(0);
    const s = await client.status();
    expect(s.workers.map((w) => w.name)).toEqual(["s2"]);
    expect(s.jobs[0]!.samplesDone).toBe(rows);
  }, 120_000);

  it("a frozen worker does not hold the job: its last shards are duplicated on an idle worker long before it is declared dead", async () => {
    const rows = 150 * 100;
    const { dir, input, x } = await setup("straggler", rows);
    const c = await coordinator(dir, ["--heartbeat-timeout", "60000"]);
    const frozen = await worker(c, dir, "slowpoke", CAP);
    await worker(c, dir, "steady", CAP);
    cleanups.push(async () => frozen.child.kill("SIGCONT"));
    const client = new CoordinatorClient(c.url);
    const sub = submit(c.url, input, path.join(dir, "out"), ["--shard-size", "100"]);
    // Late in the job, so the tail arrives before the frozen shards' deadlines (5 s and up).
    await progressAt(client, 0.6);
    frozen.child.kill("SIGSTOP");
    const stoppedAt = Date.now();
    expect(await exitOf(sub), sub.stderr()).toBe(0);
    expect(Date.now() - stoppedAt).toBeLessThan(30_000);
    const got = await readNpyFile(path.join(dir, "out", "logits.npy"));
    expect(maxAbsDiff(got, await referenceRun(catalogModel(MODEL).build(), "x", x, 100))).toBe(0);
    const s = await client.status();
    expect(s.counters.duplicated).toBeGreaterThan(0);
    expect(s.counters.duplicatesCancelled).toBeGreaterThan(0);
    // The frozen worker is still connected (60 s heartbeat): the job did not wait for it.
    expect(s.workers.map((w) => w.name).sort()).toEqual(["slowpoke", "steady"]);
    expect(s.jobs[0]!.samplesDone).toBe(rows);
  }, 120_000);

  it("a shard that fails on every worker fails its job after bounded retries, naming the shard and every cause", async () => {
    const tmp = await tempDir("poison");
    cleanups.push(tmp.remove);
    const c = await coordinator(tmp.dir);
    await worker(c, tmp.dir, "p1");
    await worker(c, tmp.dir, "p2");
    const rows = 400;
    const ids = new BigInt64Array(rows * 16).fill(7n);
    ids[150 * 16 + 3] = 5000n; // past the 1000-token vocabulary: Gather fails on this row only
    const mask = new BigInt64Array(rows * 16).fill(1n);
    await writeNpyFile(path.join(tmp.dir, "ids.npy"), { dtype: "int64", dims: [rows, 16], data: ids });
    await writeNpyFile(path.join(tmp.dir, "mask.npy"), { dtype: "int64", dims: [rows, 16], data: mask });
    const sub = startProc([
      "submit", "--coordinator", c.url, "--model", "transformer", "--shard-size", "50",
      "--input", `input_ids=${path.join(tmp.dir, "ids.npy")}`, "--input", `attention_mask=${path.join(tmp.dir, "mask.npy")}`,
      "--out", path.join(tmp.dir, "out"), "--quiet",
    ]);
    cleanups.push(() => sub.stop("SIGKILL"));
    expect(await exitOf(sub)).toBe(1);
    const line = sub.stderr().trim();
    expect(line.split("\n")).toHaveLength(1);
    expect(line).toMatch(/shard 3 \(rows 150-200\) failed 3 times: /);
    // Retried on the other worker: both appear among the causes.
    expect(line).toMatch(/p1: E_INFERENCE/);
    expect(line).toMatch(/p2: E_INFERENCE/);
    const job = (await new CoordinatorClient(c.url).status()).jobs[0]!;
    expect(job.state).toBe("failed");
  }, 60_000);
});
