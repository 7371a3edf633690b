/**
 * `edgepool demo` (what `npm start` runs): a local pool of one worker process per core, a
 * job of thousands of samples on the catalog CNN, per-worker and pooled throughput, and a
 * check of the pooled outputs against a single-process ONNX Runtime run of the same inputs.
 */
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { z } from "zod";
import { CoordinatorClient } from "../../coordinator/client/client.js";
import { loadProfiles } from "../../coordinator/report/reference-profiles.js";
import { writeReport } from "../../coordinator/report/render.js";
import { submitJob } from "../../coordinator/client/submit-job.js";
import { catalogModel } from "../../shared/onnx/catalog.js";
import { EdgepoolError } from "../../shared/errors.js";
import { countFlops } from "../../shared/onnx/flops.js";
import { readNpyFile, writeNpyFile } from "../../shared/node/npy-file.js";
import { seededNormal } from "../../shared/onnx/builder.js";
import { readModelInfo } from "../../shared/onnx/model-info.js";
import { maxAbsDiff } from "../../shared/tensor/tensor-ops.js";
import type { Tensor } from "../../shared/tensor/tensor.js";
import { runLocally } from "../../worker/local-run.js";
import { fail, fmtRate, parseOptions, table } from "../cli-util.js";
import { LocalPool } from "../local-pool.js";

const DemoOptionsSchema = z.object({
  workers: z.coerce.number().int().min(1).max(64).default(Math.max(1, os.availableParallelism())),
  samples: z.coerce.number().int().min(1).max(10_000_000).default(8192),
  model: z.string().default("cnn"),
  shardSize: z.coerce.number().int().positive().optional(),
  reportDir: z.string().default("edgepool-report"),
});

const TOLERANCE = 1e-5;


export async function demoCommand(raw: Record<string, unknown>): Promise<number> {
  let pool: LocalPool | undefined;
  let dir: string | undefined;
  try {
    const opts = parseOptions(DemoOptionsSchema, raw);
    const model = catalogModel(opts.model).build();
    const info = readModelInfo(model);
    const input = info.inputs[0];
    const output = info.outputs[0];
    if (info.inputs.length !== 1 || !input || !output || input.dtype !== "float32") {
      throw new EdgepoolError("E_CONFIG", `the demo needs a catalog model with one float32 input; '${opts.model}' has ${info.inputs.length} inputs`);
    }
    const flops = countFlops(model).flopsPerSample;
    const dims = [opts.samples, ...input.shape.slice(1).map((d) => (typeof d === "number" ? d : 1))];
    const x: Tensor = { dtype: "float32", dims, data: seededNormal(7, dims.reduce((a, b) => a * b, 1), 1) };
    dir = await mkdtemp(path.join(os.tmpdir(), "edgepool-demo-"));
    const inputFile = path.join(dir, "input.npy");
    await writeNpyFile(inputFile, x);

    process.stdout.write(`edgepool demo: ${opts.workers} worker processes, ${opts.samples} samples of '${opts.model}' (${(flops / 1e6).toFixed(2)} MFLOP/sample)\n`);
    const reportDir = path.resolve(opts.reportDir);
    await mkdir(reportDir, { recursive: true });
    const coordinatorLog = path.join(reportDir, "coordinator.log");
    await rm(coordinatorLog, { force: true });
    pool = await LocalPool.start({ workers: opts.workers, threads: 1, logLevel: "warn", coordinatorLog });
    const client = new CoordinatorClient(pool.coordinator.url);
    const { job, files } = await submitJob(client, {
      model,
      inputs: { [input.name]: inputFile },
      outDir: path.join(dir, "out"),
      ...(opts.shardSize ? { shardSize: opts.shardSize } : {}),
    });
    const status = pool.coordinator.status();
    const wallSec = (job.finishedAt! - job.startedAt!) / 1000;
    const pooled = job.rows / wallSec;

    const rows = status.workers.map((w) => [w.name, String(w.shardsDone), String(w.samplesDone), fmtRate(w.samplesPerSec), fmtRate((w.samplesPerSec * flops) / 1e9)]);
    process.stdout.write(`\n${table(["WORKER", "SHARDS", "SAMPLES", "SAMPLES/S", "GFLOP/S"], rows)}\n\n`);
    process.stdout.write(
      `pooled: ${job.rows} samples in ${job.shards} shards, ${wallSec.toFixed(2)} s wall: ${fmtRate(pooled)} samples/s, ${fmtRate((pooled * flops) / 1e9)} GFLOP/s\n`,
    );
    const reportData = pool.coordinator.reportData();
    await pool.close();
    pool = undefined;

    const pooledOut = await readNpyFile(files[output.name]!);
    const local = await runLocally(model, input.name, x, { chunk: 256, threads: opts.workers });
    const diff = maxAbsDiff(pooledOut, local.out);
    process.stdout.write(`local single process, ${opts.workers} threads (same cores, no pool): ${fmtRate(local.samplesPerSec)} samples/s; pool efficiency ${(pooled / local.samplesPerSec).toFixed(2)}\n`);
    if (!(diff <= TOLERANCE)) {
      throw new EdgepoolError("E_INFERENCE", `pooled outputs differ from the local run: max abs diff ${diff} > ${TOLERANCE}`);
    }
    process.stdout.write(`outputs match the local run: max abs diff ${diff.toExponential(2)} (tolerance ${TOLERANCE})\n`);

    const command = `npx edgepool demo --workers ${opts.workers} --samples ${opts.samples} --model ${opts.model}${opts.shardSize ? ` --shard-size ${opts.shardSize}` : ""}`;
    const { reportPath } = await writeReport(reportDir, reportData, await loadProfiles({}), { command });
    process.stdout.write(`report: ${reportPath} (coordinator log: ${coordinatorLog})\n`);
    return 0;
  } catch (err) {
    return fail("demo", err);
  } finally {
    await pool?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  }
}
