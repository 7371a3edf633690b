/**
 * What the coordinator costs, each beside a raw baseline measured in the same run:
 * - dispatch: shards/s with tiny shards (one `mlp` row each: microseconds of compute) on a
 *   pool of 2 workers, against a raw WebSocket echo of frames of the same sizes with the same
 *   connections and messages in flight;
 * - transport: MB/s of tensor payload (inputs out plus outputs back) through the pool with
 *   large shards of the I/O-bound `scale` model, against a raw echo of the same sizes;
 * - latency: a one-shard job end to end in one request (POST /api/jobs with the input in a
 *   frame and ?wait: create, dispatch, run, the output back in the answer; the model is
 *   already stored), against the same inference run in this process.
 */
import { rm } from "node:fs/promises";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { CoordinatorClient } from "../coordinator/client/client.js";
import { catalogModel } from "../shared/onnx/catalog.js";
import { writeNpyFile } from "../shared/node/npy-file.js";
import { seededNormal } from "../shared/onnx/builder.js";
import { creditFor } from "../coordinator/workers/session.js";
import { startPool } from "../harness/procs.js";
import { benchDir } from "./measure.js";
import { cpuSeconds, helperThreadsCpuSeconds, settleDisk } from "../shared/node/system.js";
import type { Figure } from "./figure.js";
import { rawEcho } from "./raw-echo.js";

/** Runs of each side behind the dispatch and transport figures (their medians are the figures). */
const ROUNDS = 3;

/**
 * Shards the pool lets a worker of one slot hold at once with frames of `frameBytes`, when its
 * shards take next to no time (creditFor, with the coordinator's default prefetch): the echo
 * keeps as many messages in flight per connection.
 */
function poolCredit(frameBytes: number): number {
  return creditFor(1, 1, Number.MIN_VALUE, frameBytes);
}

/** Runs of each side behind the transport figure: its jobs are short (half a second), so more of them. */
const TRANSPORT_ROUNDS = 5;

/**
 * Runs one job on `file` (uploaded anew: a job takes its uploads) and times it on the
 * coordinator; with `pids`, also the CPU seconds each of those processes used from create to
 * done.
 *
 * The job's folder is removed once it is timed, and the removal flushed. On this kind of VM,
 * memory the page cache has not used lately costs the kernel 15 times more to write into than
 * pages it freed a moment ago (`dd` of 1 GiB, synced: 0.42-0.59 GB/s into new pages, 6.3 GB/s
 * into freed ones). Each round that kept the last one's outputs wrote slower than the one
 * before, while the echo writes nothing; removed, as an owner removes the jobs they fetched,
 * every round writes into pages alike.
 */
async function timedJob(pool: { url: string; dataDir: string; coordinatorPid?: number }, model: string, file: string, shardSize: number, pids: readonly number[] = []) {
  const client = new CoordinatorClient(pool.url);
  const upload = (await client.uploadNpy(file)).id;
  // The upload's writes flushed first: the job should not share the disk with them.
  await settleDisk();
  const cpu0 = await Promise.all(pids.map(cpuSeconds));
  const helpers0 = pool.coordinatorPid ? await helperThreadsCpuSeconds(pool.coordinatorPid) : 0;
  const created = await client.createJob({ model, inputs: { x: upload }, shardSize });
  const job = await client.waitForJob(created.id, { intervalMs: 1000 });
  if (job.state !== "done") throw new Error(`bench job ${job.id} ${job.state}: ${job.error ?? ""}`);
  const cpu1 = await Promise.all(pids.map(cpuSeconds));
  const helpers1 = pool.coordinatorPid ? await helperThreadsCpuSeconds(pool.coordinatorPid) : 0;
  await rm(path.join(pool.dataDir, "coordinator", "jobs", job.id), { recursive: true, force: true });
  await settleDisk();
  return {
    job,
    secs: (job.finishedAt! - job.startedAt!) / 1000,
    cpu: cpu1.map((c, i) => c - cpu0[i]!),
    /** CPU seconds of the coordinator's threads other than its main one (with `coordinatorPid`). */
    coordinatorOthers: helpers1 - helpers0,
  };
}

