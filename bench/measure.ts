/** Temporary folders for benchmarks, removed once the whole run ends. */
import { tempDir } from "../harness/procs.js";

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
