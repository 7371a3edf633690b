/**
 * Fleet size: how many idle workers one coordinator holds. Virtual workers (a swarm in this
 * process, over real sockets) connect to a coordinator process; the figures are its RSS per
 * connected worker and its CPU while they sit idle (answering liveness pings), against the
 * same coordinator with no workers.
 */
import { execFileSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { createLogger } from "../shared/node/logger.js";
import { startProc } from "../harness/procs.js";
import { Swarm, parseSwarmConfig } from "../worker/swarm/swarm.js";
import type { Figure } from "./figure.js";
import { benchDir } from "./measure.js";
import { procMemory } from "../shared/node/system.js";

/** This process's open-file limit: each connection is a descriptor here and in the coordinator. */
function openFileLimit(): number {
  try {
    return Number(execFileSync("sh", ["-c", "ulimit -n"], { encoding: "utf8" }).trim()) || 1024;
  } catch {
    return 1024;
  }
}

/** CPU seconds (user + system) a process has used, from /proc. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

/** Share of one core a process used over the next `ms`. */
async function cpuShare(pid: number, ms: number): Promise<number> {
  const a = await cpuSeconds(pid);
  await new Promise((r) => setTimeout(r, ms));
  return ((await cpuSeconds(pid)) - a) / (ms / 1000);
}

export async function fleetSize(target: number): Promise<{ figures: Figure[]; note: string }> {
  const limit = openFileLimit();
  const count = Math.min(target, limit - 300);
  const note =
    count < target
      ? `${count} virtual workers, not ${target}: the open-file limit here is ${limit} per process (ulimit -n), and each connection needs one in the coordinator`
      : `${count} virtual workers`;
  const tmp = await benchDir("bench-fleet");
  const coordinator = startProc(["coordinator", "--port", "0", "--data-dir", path.join(tmp.dir, "c"), "--log-level", "warn"]);
  let swarm: Swarm | undefined;
  try {
    const url = (await coordinator.waitFor(/listening on (http:\/\/\S+)/))[1]!;
    const pid = coordinator.child.pid!;
    await new Promise((r) => setTimeout(r, 1000));
    const idleRss = await procMemory(pid, "VmRSS");
    const idleCpu = await cpuShare(pid, 5000);
    swarm = new Swarm(parseSwarmConfig({ coordinator: url.replace(/^http/, "ws"), count, profile: "mid", jitter: 0 }), createLogger({ name: "swarm", level: "warn", stderr: true }));
    swarm.start();
    const connectMs = await swarm.whenAllConnected(600_000);
    await new Promise((r) => setTimeout(r, 3000)); // hellos settle, first pings go out
    const rss = await procMemory(pid, "VmRSS");
    const cpu = await cpuShare(pid, 10_000);
    const perWorkerKb = (rss - idleRss) / count / 1024;
    return {
      note: `${note}; connected in ${(connectMs / 1000).toFixed(1)} s`,
      figures: [
        { name: `fleet: coordinator RSS with ${count} idle virtual workers (${perWorkerKb.toFixed(1)} KB per worker)`, value: rss / 1e6, unit: "MB", baseline: idleRss / 1e6, baselineName: "no workers", ratio: rss / idleRss },
        { name: `fleet: coordinator CPU with ${count} idle virtual workers`, value: cpu * 100, unit: "% of a core", baseline: idleCpu * 100, baselineName: "no workers", ratio: idleCpu > 0 ? cpu / idleCpu : Number.POSITIVE_INFINITY },
      ],
    };
  } finally {
    await swarm?.close();
    await coordinator.stop();
  }
}
