/** `edgepool status`: workers, jobs and pooled throughput of a coordinator. */
import { z } from "zod";
import { CoordinatorClient, type StatusView } from "../../coordinator/client.js";
import { fail, fmtRate, parseOptions, table } from "../cli-util.js";

const StatusOptionsSchema = z.object({ coordinator: z.string().min(1), json: z.boolean().default(false) });

export function renderStatus(s: StatusView): string {
  const t = s.throughput;
  const lines = [
    `coordinator ${s.url} (edgepool ${s.version}, protocol ${s.protocol}, up ${s.uptimeSec} s)`,
    `pool: ${s.workers.length} workers, ${s.workers.filter((w) => w.busy).length} busy; ${fmtRate(t.samplesPerSec)} samples/s, ${fmtRate(t.gflopsPerSec)} GFLOP/s, ${fmtRate(t.shardsPerSec)} shards/s (last 10 s)`,
    "",
    s.workers.length === 0
      ? "no workers connected"
      : table(
          ["WORKER", "PLATFORM", "CPUS", "THREADS", "SLOTS", "STATE", "SHARDS", "SAMPLES", "SAMPLES/S"],
          s.workers.map((w) => [w.name, w.platform, String(w.cpus), String(w.threads), String(w.slots), w.busy ? "busy" : "idle", String(w.shardsDone), String(w.samplesDone), fmtRate(w.samplesPerSec)]),
        ),
    "",
    s.jobs.length === 0
      ? "no jobs"
      : table(
          ["JOB", "STATE", "PROGRESS", "SAMPLES", "SHARDS", "SAMPLES/S", "ERROR"],
          s.jobs.slice(0, 20).map((j) => [j.id, j.state, `${(j.progress * 100).toFixed(1)}%`, `${j.samplesDone}/${j.rows}`, `${j.shardsDone}/${j.shards}`, fmtRate(j.samplesPerSec), j.error ?? ""]),
        ),
  ];
  return lines.join("\n") + "\n";
}

export async function statusCommand(raw: Record<string, unknown>): Promise<number> {
  try {
    const opts = parseOptions(StatusOptionsSchema, raw);
    const s = await new CoordinatorClient(opts.coordinator).status();
    process.stdout.write(opts.json ? `${JSON.stringify(s, null, 2)}\n` : renderStatus(s));
    return 0;
  } catch (err) {
    return fail("status", err);
  }
}
