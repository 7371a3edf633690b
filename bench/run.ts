/**
 * `npm run bench`: figures, each beside a baseline measured in the same run.
 *
 * - efficiency: pooled samples/s of a coordinator with 2 workers x 1 thread, against one
 *   local ONNX Runtime session with 2 intra-op threads on the same model and inputs (the
 *   catalog cnn, and ResNet-50 from ../shared/zoo when it is there);
 * - dispatch, transport, latency (pool-rates.ts): tiny shards against a raw WebSocket echo,
 *   large shards against a raw echo, a one-shard job against a local run;
 * - fleet (fleet.ts): idle virtual workers one coordinator holds, its RSS and CPU;
 * - memory: the coordinator's peak RSS (VmHWM, a separate process) during a job whose
 *   inputs and outputs total >= 2 GB, against its RSS when idle with workers connected;
 * - heterogeneity: a pool of one unthrottled worker and one at --max-cpu 25, against the sum
 *   of the two workers' throughputs measured alone;
 * - failover: from a worker's SIGKILL (or SIGSTOP) to its shards being sent elsewhere,
 *   against the mean shard duration on that pool;
 * - redundancy: pooled samples/s of a job verified with --redundancy 2 (each shard computed by
 *   two workers and compared), against the same job unverified on the same pool.
 *
 * `--json` prints one JSON object instead of lines; `--only a,b` runs a subset.
 */
import { existsSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { CoordinatorClient } from "../coordinator/client/client.js";
import { submitJob } from "../coordinator/client/submit-job.js";
import { catalogModel } from "../shared/onnx/catalog.js";
import { writeNpyFile } from "../shared/node/npy-file.js";
import { seededNormal } from "../shared/onnx/builder.js";
import { NpyRowWriter } from "../shared/node/npy-file.js";
import { runLocally } from "../worker/local-run.js";
import type { Figure } from "./figure.js";
import { fleetSize } from "./fleet.js";
import { benchDir, removeBenchDirs } from "./measure.js";
import { procMemory, settleDisk } from "../shared/node/system.js";
import { jobRate } from "../coordinator/client/job-rate.js";
import { dispatchRate, latency, transportRate } from "./pool-rates.js";
import { runCli, startPool, startProc, startWorker, type Proc } from "../harness/procs.js";



/** ResNet-50 from the reference zoo, when it sits beside the checkout. */
const RESNET50 = fileURLToPath(new URL("../../shared/zoo/light_resnet50.onnx", import.meta.url));

/** Input bytes of one sample of the catalog cnn (3 x 32 x 32 float32). */
const CNN_INPUT_BYTES = 3 * 32 * 32 * 4;

/**
 * Why the cnn's efficiency is what it is on this machine, from two figures of this run: to
 * keep pace with the local run, the pool must move each sample's input to the workers while
 * they compute, on the same cores. The raw echo's CPU per MB (transport) is what moving a MB
 * over WebSockets costs with nothing else done, so the cores that stream takes at that cost
 * bound the efficiency of any pool that moves it so, however light its coordinator.
 */
function transportCeiling(figures: readonly Figure[], bytesPerSample: number): string | null {
  const cnn = figures.find((f) => f.name.startsWith("efficiency: cnn"));
  const transport = figures.find((f) => f.name.startsWith("transport:"));
  if (!cnn || !transport?.cpuMsPerMb || !transport.baselineCpuMsPerMb) return null;
  const needed = (cnn.baseline * bytesPerSample) / 1e6;
  const cores = os.availableParallelism();
  const bare = (needed * transport.baselineCpuMsPerMb) / 1000;
  const pooled = (needed * transport.cpuMsPerMb) / 1000;
  return (
    `cnn: matching the local ${cnn.baseline.toFixed(0)} samples/s means moving ${needed.toFixed(0)} MB/s of input (${bytesPerSample} bytes a sample) ` +
    `to the workers while they compute on the same ${cores} cores. The raw echo spends ${transport.baselineCpuMsPerMb.toFixed(2)} ms of CPU per MB moved (transport), ` +
    `so that stream alone takes ${bare.toFixed(2)} cores, and a pool moving it over WebSockets stays near or under ${((cores - bare) / cores).toFixed(2)} efficiency; ` +
    `at the pool's own ${transport.cpuMsPerMb.toFixed(2)} ms per MB (which also writes as many bytes of outputs) it would take ${pooled.toFixed(2)} cores. Measured: ${cnn.ratio.toFixed(2)}`
  );
}

async function efficiency(label: string, model: Uint8Array, input: string, dims: number[], chunk: number): Promise<Figure> {
  const tmp = await benchDir("bench-eff");
  const pool = await startPool(2, tmp.dir);
  try {
    const x = seededNormal(5, dims.reduce((a, b) => a * b, 1), 1);
    const file = path.join(tmp.dir, "x.npy");
    await writeNpyFile(file, { dtype: "float32", dims, data: x });
    await jobRate(pool.url, model, { name: input, file }); // warm-up: sessions, caches
    const pooled = (await jobRate(pool.url, model, { name: input, file })).samplesPerSec;
    await runLocally(model, input, { dtype: "float32", dims, data: x }, { chunk, threads: 2 });
    const local = (await runLocally(model, input, { dtype: "float32", dims, data: x }, { chunk, threads: 2 })).samplesPerSec;
    return { name: `efficiency: ${label}, pool 2 workers x 1 thread`, value: pooled, unit: "samples/s", baseline: local, baselineName: "local ORT, 2 threads", ratio: pooled / local };
  } finally {
    await pool.stop();
  }
}

async function memory(gb: number): Promise<Figure> {
  const tmp = await benchDir("bench-mem");
  const pool = await startPool(2, tmp.dir);
  try {
    // The I/O-bound scale model: its outputs are as large as its inputs.
    const rowFloats = 4096;
    const rows = Math.ceil((gb * 1e9) / 2 / (rowFloats * 4));
    const file = path.join(tmp.dir, "x.npy");
    // Written in blocks so the benchmark itself stays small too.
    const w = await NpyRowWriter.create(file, "float32", [rows, rowFloats]);
    const block = 4096;
    const data = seededNormal(9, block * rowFloats, 1);
    for (let s = 0; s < rows; s += block) {
      const n = Math.min(block, rows - s);
      await w.writeRows(s, new Uint8Array(data.buffer, 0, n * rowFloats * 4));
    }
    await w.close();
    const pid = pool.coordinator.child.pid!;
    const idle = await procMemory(pid, "VmRSS");
    const r = await runCli(["submit", "--coordinator", pool.url, "--model", "scale", "--input", `x=${file}`, "--out", path.join(tmp.dir, "out"), "--quiet"], 600_000);
    if (r.code !== 0) throw new Error(`memory job failed: ${r.stderr}`);
    const peak = await procMemory(pid, "VmHWM");
    const total = (2 * rows * rowFloats * 4) / 1e9;
    return { name: `memory: coordinator peak RSS, job with ${total.toFixed(2)} GB of inputs and outputs`, value: peak / 1e6, unit: "MB", baseline: idle / 1e6, baselineName: "idle RSS with 2 workers", ratio: peak / idle };
  } finally {
    await pool.stop();
  }
}

async function heterogeneous(samples: number): Promise<Figure> {
  const tmp = await benchDir("bench-het");
  const coordinator = startProc(["coordinator", "--port", "0", "--data-dir", path.join(tmp.dir, "c"), "--log-level", "info"]);
  const procs: Proc[] = [coordinator];
  try {
    const url = (await coordinator.waitFor(/listening on (http:\/\/\S+)/))[1]!;
    const file = path.join(tmp.dir, "x.npy");
    await writeNpyFile(file, { dtype: "float32", dims: [samples, 3, 32, 32], data: seededNormal(3, samples * 3 * 32 * 32, 1) });
    const cnn = catalogModel("cnn").build();
    const fast = await startWorker(coordinator, url, "fast", path.join(tmp.dir, "fast"));
    procs.push(fast);
    (await jobRate(url, cnn, { name: "image", file })).samplesPerSec; // warm-up
    const fastAlone = (await jobRate(url, cnn, { name: "image", file })).samplesPerSec;
    await fast.stop();
    const slow = await startWorker(coordinator, url, "slow", path.join(tmp.dir, "slow"), ["--max-cpu", "25"]);
    procs.push(slow);
    const slowAlone = (await jobRate(url, cnn, { name: "image", file })).samplesPerSec;
    const fast2 = await startWorker(coordinator, url, "fast2", path.join(tmp.dir, "fast"));
    procs.push(fast2);
    const pooled = (await jobRate(url, cnn, { name: "image", file })).samplesPerSec;
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
  }
}

async function failover(signal: "SIGKILL" | "SIGSTOP", heartbeatMs: number): Promise<Figure> {
  const tmp = await benchDir("bench-failover");
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
  }
}

