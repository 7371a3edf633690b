/** Helpers the benchmarks share: reading a process's memory and timing one job. */
import { execFile } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { promisify } from "node:util";
import { tempDir } from "../tests/helpers/procs.js";
import { CoordinatorClient } from "../coordinator/client.js";

/** A process's resident (VmRSS) or peak resident (VmHWM) memory in bytes, from /proc. */
export async function procMemory(pid: number, field: "VmRSS" | "VmHWM"): Promise<number> {
  const text = await readFile(`/proc/${pid}/status`, "utf8");
  const m = text.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"));
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

/**
 * CPU seconds (user + system) in a /proc `stat` line. Linux counts them in clock ticks of
 * 1/100 s (USER_HZ, 100 on every mainstream architecture).
 */
function statCpuSeconds(stat: string): number {
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** CPU seconds a process has used so far, all threads, from /proc. */
export async function cpuSeconds(pid: number): Promise<number> {
  return statCpuSeconds(await readFile(`/proc/${pid}/stat`, "utf8"));
}

/**
 * CPU seconds a process's threads other than its main one have used so far (for a
 * coordinator: libuv's pool doing its file reads, writes and flushes, as V8 runs on one thread).
 */
export async function helperThreadsCpuSeconds(pid: number): Promise<number> {
  let secs = 0;
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    if (tid === String(pid)) continue;
    try {
      secs += statCpuSeconds(await readFile(`/proc/${pid}/task/${tid}/stat`, "utf8"));
    } catch {
      // a thread that ended between the listing and the read
    }
  }
  return secs;
}

/**
 * Runs one single-input job and returns its rates over the job's wall time on the coordinator.
 * The job starts once its upload is flushed to disk: the writeback of a large input would
 * otherwise take CPU from the workers while the job is timed.
 */
export async function jobRate(url: string, model: Uint8Array, input: { name: string; file: string }, shardSize?: number) {
  const client = new CoordinatorClient(url);
  const sha256 = (await client.uploadModel(model)).sha256;
  const upload = (await client.uploadNpy(input.file)).id;
  await settleDisk();
  const created = await client.createJob({ model: sha256, inputs: { [input.name]: upload }, ...(shardSize ? { shardSize } : {}) });
  const job = await client.waitForJob(created.id, { intervalMs: 1000 });
  if (job.state !== "done") throw new Error(`bench job ${job.id} ${job.state}: ${job.error ?? ""}`);
  const secs = (job.finishedAt! - job.startedAt!) / 1000;
  return { samplesPerSec: job.rows / secs, shardsPerSec: job.shards / secs };
}

const removals: Array<() => Promise<void>> = [];

/**
 * A temporary folder for one benchmark, removed only when the whole run ends: deleting the
 * gigabytes one benchmark wrote keeps the file system busy (discards, journal) for seconds,
 * and the file operations of the next benchmark would pay for it.
 */
export async function benchDir(prefix: string): Promise<{ dir: string }> {
  const t = await tempDir(prefix);
  removals.push(t.remove);
  return { dir: t.dir };
}

export async function removeBenchDirs(): Promise<void> {
  await Promise.allSettled(removals.splice(0).map((remove) => remove()));
}

/** Writes out the dirty pages the last benchmark left, so the next one does not share the disk with that writeback. */
export async function settleDisk(): Promise<void> {
  await promisify(execFile)("sync");
}
