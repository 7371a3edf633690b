/**
 * Worker options: friendly input (flags, env, a config file) validated once into one
 * normalized object that is passed down. Nothing below this module reads `process.env`.
 */
import os from "node:os";
import path from "node:path";
import { z } from "zod";
import { parseConfig } from "../shared/config.js";
import { CaFileSchema } from "../shared/node/tls.js";
import { TokenOptionSchema } from "../shared/token.js";
import { FaultInjectSchema } from "./fault-inject.js";

/**
 * Accepts ws:// and wss:// as they are, and http(s):// as the same host's WebSocket URL,
 * because people copy the coordinator's address from a browser's address bar.
 */
function coordinatorUrl(raw: string, ctx: z.RefinementCtx): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(raw.trim())) {
    ctx.addIssue({ code: "custom", message: `'${raw}' has no scheme; give it as ws://host:port (for example ws://${raw.trim()})` });
    return z.NEVER;
  }
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    ctx.addIssue({ code: "custom", message: `'${raw}' is not a URL; give it as ws://host:port (for example ws://127.0.0.1:7070)` });
    return z.NEVER;
  }
  if (url.protocol === "http:") url.protocol = "ws:";
  else if (url.protocol === "https:") url.protocol = "wss:";
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    ctx.addIssue({ code: "custom", message: `'${raw}' uses ${url.protocol}; give it as ws://host:port or wss://host:port` });
    return z.NEVER;
  }
  if (url.username || url.password) {
    ctx.addIssue({ code: "custom", message: "credentials in the coordinator URL are not supported; remove the user:password@ part" });
    return z.NEVER;
  }
  if (url.searchParams.has("token")) {
    ctx.addIssue({ code: "custom", message: "give the token with --token or EDGEPOOL_TOKEN, not in the coordinator URL (URLs are logged)" });
    return z.NEVER;
  }
  url.hash = "";
  return url.toString();
}

/** "~/x" means the home directory, as a shell would expand it. */
function expandHome(p: string): string {
  if (p === "~") return os.homedir();
  if (p.startsWith("~/")) return path.join(os.homedir(), p.slice(2));
  return p;
}

const Ms = z.coerce.number().int().positive().max(24 * 3600 * 1000);

export const WorkerConfigSchema = z
  .object({
    coordinator: z.string().min(1, "give the coordinator address, for example ws://127.0.0.1:7070").transform(coordinatorUrl),
    name: z
      .string()
      .trim()
      .min(1)
      .max(128)
      .default(() => os.hostname().slice(0, 128) || "worker"),
    /** Shards executed at once. */
    slots: z.coerce.number().int().min(1).max(64).default(1),
    /** ONNX Runtime intra-op threads per session. */
    threads: z.coerce.number().int().min(1).max(1024).default(1),
    /**
     * CPU cap in percent, as a duty cycle per slot: after a shard that computed for c ms, the
     * slot rests c * (100 / maxCpu - 1) ms before it takes the next one.
     */
    maxCpu: z.coerce.number().min(1, "give a percentage from 1 to 100").max(100, "give a percentage from 1 to 100").default(100),
    /** Holds the persistent worker id and the model cache (`models/`). */
    stateDir: z
      .string()
      .min(1)
      .default(() => path.join(os.homedir(), ".edgepool", "worker"))
      .transform((p) => path.resolve(expandHome(p))),
    reconnectMinMs: Ms.default(250),
    reconnectMaxMs: Ms.default(10_000),
    /** A connection whose `welcome` has not arrived by then is dropped and dialled again. */
    helloTimeoutMs: Ms.default(10_000),
    /** Dialling (TCP + TLS + WebSocket upgrade) that takes longer is abandoned and retried. */
    connectTimeoutMs: Ms.default(10_000),
    /** The coordinator is pinged this often; no pong by the next ping means it is gone. */
    pingIntervalMs: Ms.default(15_000),
    /** One model download may take this long. */
    downloadTimeoutMs: Ms.default(120_000),
    /** Graceful shutdown waits this long for running shards before closing anyway. */
    drainTimeoutMs: Ms.default(30_000),
    /** How often the work summary is logged while shards run. */
    statsIntervalMs: Ms.default(10_000),
    /** Largest frame accepted from the coordinator. */
    maxPayloadBytes: z.coerce
      .number()
      .int()
      .min(1 << 20)
      .max(2 ** 32)
      .default(512 * (1 << 20)),
    logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    logFormat: z.enum(["json", "pretty"]).default("json"),
    /** Worker token of a coordinator started with tokens; sent when dialling and downloading models, never logged. */
    token: TokenOptionSchema,
    /** CA certificate to trust for a wss:// coordinator with a self-signed certificate. */
    ca: CaFileSchema.optional(),
    /** Test facility only (EDGEPOOL_FAULT_INJECT=corrupt:<rate>): corrupt that share of results. */
    faultInject: FaultInjectSchema.optional(),
  })
  .refine((c) => c.reconnectMinMs <= c.reconnectMaxMs, {
    message: "reconnectMinMs must not exceed reconnectMaxMs",
    path: ["reconnectMinMs"],
  });

export type WorkerConfig = z.infer<typeof WorkerConfigSchema>;
export type WorkerOptions = z.input<typeof WorkerConfigSchema>;

/** Validates worker options; a bad value becomes an E_CONFIG error naming the option. */
export function parseWorkerConfig(input: unknown): WorkerConfig {
  return parseConfig(WorkerConfigSchema, input);
}