export async function dispatchRate(shards: number): Promise<Figure> {
  const tmp = await benchDir("bench-dispatch");
  const pool = await startPool(2, tmp.dir);
  try {
    const client = new CoordinatorClient(pool.url);
    const file = path.join(tmp.dir, "x.npy");
    await writeNpyFile(file, { dtype: "float32", dims: [shards, 256], data: seededNormal(6, shards * 256, 1) });
    const model = await client.uploadModel(catalogModel("mlp").build());
    await timedJob({ url: pool.url, dataDir: tmp.dir }, model.sha256, file, 1); // warm-up: sessions, queue depths
    // Each side is the median of ROUNDS runs, the pool's and the echo's taken in turn.
    const pids = [pool.coordinator.child.pid!, ...pool.workers.map((w) => w.child.pid!)];
    const pooled: Array<{ rate: number; coordinatorUs: number; workersUs: number }> = [];
    const echoed: Array<{ rate: number; serverUs: number; clientUs: number }> = [];
    for (let i = 0; i < ROUNDS; i++) {
      const { job, secs, cpu } = await timedJob({ url: pool.url, dataDir: tmp.dir }, model.sha256, file, 1, pids);
      pooled.push({ rate: job.shards / secs, coordinatorUs: (cpu[0]! * 1e6) / job.shards, workersUs: (sum(cpu.slice(1)) * 1e6) / job.shards });
      // Frame sizes as the pool sends them: a JSON header (~200 bytes) with one 1 KiB row out, 40 bytes back.
      const requestBytes = 256 * 4 + 224;
      const echo = await rawEcho({ connections: 2, window: poolCredit(requestBytes), requestBytes, replyBytes: 10 * 4 + 200, messages: shards });
      echoed.push({ rate: echo.messagesPerSec, serverUs: (echo.cpu.server * 1e6) / shards, clientUs: (echo.cpu.client * 1e6) / shards });
    }
    const value = median(pooled.map((p) => p.rate));
    const baseline = median(echoed.map((e) => e.rate));
    return {
      name:
        `dispatch: ${shards} one-row mlp shards on 2 workers, median of ${ROUNDS} (runs: ${pooled.map((p) => p.rate.toFixed(0)).join(", ")}; echo: ${echoed.map((e) => e.rate.toFixed(0)).join(", ")}; ` +
        `CPU per shard: coordinator ${median(pooled.map((p) => p.coordinatorUs)).toFixed(1)} µs, workers ${median(pooled.map((p) => p.workersUs)).toFixed(1)} µs; ` +
        `per echo: sender ${median(echoed.map((e) => e.clientUs)).toFixed(1)} µs, echoer ${median(echoed.map((e) => e.serverUs)).toFixed(1)} µs)`,
      value,
      unit: "shards/s",
      baseline,
      baselineName: "raw WebSocket echo, same sizes",
      ratio: value / baseline,
    };
  } finally {
    await pool.stop();
  }
}

export async function transportRate(rows: number): Promise<Figure> {
  const tmp = await benchDir("bench-transport");
  const pool = await startPool(2, tmp.dir);
  try {
    const client = new CoordinatorClient(pool.url);
    const width = 4096;
    const file = path.join(tmp.dir, "x.npy");
    await writeNpyFile(file, { dtype: "float32", dims: [rows, width], data: seededNormal(7, rows * width, 1) });
    const scale = catalogModel("scale").build();
    const model = await client.uploadModel(scale);
    const shardRows = 64; // 1 MiB in and 1 MiB out per shard
    await timedJob({ url: pool.url, dataDir: tmp.dir }, model.sha256, file, shardRows);
    const pids = [pool.coordinator.child.pid!, ...pool.workers.map((w) => w.child.pid!)];
    const bytes = rows * width * 4 * 2;
    const shardBytes = shardRows * width * 4;
    // A shard frame: its rows behind a JSON header of a few hundred bytes.
    const window = poolCredit(shardBytes + 256);
    const echoBytes = Math.ceil(rows / shardRows) * shardBytes * 2;
    // Each side is the median of TRANSPORT_ROUNDS runs, the pool's and the echo's taken in turn; and
    // where the difference goes: CPU time per MB moved, all processes of each side together.
    const pooled: Array<{ mbps: number; coordinator: number; workers: number; fileIo: number }> = [];
    const echoed: Array<{ mbps: number; server: number; client: number }> = [];
    const msPerMb = (cpuSecs: number, moved: number) => (cpuSecs * 1000) / (moved / 1e6);
    const target = { url: pool.url, dataDir: tmp.dir, coordinatorPid: pool.coordinator.child.pid! };
    for (let i = 0; i < TRANSPORT_ROUNDS; i++) {
      const { secs, cpu, coordinatorOthers } = await timedJob(target, model.sha256, file, shardRows, pids);
      pooled.push({ mbps: bytes / secs / 1e6, coordinator: msPerMb(cpu[0]!, bytes), workers: msPerMb(sum(cpu.slice(1)), bytes), fileIo: msPerMb(coordinatorOthers, bytes) });
      const echo = await rawEcho({ connections: 2, window, requestBytes: shardBytes, replyBytes: shardBytes, messages: Math.ceil(rows / shardRows) });
      echoed.push({ mbps: echo.bytesPerSec / 1e6, server: msPerMb(echo.cpu.server, echoBytes), client: msPerMb(echo.cpu.client, echoBytes) });
    }
    const value = median(pooled.map((p) => p.mbps));
    const baseline = median(echoed.map((p) => p.mbps));
    // Two costs the echo does not pay: the coordinator's file I/O (inputs read from disk,
    // outputs written and flushed), and running the model, timed here on shard-sized inputs.
    // A pool that spent nothing more than the echo plus these would reach `reach`.
    const echoCpu = median(echoed.map((e) => e.server + e.client));
    const fileIo = median(pooled.map((p) => p.fileIo));
    const modelRun = msPerMb(await modelCpuSeconds(scale, [shardRows, width]), shardBytes * 2);
    const reach = echoCpu / (echoCpu + fileIo + modelRun);
    return {
      name:
        `transport: scale, ${(bytes / 1e9).toFixed(2)} GB in and out, 1 MiB shards, 2 workers, median of ${TRANSPORT_ROUNDS} ` +
        `(runs: ${pooled.map((p) => p.mbps.toFixed(0)).join(", ")}; echo: ${echoed.map((p) => p.mbps.toFixed(0)).join(", ")}; ` +
        `CPU per MB moved: coordinator ${median(pooled.map((p) => p.coordinator)).toFixed(2)} ms, workers ${median(pooled.map((p) => p.workers)).toFixed(2)} ms; ` +
        `echoer ${median(echoed.map((p) => p.server)).toFixed(2)} ms, sender ${median(echoed.map((p) => p.client)).toFixed(2)} ms; ` +
        `what the echo does not do: the coordinator's file I/O threads ${fileIo.toFixed(2)} ms, running the model ${modelRun.toFixed(2)} ms, ` +
        `so a pool costing nothing more would reach ${reach.toFixed(2)} with both sides keeping the cores as busy)`,
      value,
      unit: "MB/s",
      baseline,
      baselineName: "raw WebSocket echo, same sizes",
      ratio: value / baseline,
      cpuMsPerMb: median(pooled.map((p) => p.coordinator + p.workers)),
      baselineCpuMsPerMb: echoCpu,
    };
  } finally {
    await pool.stop();
  }
}

