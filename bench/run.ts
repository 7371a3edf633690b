/**
 * `npm run bench`: figures, each beside a baseline measured in the same run.
 *
 * - efficiency: pooled samples/s of a coordinator with 2 workers x 1 thread, against one
 *   local ONNX Runtime session with 2 intra-op threads on the same model and inputs;
 * - memory: the coordinator's peak RSS (VmHWM, a separate process) during a job whose
 *   inputs total >= 1 GB, against its RSS when idle with workers connected;
 * - heterogeneity: a pool of one unthrottled worker and one at --max-cpu 25, against the sum
 *   of the two workers' throughputs measured alone;
 * - failover: from a worker's SIGKILL (or SIGSTOP) to its shards being sent elsewhere,
 *   against the mean shard duration on that pool;
 * - redundancy: pooled samples/s of a job verified with --redundancy 2 (each shard computed by
 *   two workers and compared), against the same job unverified on the same pool.
 *
 * `--json` prints one JSON object instead of lines. `--memory-gb <x>` sizes the memory job.
 */
import path from "node:path";
import { Command } from "commander";
import { CoordinatorClient } from "../coordinator/client.js";
import { submitJob } from "../coordinator/submit-job.js";
import { catalogModel } from "../shared/catalog.js";
import { writeNpyFile } from "../shared/npy-file.js";
import { seededNormal } from "../shared/onnx/builder.js";
import { NpyRowWriter } from "../shared/npy-file.js";
import type { Tensor } from "../shared/tensor.js";
import { runLocally } from "../worker/local-run.js";
import { jobRate, procMemory } from "./measure.js";
import { runCli, startPool, startProc, startWorker, tempDir, type Proc } from "../tests/helpers/procs.js";

interface Figure {
  name: string;
  value: number;
  unit: string;
  baseline: number;
  baselineName: string;
  ratio: number;
}

/** Samples/s of one local ONNX Runtime process over `x` (the second of two runs, after warm-up). */
async function localSamplesPerSec(model: Uint8Array, name: string, x: Tensor, threads: number): Promise<number> {
  await runLocally(model, name, x, { chunk: 256, threads });
  return (await runLocally(model, name, x, { chunk: 256, threads })).samplesPerSec;
}

async function efficiency(samples: number): Promise<Figure> {
  const tmp = await tempDir("bench-eff");
  const pool = await startPool(2, tmp.dir);
  try {
    const model = catalogModel("cnn").build();
    const dims = [samples, 3, 32, 32];
    const x = seededNormal(5, samples * 3 * 32 * 32, 1);
    const file = path.join(tmp.dir, "x.npy");
    await writeNpyFile(file, { dtype: "float32", dims, data: x });
    await jobRate(pool.url, model, { name: "image", file }, path.join(tmp.dir, "warm")); // warm-up: sessions, caches
    const pooled = (await jobRate(pool.url, model, { name: "image", file }, path.join(tmp.dir, "out"))).samplesPerSec;
    const local = await localSamplesPerSec(model, "image", { dtype: "float32", dims, data: x }, 2);
    return { name: "efficiency: cnn, pool 2 workers x 1 thread", value: pooled, unit: "samples/s", baseline: local, baselineName: "local ORT, 2 threads", ratio: pooled / local };
  } finally {
    await pool.stop();
    await tmp.remove();
  }
}

async function memory(gb: number): Promise<Figure> {
  const tmp = await tempDir("bench-mem");
  const pool = await startPool(2, tmp.dir);
  try {
    const rowFloats = 256;
    const rows = Math.ceil((gb * 1e9) / (rowFloats * 4));
    const file = path.join(tmp.dir, "x.npy");
    // Written in blocks so the benchmark itself stays small too.
    const w = await NpyRowWriter.create(file, "float32", [rows, rowFloats]);
    const block = 65536;
    const data = seededNormal(9, block * rowFloats, 1);
    for (let s = 0; s < rows; s += block) {
      const n = Math.min(block, rows - s);
      await w.writeRows(s, new Uint8Array(data.buffer, 0, n * rowFloats * 4));
    }
    await w.close();
    const pid = pool.coordinator.child.pid!;
    const idle = await procMemory(pid, "VmRSS");
    const r = await runCli(["submit", "--coordinator", pool.url, "--model", "mlp", "--input", `x=${file}`, "--out", path.join(tmp.dir, "out"), "--quiet"], 600_000);
    if (r.code !== 0) throw new Error(`memory job failed: ${r.stderr}`);
    const peak = await procMemory(pid, "VmHWM");
    return { name: `memory: coordinator peak RSS, job with ${(rows * rowFloats * 4 / 1e9).toFixed(2)} GB of inputs`, value: peak / 1e6, unit: "MB", baseline: idle / 1e6, baselineName: "idle RSS with 2 workers", ratio: peak / idle };
  } finally {
    await pool.stop();
    await tmp.remove();
  }
}

