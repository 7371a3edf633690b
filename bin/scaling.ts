/**
 * `edgepool bench scaling`: pooled throughput against pool size, and the Universal
 * Scalability Law fitted to it.
 *
 * - Real workers: 1..k worker processes on this machine run the same compute-bound job;
 *   the points are samples/s (past the core count they measure oversubscription, honestly).
 * - Virtual workers: a swarm of n simulated devices answers tiny shards almost at once, so
 *   the coordinator is the bottleneck; the points are shards/s, and the fit extrapolates
 *   the coordinator's capacity to fleets larger than this machine can hold.
 * The two series are never mixed.
 */
import path from "node:path";
import { catalogModel } from "../shared/onnx/catalog.js";
import { createLogger } from "../shared/node/logger.js";
import { writeNpyFile } from "../shared/node/npy-file.js";
import { seededNormal } from "../shared/onnx/builder.js";
import { type UslFit, fitUsl, uslPredict } from "../shared/usl.js";
import { type Proc, startProc, startWorker, tempDir } from "../harness/procs.js";
import { Swarm, parseSwarmConfig } from "../worker/swarm/swarm.js";
import { procMemory } from "../shared/node/system.js";
import { jobRate } from "../coordinator/client/job-rate.js";

export interface ScalingPoint {
  n: number;
  x: number;
  unit: "samples/s" | "shards/s";
  virtual: boolean;
  rssMb: number;
}

export interface ScalingResult {
  real: { points: ScalingPoint[]; fit: UslFit | null };
  virtual: { points: ScalingPoint[]; fit: UslFit | null; predicted: Array<{ n: number; shardsPerSec: number }> };
}

async function rssMb(pid: number): Promise<number> {
  return (await procMemory(pid, "VmRSS")) / 2 ** 20;
}

function tryFit(points: ScalingPoint[]): UslFit | null {
  try {
    return fitUsl(points.map((p) => ({ n: p.n, x: p.x })));
  } catch {
    return null;
  }
}

export async function scalingBench(opts: { maxReal: number; virtualCounts: number[]; say: (line: string) => void }): Promise<ScalingResult> {
  const tmp = await tempDir("bench-scaling");
  const procs: Proc[] = [];
  try {
    const coordinator = startProc(["coordinator", "--port", "0", "--data-dir", path.join(tmp.dir, "c"), "--log-level", "info"]);
    procs.push(coordinator);
    const url = (await coordinator.waitFor(/listening on (http:\/\/\S+)/))[1]!;
    const pid = coordinator.child.pid!;

    // Real workers, compute-bound model.
    const wide = catalogModel("wide-mlp").build();
    const rows = 40_000;
    const wideFile = path.join(tmp.dir, "wide.npy");
    await writeNpyFile(wideFile, { dtype: "float32", dims: [rows, 64], data: seededNormal(1, rows * 64, 1) });
    const real: ScalingPoint[] = [];
    const workers: Proc[] = [];
    for (let k = 1; k <= opts.maxReal; k++) {
      const w = await startWorker(coordinator, url, `real-${k}`, path.join(tmp.dir, `w${k}`));
      workers.push(w);
      procs.push(w);
      if (k === 1) await jobRate(url, wide, { name: "x", file: wideFile }); // warm-up
      const r = await jobRate(url, wide, { name: "x", file: wideFile });
      real.push({ n: k, x: r.samplesPerSec, unit: "samples/s", virtual: false, rssMb: await rssMb(pid) });
      opts.say(`real workers ${k}: ${r.samplesPerSec.toFixed(0)} samples/s (wide-mlp)`);
    }
    for (const w of workers) await w.stop();

    // Virtual workers, tiny shards: the coordinator's dispatch capacity.
    const mlp = catalogModel("mlp").build();
    const virtual: ScalingPoint[] = [];
    const log = createLogger({ name: "swarm", level: "warn", stderr: true });
    for (const count of opts.virtualCounts) {
      const swarm = new Swarm(parseSwarmConfig({ coordinator: url.replace(/^http/, "ws"), count, profile: "flagship", jitter: 0 }), log);
      try {
        swarm.start();
        const ms = await swarm.whenAllConnected(300_000);
        const shardRows = 4;
        const shards = Math.max(4000, count);
        const file = path.join(tmp.dir, `v${count}.npy`);
        await writeNpyFile(file, { dtype: "float32", dims: [shards * shardRows, 256], data: seededNormal(2, shards * shardRows * 256, 1) });
        const r = await jobRate(url, mlp, { name: "x", file }, shardRows);
        const rss = await rssMb(pid);
        virtual.push({ n: count, x: r.shardsPerSec, unit: "shards/s", virtual: true, rssMb: rss });
        opts.say(`virtual workers ${count}: connected in ${(ms / 1000).toFixed(1)} s; ${r.shardsPerSec.toFixed(0)} shards/s; coordinator RSS ${rss.toFixed(0)} MB`);
      } finally {
        await swarm.close();
      }
    }
    const vfit = tryFit(virtual);
    return {
      real: { points: real, fit: tryFit(real) },
      virtual: {
        points: virtual,
        fit: vfit,
        predicted: vfit ? [1e4, 1e5, 1e6].map((n) => ({ n, shardsPerSec: uslPredict(vfit, n) })) : [],
      },
    };
  } finally {
    for (const p of procs.reverse()) await p.stop();
    await tmp.remove();
  }
}

/** Prints a fit as one line. */
export function describeFit(label: string, fit: UslFit | null, unit: string): string {
  if (!fit) return `${label}: too few points for a USL fit`;
  const peak = Number.isFinite(fit.peakN) ? `peak ${fit.peakX.toFixed(0)} ${unit} at N=${fit.peakN.toFixed(0)}` : "no peak (kappa = 0)";
  return `${label}: lambda ${fit.lambda.toFixed(1)} ${unit} per worker, sigma (contention) ${fit.sigma.toExponential(2)}, kappa (coherency) ${fit.kappa.toExponential(2)}, R^2 ${fit.r2.toFixed(3)}; ${peak}`;
}