/**
 * CPU seconds one run of `model` on a float32 input of `dims` takes in this process (one
 * thread), on 16 different inputs in turn as a worker sees new ones: the median of 7 batches
 * of 100 runs, each batch's CPU taken together, as Linux counts CPU time in ticks of a few ms.
 */
async function modelCpuSeconds(model: Uint8Array, dims: number[]): Promise<number> {
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1 });
  try {
    const size = dims.reduce((a, b) => a * b, 1);
    const feeds = Array.from({ length: 16 }, (_, i) => ({ [session.inputNames[0]!]: new ort.Tensor("float32", seededNormal(9 + i, size, 1), dims) }));
    for (let i = 0; i < 50; i++) await session.run(feeds[i % feeds.length]!);
    const batches: number[] = [];
    for (let b = 0; b < 7; b++) {
      const t0 = process.cpuUsage();
      for (let i = 0; i < 100; i++) await session.run(feeds[i % feeds.length]!);
      const t = process.cpuUsage(t0);
      batches.push((t.user + t.system) / 1e6 / 100);
    }
    return median(batches);
  } finally {
    await session.release();
  }
}

export async function latency(runs: number, warmupMs: number): Promise<Figure> {
  const tmp = await benchDir("bench-latency");
  const pool = await startPool(1, tmp.dir);
  try {
    const client = new CoordinatorClient(pool.url);
    const bytes = catalogModel("mlp").build();
    const x = seededNormal(8, 256, 1);
    const inputs = [{ name: "x", dtype: "float32" as const, dims: [1, 256], data: x }];
    const model = (await client.uploadModel(bytes)).sha256;
    const oneJob = async () => {
      const t0 = performance.now();
      const { job, outputs } = await client.createInlineJob({ model }, inputs, 10_000);
      const ms = performance.now() - t0;
      if (job.state !== "done" || !outputs) throw new Error(`latency job ${job.id} ${job.state}: ${job.error ?? "no outputs in the answer"}`);
      return ms;
    };
    // Warm-up: code paths compiled, sessions loaded, and this VM's idle CPUs used to waking often.
    for (const until = performance.now() + warmupMs; performance.now() < until; ) await oneJob();
    const ends: number[] = [];
    for (let i = 0; i < runs; i++) ends.push(await oneJob());
    const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
    const locals: number[] = [];
    for (let i = 0; i < runs + 100; i++) {
      const t0 = performance.now();
      await session.run({ x: new ort.Tensor("float32", x, [1, 256]) });
      if (i >= 100) locals.push(performance.now() - t0);
    }
    await session.release();
    const e2e = median(ends);
    const local = median(locals);
    return {
      name: `latency: one-shard mlp job end to end (one request: input in, output back), median of ${runs} after ${warmupMs / 1000} s of warm-up (added: ${(e2e - local).toFixed(2)} ms; p90 ${quantile(ends, 0.9).toFixed(2)} ms)`,
      value: e2e,
      unit: "ms",
      baseline: local,
      baselineName: "the same inference in this process",
      ratio: e2e / local,
    };
  } finally {
    await pool.stop();
  }
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * q))]!;
}

function sum(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
