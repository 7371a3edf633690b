/** `edgepool coordinator`: serve HTTP and WebSocket on one port until SIGINT/SIGTERM. */
import { Coordinator } from "../../coordinator/coordinator.js";
import { parseCoordinatorConfig } from "../../coordinator/config.js";
import { joinBanner, joinUrls } from "../../coordinator/join/urls.js";
import { createLogger } from "../../shared/node/logger.js";
import { fail, onceSignalled } from "../cli-util.js";

export async function coordinatorCommand(opts: Record<string, unknown>): Promise<number> {
  let coordinator: Coordinator;
  const signals = onceSignalled();
  try {
    const config = parseCoordinatorConfig({
      ...opts,
      statsIntervalMs: opts.statsInterval,
      heartbeatTimeoutMs: opts.heartbeatTimeout,
      targetShardMs: opts.shardMs,
      helloTimeoutMs: opts.helloTimeout,
      headersTimeoutMs: opts.headersTimeout,
      requestTimeoutMs: opts.requestTimeout,
    });
    const log = createLogger({ name: "coordinator", level: config.logLevel, format: config.logFormat });
    coordinator = await Coordinator.start(config, log);
    const ws = coordinator.url.replace(/^http/, "ws");
    process.stdout.write(`edgepool coordinator listening on ${coordinator.url} (workers: --coordinator ${ws})\n`);
    const tls = coordinator.url.startsWith("https:");
    process.stdout.write(await joinBanner(joinUrls(config.host, coordinator.port, { tls }), { tokenRequired: config.tokens.length > 0 }));
  } catch (err) {
    signals.dispose();
    return fail("coordinator", err);
  }
  // The first signal closes gracefully, by force after the grace period (closeGraceMs); a second one exits at once.
  await signals.promise;
  try {
    await coordinator.close();
  } catch (err) {
    return fail("coordinator", err);
  } finally {
    signals.dispose();
  }
  return 0;
}
