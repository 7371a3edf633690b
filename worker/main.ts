/**
 * `edgepool worker`: options in, exit code out. The first SIGINT/SIGTERM drains (queued
 * shards are handed back, running ones finish and report) and resolves 0; a second one
 * resolves 1 at once. The caller owns process.exit, so this function can also be driven
 * from a test or another program.
 */
import { toEdgepoolError } from "../shared/errors.js";
import { createLogger, flushLogs } from "../shared/node/logger.js";
import { parseWorkerConfig, type WorkerConfig } from "./config.js";
import { WorkerDaemon } from "./daemon.js";
import { loadWorkerId } from "./identity.js";

/** Exit codes: 0 drained cleanly, 1 stopped abruptly or fatally, 2 bad options. */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;


/** Runs a worker daemon until a signal or a fatal error; resolves the process exit code. */
export async function runWorker(options: unknown): Promise<number> {
  let config: WorkerConfig;
  try {
    config = parseWorkerConfig(options);
  } catch (err) {
    process.stderr.write(`edgepool worker: ${toEdgepoolError(err).message} (see edgepool worker --help)\n`);
    return EXIT_USAGE;
  }
  const log = createLogger({ name: "worker", level: config.logLevel, format: config.logFormat });
  let workerId: string;
  try {
    workerId = await loadWorkerId(config.stateDir, log);
  } catch (err) {
    const e = toEdgepoolError(err);
    log.error({ code: e.code, err: e.message }, "cannot start the worker");
    await flushLogs(log);
    process.stderr.write(`edgepool worker: ${e.message}\n`);
    return EXIT_FAILED;
  }

  const daemon = new WorkerDaemon(config, { log, workerId });
  const code = await new Promise<number>((resolve) => {
    let settled = false;
    let signals = 0;
    const finish = (c: number): void => {
      if (settled) return;
      settled = true;
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      resolve(c);
    };
    const onSignal = (signal: NodeJS.Signals): void => {
      signals += 1;
      if (signals === 1) {
        log.info({ signal, drainTimeoutMs: config.drainTimeoutMs }, "draining; send the signal again to stop at once");
        void daemon.close();
      } else {
        log.warn({ signal }, "second signal: stopping at once");
        finish(EXIT_FAILED);
      }
    };
    daemon.once("fatal", (e) => process.stderr.write(`edgepool worker: ${e.message}\n`));
    daemon.once("closed", () => finish(daemon.fatal ? EXIT_FAILED : EXIT_OK));
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    try {
      daemon.start();
    } catch (err) {
      const e = toEdgepoolError(err);
      process.stderr.write(`edgepool worker: ${e.message}\n`);
      finish(e.code === "E_CONFIG" ? EXIT_USAGE : EXIT_FAILED);
    }
  });
  await flushLogs(log);
  return code;
}
