/** Helpers the benchmarks share: reading a process's memory and timing one job. */
import { readFile } from "node:fs/promises";
import { CoordinatorClient } from "../coordinator/client.js";
import { submitJob } from "../coordinator/submit-job.js";

/** A process's resident (VmRSS) or peak resident (VmHWM) memory in bytes, from /proc. */
export async function procMemory(pid: number, field: "VmRSS" | "VmHWM"): Promise<number> {
  const text = await readFile(`/proc/${pid}/status`, "utf8");
  const m = text.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"));
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

/** Runs one single-input job and returns its rates over the job's wall time on the coordinator. */
export async function jobRate(url: string, model: Uint8Array, input: { name: string; file: string }, out: string, shardSize?: number) {
  const { job } = await submitJob(new CoordinatorClient(url), { model, inputs: { [input.name]: input.file }, outDir: out, ...(shardSize ? { shardSize } : {}) });
  const secs = (job.finishedAt! - job.startedAt!) / 1000;
  return { samplesPerSec: job.rows / secs, shardsPerSec: job.shards / secs };
}
