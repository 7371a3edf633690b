/** Helpers shared by the CLI commands: option validation and one-line failures. */
import { z } from "zod";
import type { ClientOptions } from "../coordinator/client/client.js";
import { toEdgepoolError } from "../shared/errors.js";
import { CaFileSchema, type PemFile } from "../shared/node/tls.js";
import { TokenOptionSchema } from "../shared/token.js";

export const LogOptionsSchema = z.object({
  logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  logFormat: z.enum(["json", "pretty"]).default("json"),
});

export { parseConfig as parseOptions } from "../shared/config.js";

/** `--token` and `--ca` of the commands that talk to a coordinator over HTTP. */
export const ClientAuthSchema = z.object({
  token: TokenOptionSchema,
  ca: CaFileSchema.optional(),
});

/** CoordinatorClient options from validated `--token` / `--ca`. */
export function clientOptions(o: { token?: string | undefined; ca?: PemFile | undefined }): ClientOptions {
  return { ...(o.token ? { token: o.token } : {}), ...(o.ca ? { ca: o.ca.pem } : {}) };
}

/** Prints a failure as one line on stderr and returns the exit code. */
export function fail(command: string, err: unknown): number {
  const e = toEdgepoolError(err);
  process.stderr.write(`edgepool ${command}: error: ${e.message} [${e.code}]\n`);
  return e.code === "E_CONFIG" ? 2 : 1;
}

/** Resolves when the first SIGINT or SIGTERM arrives; a second one exits at once. */
export function onceSignalled(): { promise: Promise<NodeJS.Signals>; dispose: () => void } {
  let resolve!: (s: NodeJS.Signals) => void;
  const promise = new Promise<NodeJS.Signals>((r) => (resolve = r));
  let count = 0;
  const handler = (sig: NodeJS.Signals) => {
    count += 1;
    if (count === 1) resolve(sig);
    else process.exit(130);
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return {
    promise,
    dispose: () => {
      process.off("SIGINT", handler);
      process.off("SIGTERM", handler);
    },
  };
}

export function fmtRate(x: number): string {
  if (x >= 100) return x.toFixed(0);
  if (x >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

/** A plain-text table with left-aligned columns. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}
