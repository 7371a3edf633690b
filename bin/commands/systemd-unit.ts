/**
 * `edgepool worker --print-systemd-unit`: a ready unit file for running this worker as a
 * service, with the options given on the command line (validated like a real start) carried
 * as EDGEPOOL_* variables, so the unit can be edited without touching ExecStart.
 */
import os from "node:os";
import { fileURLToPath } from "node:url";
import { parseWorkerConfig, type WorkerConfig } from "../../worker/config.js";
import { fail } from "../cli-util.js";
import { NODE_FLAGS } from "../../shared/node/node-flags.js";

const BIN = fileURLToPath(new URL("../edgepool.js", import.meta.url));
/** Where the unit reads EDGEPOOL_TOKEN from. */
export const TOKEN_ENV_FILE = "/etc/edgepool/worker.env";

/** Quotes one `Environment=` assignment for systemd (quotes, backslashes and % specifiers escaped). */
function envLine(name: string, value: string | number): string {
  const v = `${name}=${value}`.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/%/g, "%%");
  return `Environment="${v}"`;
}

/** Quotes a path for ExecStart when it holds spaces. */
function execArg(p: string): string {
  return /[\s"\\]/.test(p) ? `"${p.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"` : p;
}

export function systemdUnit(config: WorkerConfig, opts: { node: string; bin: string; user: string }): string {
  const drainSec = Math.ceil(config.drainTimeoutMs / 1000) + 10;
  return [
    "[Unit]",
    `Description=edgepool worker ${config.name} for ${config.coordinator}`,
    "Wants=network-online.target",
    "After=network-online.target",
    "",
    "[Service]",
    "Type=simple",
    `User=${opts.user}`,
    envLine("EDGEPOOL_COORDINATOR", config.coordinator),
    envLine("EDGEPOOL_NAME", config.name),
    envLine("EDGEPOOL_SLOTS", config.slots),
    envLine("EDGEPOOL_THREADS", config.threads),
    envLine("EDGEPOOL_MAX_CPU", config.maxCpu),
    envLine("EDGEPOOL_STATE_DIR", config.stateDir),
    envLine("EDGEPOOL_LOG_LEVEL", config.logLevel),
    envLine("EDGEPOOL_LOG_FORMAT", config.logFormat),
    ...(config.ca ? [envLine("EDGEPOOL_CA", config.ca.file)] : []),
    // Unit files are world-readable, so a token never goes in one: it lives in a file only root reads.
    `# Worker token (if the coordinator uses tokens): EDGEPOOL_TOKEN=... in ${TOKEN_ENV_FILE}, chmod 600`,
    `EnvironmentFile=${config.token ? "" : "-"}${TOKEN_ENV_FILE}`,
    `ExecStart=${[opts.node, ...NODE_FLAGS, opts.bin].map(execArg).join(" ")} worker`,
    // The worker reconnects by itself while it runs; Restart covers crashes and reboots of the box.
    "Restart=always",
    "RestartSec=5",
    // SIGTERM drains: queued shards go back to the coordinator, running ones finish.
    "KillSignal=SIGTERM",
    `TimeoutStopSec=${drainSec}`,
    // A spare machine belongs to its people first: the worker only gets CPU and disk nobody else wants.
    "Nice=19",
    "CPUSchedulingPolicy=idle",
    "IOSchedulingClass=idle",
    "NoNewPrivileges=yes",
    "PrivateTmp=yes",
    "ProtectSystem=strict",
    `ReadWritePaths=${execArg(config.stateDir)}`,
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

export async function printSystemdUnitCommand(raw: Record<string, unknown>): Promise<number> {
  try {
    const config = parseWorkerConfig(raw);
    process.stdout.write(systemdUnit(config, { node: process.execPath, bin: BIN, user: os.userInfo().username }));
    if (config.token) {
      process.stderr.write(
        `edgepool worker: the token is not in the unit; put it in ${TOKEN_ENV_FILE}:\n` +
          `  sudo install -d -m 700 /etc/edgepool && sudo install -m 600 /dev/null ${TOKEN_ENV_FILE}\n` +
          `  echo "EDGEPOOL_TOKEN=<token>" | sudo tee ${TOKEN_ENV_FILE} >/dev/null\n`,
      );
    }
    return 0;
  } catch (err) {
    return fail("worker", err);
  }
}
