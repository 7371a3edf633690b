/**
 * `npm run bench`: figures, each beside a baseline measured in the same run.
 *
 * - efficiency: pooled samples/s of a coordinator with 2 workers x 1 thread, against one
 *   local ONNX Runtime session with 2 intra-op threads on the same model and inputs;
 * - memory: the coordinator's peak RSS (VmHWM, a separate process) during a job whose
 *   inputs total >= 1 GB, against its RSS when idle with workers connected.
 *
 * `--json` prints one JSON object instead of lines. `--memory-gb <x>` sizes the memory job.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { Command } from "commander";
import { CoordinatorClient } from "../coordinator/client.js";
import { submitJob } from "../coordinator/submit-job.js";
import { catalogModel } from "../shared/catalog.js";
import { writeNpyFile } from "../shared/npy-file.js";
import { seededNormal } from "../shared/onnx/builder.js";
import { NpyRowWriter } from "../shared/npy-file.js";
import { runCli, startPool, tempDir } from "../tests/helpers/procs.js";

interface Figure {
  name: string;
  value: number;
  unit: string;
  baseline: number;
  baselineName: string;
  ratio: number;
}

async function procStatus(pid: number, field: "VmRSS" | "VmHWM"): Promise<number> {
  const text = await readFile(`/proc/${pid}/status`, "utf8");
  const m = text.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"));
  return m ? Number(m[1]) * 1024 : NaN;
}

async function localSamplesPerSec(model: Uint8Array, name: string, x: Float32Array, dims: number[], threads: number): Promise<number> {
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: threads, interOpNumThreads: 1 });
  const rows = dims[0]!;
  const per = x.length / rows;
  const chunk = 256;
  const run = async () => {
    for (let s = 0; s < rows; s += chunk) {
      const e = Math.min(rows, s + chunk);
      await session.run({ [name]: new ort.Tensor("float32", x.subarray(s * per, e * per), [e - s, ...dims.slice(1)]) });
    }
  };
  await run(); // warm-up
  const t0 = performance.now();
  await run();
  const secs = (performance.now() - t0) / 1000;
  await session.release();
  return rows / secs;
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
    const client = new CoordinatorClient(pool.url);
    await submitJob(client, { model, inputs: { image: file }, outDir: path.join(tmp.dir, "warm") }); // warm-up: sessions, caches
    const { job } = await submitJob(client, { model, inputs: { image: file }, outDir: path.join(tmp.dir, "out") });
    const pooled = job.rows / ((job.finishedAt! - job.startedAt!) / 1000);
    const local = await localSamplesPerSec(model, "image", x, dims, 2);
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
    const idle = await procStatus(pid, "VmRSS");
    const r = await runCli(["submit", "--coordinator", pool.url, "--model", "mlp", "--input", `x=${file}`, "--out", path.join(tmp.dir, "out"), "--quiet"], 600_000);
    if (r.code !== 0) throw new Error(`memory job failed: ${r.stderr}`);
    const peak = await procStatus(pid, "VmHWM");
    return { name: `memory: coordinator peak RSS, job with ${(rows * rowFloats * 4 / 1e9).toFixed(2)} GB of inputs`, value: peak / 1e6, unit: "MB", baseline: idle / 1e6, baselineName: "idle RSS with 2 workers", ratio: peak / idle };
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
    .parse(process.argv)
    .opts<{ json?: boolean; samples: string; memoryGb: string }>();
  const figures: Figure[] = [];
  const say = (f: Figure) => {
    figures.push(f);
    if (!opts.json) {
      process.stdout.write(`${f.name}: ${f.value.toFixed(1)} ${f.unit} | baseline (${f.baselineName}): ${f.baseline.toFixed(1)} ${f.unit} | ratio ${f.ratio.toFixed(3)}\n`);
    }
  };
  say(await efficiency(Number(opts.samples)));
  say(await memory(Number(opts.memoryGb)));
  if (opts.json) process.stdout.write(`${JSON.stringify({ figures }, null, 2)}\n`);
}

await main();