async function heterogeneous(samples: number): Promise<Figure> {
  const tmp = await tempDir("bench-het");
  const coordinator = startProc(["coordinator", "--port", "0", "--data-dir", path.join(tmp.dir, "c"), "--log-level", "info"]);
  const procs: Proc[] = [coordinator];
  try {
    const url = (await coordinator.waitFor(/listening on (http:\/\/\S+)/))[1]!;
    const file = path.join(tmp.dir, "x.npy");
    await writeNpyFile(file, { dtype: "float32", dims: [samples, 3, 32, 32], data: seededNormal(3, samples * 3 * 32 * 32, 1) });
    const cnn = catalogModel("cnn").build();
    const fast = await startWorker(coordinator, url, "fast", path.join(tmp.dir, "fast"));
    procs.push(fast);
    (await jobRate(url, cnn, { name: "image", file }, path.join(tmp.dir, "o"))).samplesPerSec; // warm-up
    const fastAlone = (await jobRate(url, cnn, { name: "image", file }, path.join(tmp.dir, "o"))).samplesPerSec;
    await fast.stop();
    const slow = await startWorker(coordinator, url, "slow", path.join(tmp.dir, "slow"), ["--max-cpu", "25"]);
    procs.push(slow);
    const slowAlone = (await jobRate(url, cnn, { name: "image", file }, path.join(tmp.dir, "o"))).samplesPerSec;
    const fast2 = await startWorker(coordinator, url, "fast2", path.join(tmp.dir, "fast"));
    procs.push(fast2);
    const pooled = (await jobRate(url, cnn, { name: "image", file }, path.join(tmp.dir, "o"))).samplesPerSec;
    return {
      name: `heterogeneous pool: cnn, 1 worker + 1 at --max-cpu 25 (alone: ${fastAlone.toFixed(0)} and ${slowAlone.toFixed(0)} samples/s)`,
      value: pooled,
      unit: "samples/s",
      baseline: fastAlone + slowAlone,
      baselineName: "sum of the two alone",
      ratio: pooled / (fastAlone + slowAlone),
    };
  } finally {
    for (const p of procs.reverse()) await p.stop();
    await tmp.remove();
  }
}