async function redundancy(samples: number): Promise<Figure> {
  const tmp = await benchDir("bench-redundancy");
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
  }
}

const ALL = ["efficiency", "dispatch", "transport", "latency", "fleet", "memory", "heterogeneous", "failover", "redundancy"];

async function main(): Promise<void> {
  const opts = new Command("bench")
    .option("--json", "print one JSON object")
    .option("--samples <n>", "samples in the cnn efficiency job", "16384")
    .option("--memory-gb <x>", "inputs plus outputs of the memory job, in GB", "2.1")
    .option("--fleet <n>", "virtual workers to connect for the fleet figures", "50000")
    .option("--only <names>", `comma-separated subset: ${ALL.join(",")}`)
    .parse(process.argv)
    .opts<{ json?: boolean; samples: string; memoryGb: string; fleet: string; only?: string }>();
  const only = new Set(opts.only?.split(",").map((x) => x.trim()) ?? ALL);
  for (const name of only) if (!ALL.includes(name)) throw new Error(`unknown benchmark '${name}'; choose from ${ALL.join(", ")}`);
  const figures: Figure[] = [];
  const notes: string[] = [];
  const say = (f: Figure) => {
    figures.push(f);
    if (!opts.json) {
      process.stdout.write(`${f.name}: ${fmt(f.value)} ${f.unit} | baseline (${f.baselineName}): ${fmt(f.baseline)} ${f.unit} | ratio ${f.ratio.toFixed(3)}\n`);
    }
  };
  const note = (line: string) => {
    notes.push(line);
    if (!opts.json) process.stdout.write(`  note: ${line}\n`);
  };
  const started = Date.now();
  // Each benchmark starts with the disk quiet: the last one's writes flushed (settleDisk), and
  // no folder removed until the end (benchDir).
  const run = async (name: string, fn: () => Promise<void>) => {
    if (!only.has(name)) return;
    await settleDisk();
    await fn();
  };
  try {
    await run("efficiency", async () => {
      const n = Number(opts.samples);
      say(await efficiency("cnn", catalogModel("cnn").build(), "image", [n, 3, 32, 32], 256));
      if (existsSync(RESNET50)) say(await efficiency("ResNet-50 (zoo, batch 1)", readFileSync(RESNET50), "gpu_0/data_0", [192, 3, 224, 224], 1));
      else note(`ResNet-50 efficiency skipped: ${RESNET50} is not here`);
    });
    await run("dispatch", async () => say(await dispatchRate(40_000)));
    await run("transport", async () => say(await transportRate(16_384)));
    await run("latency", async () => say(await latency(500, 3000)));
    await run("fleet", async () => {
      const r = await fleetSize(Number(opts.fleet));
      for (const f of r.figures) say(f);
      note(r.note);
    });
    await run("memory", async () => say(await memory(Number(opts.memoryGb))));
    await run("heterogeneous", async () => say(await heterogeneous(16384)));
    await run("failover", async () => {
      say(await failover("SIGKILL", 10_000));
      say(await failover("SIGSTOP", 3_000));
    });
    await run("redundancy", async () => say(await redundancy(40_000)));
  } finally {
    await removeBenchDirs();
  }
  const ceiling = transportCeiling(figures, CNN_INPUT_BYTES);
  if (ceiling) note(ceiling);
  const seconds = Math.round((Date.now() - started) / 1000);
  if (opts.json) process.stdout.write(`${JSON.stringify({ seconds, figures, notes }, null, 2)}\n`);
  else process.stdout.write(`(${seconds} s)\n`);
}

function fmt(x: number): string {
  return Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(2);
}

await main();
