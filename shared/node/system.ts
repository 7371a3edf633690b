/** What a process costs, read from /proc (Linux), and a flush of dirty pages: for benchmarks and scaling runs. */
import { execFile } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { promisify } from "node:util";

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

/** Writes out the dirty pages the last benchmark left, so the next one does not share the disk with that writeback. */
export async function settleDisk(): Promise<void> {
  await promisify(execFile)("sync");
}
