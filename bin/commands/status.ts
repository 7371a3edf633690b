/** `edgepool status`: workers, jobs and pooled throughput of a coordinator. */
import { z } from "zod";
import { CoordinatorClient, type StatusView } from "../../coordinator/client/client.js";
import { toEdgepoolError } from "../../shared/errors.js";
import { ClientAuthSchema, clientOptions, fail, fmtRate, onceSignalled, parseOptions, table } from "../cli-util.js";
import { etaSeconds, fmtEta } from "../progress.js";

const StatusOptionsSchema = ClientAuthSchema.extend({
  coordinator: z.string().min(1),
  json: z.boolean().default(false),
  watch: z.boolean().default(false),
  intervalMs: z.coerce.number().int().min(200, "--interval must be at least 200 ms").max(3_600_000).default(2000),
});

/** Moves the cursor home and clears the screen, so a watched table redraws in place. */
const CLEAR = "\x1b[H\x1b[2J";

/** Most worker rows a table shows; the rest are counted in one line. */
const MAX_WORKER_ROWS = 50;

function ago(ms: number, now: number): string {
  const secs = Math.max(0, Math.round((now - ms) / 1000));
  return secs < 60 ? `${secs}s ago` : secs < 3600 ? `${Math.floor(secs / 60)}m ago` : `${Math.floor(secs / 3600)}h ago`;
}

/** The human view: pool line, real workers (virtual ones summarised), jobs with ETA. */
export function renderStatus(s: StatusView, now = Date.now()): string {
  const t = s.throughput;
  const real = s.workers.filter((w) => !w.virtual);
  const virtual = s.workers.length - real.length;
  const shown = real.slice(0, MAX_WORKER_ROWS);
  const lines = [
    `coordinator ${s.url} (edgepool ${s.version}, protocol ${s.protocol}, up ${s.uptimeSec} s)`,
    `pool: ${real.length} workers, ${real.filter((w) => w.busy).length} busy; ${fmtRate(t.samplesPerSec)} samples/s, ${fmtRate(t.gflopsPerSec)} GFLOP/s, ${fmtRate(t.shardsPerSec)} shards/s (last 10 s)`,
    ...(virtual > 0 ? [`virtual (simulated) workers: ${virtual}, ${s.virtualThroughput.totalShards} shards done; not counted in the figures above`] : []),
    "",
    real.length === 0
      ? "no workers connected"
      : table(
          ["WORKER", "PLATFORM", "CPUS", "THREADS", "SLOTS", "STATE", "SHARDS", "SAMPLES", "SAMPLES/S", "LAST SEEN"],
          shown.map((w) => [
            w.name, w.backend && w.backend !== "cpu" ? `${w.platform} (${w.backend})` : w.platform, String(w.cpus), String(w.threads), String(w.slots), w.quarantined ? "QUARANTINED" : w.state === "draining" ? "draining" : w.busy ? "busy" : "idle",
            String(w.shardsDone), String(w.samplesDone), fmtRate(w.samplesPerSec), ago(w.lastSeen, now),
          ]),
        ) + (real.length > shown.length ? `\n... and ${real.length - shown.length} more (--json lists all)` : ""),
    "",
    s.jobs.length === 0
      ? "no jobs"
      : table(
          ["JOB", "STATE", "PROGRESS", "SAMPLES", "SHARDS", "SAMPLES/S", "ETA", "ERROR"],
          s.jobs.slice(0, 20).map((j) => [
            j.id, j.state, `${(j.progress * 100).toFixed(1)}%`, `${j.samplesDone}/${j.rows}`, `${j.shardsDone}/${j.shards}`, fmtRate(j.samplesPerSec),
            j.state === "running" ? fmtEta(etaSeconds(j)) : "", j.error ?? "",
          ]),
        ),
  ];
  return lines.join("\n") + "\n";
}

export async function statusCommand(raw: Record<string, unknown>): Promise<number> {
  const signals = onceSignalled();
  try {
    const opts = parseOptions(StatusOptionsSchema, { ...raw, intervalMs: raw.interval });
    const client = new CoordinatorClient(opts.coordinator, clientOptions(opts));
    const render = (s: StatusView) => (opts.json ? `${JSON.stringify(s, opts.watch ? undefined : null, opts.watch ? undefined : 2)}\n` : renderStatus(s));
    if (!opts.watch) {
      process.stdout.write(render(await client.status()));
      return 0;
    }
    // --watch: redraw in place on a terminal; elsewhere (a pipe, a log) one snapshot after
    // another, JSON as one object per line. A coordinator that goes away is waited for.
    const tty = process.stdout.isTTY === true && !opts.json;
    for (;;) {
      let text: string;
      try {
        text = render(await client.status());
      } catch (err) {
        text = `edgepool status: ${toEdgepoolError(err).message}; retrying every ${opts.intervalMs} ms\n`;
      }
      process.stdout.write(tty ? `${CLEAR}${new Date().toLocaleTimeString()}  every ${opts.intervalMs / 1000} s, Ctrl-C to stop\n${text}` : opts.json ? text : `${text}\n`);
      const stop = await Promise.race([signals.promise.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), opts.intervalMs))]);
      if (stop) return 0;
    }
  } catch (err) {
    return fail("status", err);
  } finally {
    signals.dispose();
  }
}
