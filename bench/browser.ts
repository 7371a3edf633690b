/**
 * `npm run bench:browser`: the browser worker's speed beside the Node worker's, on the same
 * model, machine and coordinator, in one run.
 *
 * For each model and thread count: a Node worker (onnxruntime-node, CPU) runs a job alone,
 * then headless Chromium on /join (onnxruntime-web; WebAssembly SIMD, multi-threaded since
 * the page is cross-origin isolated) runs the same job alone. Each side gets a warm-up job
 * first (model download, session creation). Two figures per side: the job's samples/s over
 * its wall time on the coordinator (what the pool gets, transfers included), and the
 * worker's compute samples/s as the coordinator measured it (rows / compute ms).
 *
 * Flags: --models cnn,wide-mlp  --threads 1,2  --samples 8192  --shard-size 256  --json
 */
import path from "node:path";
import { Command } from "commander";
import { CoordinatorClient } from "../coordinator/client/client.js";
import { submitJob } from "../coordinator/client/submit-job.js";
import { catalogModel } from "../shared/onnx/catalog.js";
import { writeNpyFile } from "../shared/node/npy-file.js";
import { launchChromium } from "../harness/chromium.js";
import { startProc, startWorker, tempDir, type Proc } from "../harness/procs.js";

interface Side {
  worker: string;
  runtime: string;
  backend: string;
  threads: number;
  jobSamplesPerSec: number;
  computeSamplesPerSec: number;
}

interface Row {
  model: string;
  samples: number;
  shardSize: number;
  node: Side;
  browser: Side;
}

interface RawWorker {
  name: string;
  backend: string | null;
  runtime: { name: string; version: string };
  threads: number;
  samplesDone: number;
  computeMs: number;
}

async function worker(url: string, name: string): Promise<RawWorker> {
  const status = (await (await fetch(`${url}/api/status`)).json()) as { workers: RawWorker[] };
  const w = status.workers.find((x) => x.name === name);
  if (!w) throw new Error(`worker ${name} is not connected`);
  return w;
}

/** Runs the job twice (warm-up, then measured) and returns the measured side. */
async function measure(url: string, name: string, model: Uint8Array, inputName: string, file: string, out: string, shardSize: number): Promise<Side> {
  const client = new CoordinatorClient(url);
  await submitJob(client, { model, inputs: { [inputName]: file }, outDir: out, shardSize });
  const before = await worker(url, name);
  const { job } = await submitJob(client, { model, inputs: { [inputName]: file }, outDir: out, shardSize });
  const after = await worker(url, name);
  const secs = (job.finishedAt! - job.startedAt!) / 1000;
  return {
    worker: name,
    runtime: `${after.runtime.name} ${after.runtime.version}`,
    backend: after.backend ?? "unknown",
    threads: after.threads,
    jobSamplesPerSec: job.rows / secs,
    computeSamplesPerSec: ((after.samplesDone - before.samplesDone) * 1000) / (after.computeMs - before.computeMs),
  };
}

async function main(): Promise<void> {
  const opts = new Command("bench:browser")
    .option("--models <names>", "catalog models", "cnn,wide-mlp")
    .option("--threads <list>", "thread counts to compare", "1,2")
    .option("--samples <n>", "samples per job", "8192")
    .option("--shard-size <n>", "rows per shard", "256")
    .option("--json", "print one JSON object")
    .parse(process.argv)
    .opts<{ models: string; threads: string; samples: string; shardSize: string; json?: boolean }>();
  const samples = Number(opts.samples);
  const shardSize = Number(opts.shardSize);
  const rows: Row[] = [];
  const tmp = await tempDir("bench-browser");
  const coordinator = startProc(["coordinator", "--port", "0", "--data-dir", path.join(tmp.dir, "c"), "--log-level", "info"]);
  const browser = await launchChromium();
  const procs: Proc[] = [coordinator];
  try {
    const url = (await coordinator.waitFor(/listening on (http:\/\/\S+)/))[1]!;
    for (const modelName of opts.models.split(",").map((m) => m.trim())) {
      const entry = catalogModel(modelName);
      const model = entry.build();
      const inputs = entry.sampleInputs(samples, 7);
      const [inputName, x] = Object.entries(inputs)[0]!;
      if (Object.keys(inputs).length !== 1) throw new Error(`${modelName} has several inputs; this bench takes single-input models`);
      const file = path.join(tmp.dir, `${modelName}.npy`);
      await writeNpyFile(file, x);
      for (const threads of opts.threads.split(",").map(Number)) {
        const nodeName = `node-${modelName}-${threads}`;
        const node = await startWorker(coordinator, url, nodeName, path.join(tmp.dir, nodeName), ["--threads", String(threads)]);
        procs.push(node);
        const nodeSide = await measure(url, nodeName, model, inputName, file, path.join(tmp.dir, "out"), shardSize);
        await node.stop();

        const browserName = `browser-${modelName}-${threads}`;
        const page = await browser.newPage();
        const joined = coordinator.waitFor(new RegExp(`"worker":"${browserName}"[^\\n]*worker joined`), 60_000);
        await page.goto(`${url}/join?name=${browserName}&threads=${threads}`);
        await joined;
        const browserSide = await measure(url, browserName, model, inputName, file, path.join(tmp.dir, "out"), shardSize);
        await page.close();
        rows.push({ model: modelName, samples, shardSize, node: nodeSide, browser: browserSide });
        if (!opts.json) {
          const f = (x: number) => x.toFixed(0).padStart(7);
          process.stdout.write(
            `${modelName}, ${threads} thread(s): browser (${browserSide.runtime}, ${browserSide.backend}, ${browserSide.threads} thread(s)) job ${f(browserSide.jobSamplesPerSec)} samples/s, compute ${f(browserSide.computeSamplesPerSec)} samples/s | ` +
              `node (${nodeSide.runtime}, ${nodeSide.backend}, ${nodeSide.threads} thread(s)) job ${f(nodeSide.jobSamplesPerSec)}, compute ${f(nodeSide.computeSamplesPerSec)} | ` +
              `browser/node compute ${(browserSide.computeSamplesPerSec / nodeSide.computeSamplesPerSec).toFixed(3)}\n`,
          );
        }
      }
    }
    if (opts.json) process.stdout.write(`${JSON.stringify({ rows }, null, 2)}\n`);
  } finally {
    await browser.close();
    for (const p of procs.reverse()) await p.stop();
    await tmp.remove();
  }
}

await main();
