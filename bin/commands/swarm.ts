/**
 * `edgepool swarm`: connect many simulated workers to a coordinator from one process, to
 * test the coordinator at pool sizes no lab has, and run until SIGINT/SIGTERM.
 */
import { z } from "zod";
import { createLogger, type Logger, flushLogs } from "../../shared/node/logger.js";
import { Swarm, parseSwarmConfig, type SwarmStats } from "../../worker/swarm/swarm.js";
import { LogOptionsSchema, fail, onceSignalled, parseOptions } from "../cli-util.js";

const SwarmCommandSchema = LogOptionsSchema.extend({
  /** How often the summary line is logged. */
  statsIntervalMs: z.coerce.number().int().min(100).max(3_600_000).default(5000),
});


/** Runs a swarm until a signal; resolves the exit code (0 after a clean close, 2 for bad options). */
export async function swarmCommand(opts: Record<string, unknown>): Promise<number> {
  const signals = onceSignalled();
  let swarm: Swarm;
  let log: Logger;
  let statsIntervalMs: number;
  try {
    const config = parseSwarmConfig(opts);
    const cmd = parseOptions(SwarmCommandSchema, { ...opts, statsIntervalMs: opts.statsInterval });
    statsIntervalMs = cmd.statsIntervalMs;
    log = createLogger({ name: "swarm", level: cmd.logLevel, format: cmd.logFormat, stderr: true });
    swarm = new Swarm(config, log);
    log.info(
      { coordinator: config.coordinator, count: config.count, profile: config.profile.map((p) => `${p.tier}:${p.share.toFixed(3)}`).join(","), dropoutPerMin: config.dropoutPerMin, jitter: config.jitter },
      "swarm starting",
    );
  } catch (err) {
    signals.dispose();
    return fail("swarm", err);
  }

  let announced = false;
  swarm.on("allConnected", (ms) => {
    if (announced) return;
    announced = true;
    process.stdout.write(`edgepool swarm: ${swarm.stats.count} virtual workers connected in ${(ms / 1000).toFixed(1)} s\n`);
  });

  let last: SwarmStats & { at: number } = { ...swarm.stats, at: Date.now() };
  let statsTimer: NodeJS.Timeout | null = null;
  const logSummary = () => {
    const now = Date.now();
    const s = swarm.stats;
    const secs = Math.max(1e-3, (now - last.at) / 1000);
    log.info(
      {
        count: s.count,
        connected: s.connected,
        dialling: s.dialling,
        pending: s.pending,
        shardsDone: s.shardsDone,
        samplesDone: s.samplesDone,
        shardsPerSec: Math.round(((s.shardsDone - last.shardsDone) / secs) * 10) / 10,
        samplesPerSec: Math.round(((s.samplesDone - last.samplesDone) / secs) * 10) / 10,
        shardErrors: s.shardErrors,
        dropouts: s.dropouts,
        connectionFailures: s.connectionFailures,
      },
      "swarm summary",
    );
    last = { ...s, at: now };
  };
  const scheduleStats = () => {
    statsTimer = setTimeout(() => {
      logSummary();
      scheduleStats();
    }, statsIntervalMs);
    statsTimer.unref();
  };

  swarm.start();
  scheduleStats();
  const signal = await signals.promise;
  if (statsTimer) clearTimeout(statsTimer);
  log.info({ signal }, "swarm closing");
  await swarm.close();
  logSummary();
  await flushLogs(log);
  signals.dispose();
  return 0;
}