async function failover(signal: "SIGKILL" | "SIGSTOP", heartbeatMs: number): Promise<Figure> {
  const tmp = await tempDir("bench-failover");
  const coordinator = startProc(["coordinator", "--port", "0", "--data-dir", path.join(tmp.dir, "c"), "--heartbeat-timeout", String(heartbeatMs)]);
  const procs: Proc[] = [coordinator];
  try {
    const url = (await coordinator.waitFor(/listening on (http:\/\/\S+)/))[1]!;
    const rows = 300 * 64;
    const file = path.join(tmp.dir, "x.npy");
    await writeNpyFile(file, { dtype: "float32", dims: [rows, 3, 32, 32], data: seededNormal(4, rows * 3 * 32 * 32, 1) });
    const victim = await startWorker(coordinator, url, "victim", path.join(tmp.dir, "v"), ["--max-cpu", "50"]);
    procs.push(victim, await startWorker(coordinator, url, "survivor", path.join(tmp.dir, "s"), ["--max-cpu", "50"]));
    const client = new CoordinatorClient(url);
    const sub = startProc(["submit", "--coordinator", url, "--model", "cnn", "--input", `image=${file}`, "--out", path.join(tmp.dir, "o"), "--shard-size", "64", "--quiet"]);
    procs.push(sub);
    for (;;) {
      const j = (await client.status()).jobs[0];
      if (j && j.progress >= 0.3) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const start = await client.status();
    const killedAt = Date.now();
    victim.child.kill(signal);
    // Its shards run elsewhere once they are handed back (socket closed, or silent past the
    // heartbeat timeout) or once an idle worker takes a copy as a straggler, whichever is first.
    let resentAt = 0;
    let how = "";
    for (;;) {
      const s = await client.status();
      if (s.failover.resends > start.failover.resends && s.failover.lastResentAt) {
        resentAt = s.failover.lastResentAt;
        how = "handed back";
        break;
      }
      if ((s.counters.duplicated ?? 0) > (start.counters.duplicated ?? 0)) {
        resentAt = Date.now();
        how = "duplicated as a straggler";
        break;
      }
      if (Date.now() - killedAt > 60_000) throw new Error("shards of the dead worker were never sent again");
      await new Promise((r) => setTimeout(r, 5));
    }
    if (signal === "SIGSTOP") victim.child.kill("SIGCONT");
    const done = await new Promise<number | null>((r) => (sub.child.exitCode !== null ? r(sub.child.exitCode) : sub.child.once("exit", r)));
    if (done !== 0) throw new Error(`failover job failed: ${sub.stderr()}`);
    const s = await client.status();
    const w = s.workers.find((x) => x.name === "survivor")!;
    const shardMs = w.computeMs / Math.max(1, w.shardsDone);
    return {
      name: `failover after ${signal} (heartbeat timeout ${heartbeatMs} ms): death to shards sent elsewhere (${how})`,
      value: resentAt - killedAt,
      unit: "ms",
      baseline: shardMs,
      baselineName: "mean shard compute time",
      ratio: (resentAt - killedAt) / shardMs,
    };
  } finally {
    for (const p of procs.reverse()) await p.stop();
    await tmp.remove();
  }
}

async function redundancy(samples: number): Promise<Figure> {
  const tmp = await tempDir("bench-redundancy");
  const pool = await startPool(2, tmp.dir);
  try {
    const model = catalogModel("wide-mlp").build();
    const file = path.join(tmp.dir, "x.npy");
    await writeNpyFile(file, { dtype: "float32", dims: [samples, 64], data: seededNormal(8, samples * 64, 1) });
    const client = new CoordinatorClient(pool.url);
    const rate = async (k: number) => {
      const { job } = await submitJob(client, { model, inputs: { x: file }, outDir: path.join(tmp.dir, `o${k}`), redundancy: k });
      return job.rows / ((job.finishedAt! - job.startedAt!) / 1000);
    };
    await rate(1); // warm-up: sessions, shard sizes
    const plain = await rate(1);
    const verified = await rate(2);
    return { name: "redundancy: wide-mlp, pool 2 workers, each shard on 2 workers and compared", value: verified, unit: "samples/s", baseline: plain, baselineName: "same job, redundancy 1", ratio: verified / plain };
  } finally {
    await pool.stop();
    await tmp.remove();
  }
}

async function main(): Promise<void> {
  const opts = new Command("bench")
    .option("--json", "print one JSON object")
    .option("--samples <n>", "samples in the efficiency job", "16384")
    .option("--memory-gb <x>", "input size of the memory job", "1.05")
    .option("--only <names>", "comma-separated subset: efficiency,memory,heterogeneous,failover,redundancy")
    .parse(process.argv)
    .opts<{ json?: boolean; samples: string; memoryGb: string; only?: string }>();
  const only = new Set(opts.only?.split(",").map((x) => x.trim()) ?? ["efficiency", "memory", "heterogeneous", "failover", "redundancy"]);
  const figures: Figure[] = [];
  const say = (f: Figure) => {
    figures.push(f);
    if (!opts.json) {
      process.stdout.write(`${f.name}: ${f.value.toFixed(1)} ${f.unit} | baseline (${f.baselineName}): ${f.baseline.toFixed(1)} ${f.unit} | ratio ${f.ratio.toFixed(3)}\n`);
    }
  };
  if (only.has("efficiency")) say(await efficiency(Number(opts.samples)));
  if (only.has("memory")) say(await memory(Number(opts.memoryGb)));
  if (only.has("heterogeneous")) say(await heterogeneous(16384));
  if (only.has("failover")) {
    say(await failover("SIGKILL", 10_000));
    say(await failover("SIGSTOP", 3_000));
  }
  if (only.has("redundancy")) say(await redundancy(40_000));
  if (opts.json) process.stdout.write(`${JSON.stringify({ figures }, null, 2)}\n`);
}

await main();
