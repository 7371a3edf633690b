/** Coordinator options: friendly input validated once into one normalized object. */
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { z } from "zod";
import { parseConfig } from "../shared/config.js";
import { pemFileSchema } from "../shared/node/tls.js";
import { TokenSchema, TokensFileSchema, defaultTokenName, tokenDigest, type Role, type TokenEntry } from "./http/auth.js";
import { MAX_SHARD_BYTES } from "./scheduling/planner.js";

/** The smallest --max-frame-mb: adaptive shards (planner.ts) must fit a frame with room to spare. */
const MIN_FRAME_MB = (2 * MAX_SHARD_BYTES) / 2 ** 20;

/** A flag given once, several times, or not at all (commander hands over a string or an array). */
const TokenListSchema = z.preprocess(
  (v) => (v === undefined || v === null || v === "" ? [] : Array.isArray(v) ? v : [v]),
  z.array(TokenSchema),
);

/** `--tokens-file <file.json>`: read and validated here, so a bad file fails at start, naming the flag. */
const TokensFilePathSchema = z
  .string()
  .min(1)
  .transform((raw, ctx) => {
    const file = path.resolve(raw);
    let value: unknown;
    try {
      value = JSON.parse(readFileSync(file, "utf8"));
    } catch (err) {
      const why = typeof err === "object" && err !== null && "code" in err ? String(err.code) : "not valid JSON";
      ctx.addIssue({ code: "custom", message: `cannot read ${file} (${why})` });
      return z.NEVER;
    }
    const r = TokensFileSchema.safeParse(value);
    if (!r.success) {
      const issue = r.error.issues[0];
      // The issue's path and message only: never the value, which may be a token.
      ctx.addIssue({ code: "custom", message: `${file}: ${issue?.path.join(".") ?? ""} ${issue?.message ?? "invalid"}; expected {"tokens":[{"token":"...","role":"worker|client|admin","name":"alice"}]}` });
      return z.NEVER;
    }
    return r.data.tokens;
  });

/** True for addresses only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || /^::ffff:127\./.test(h);
}

export const CoordinatorConfigSchema = z
  .object({
    port: z.coerce.number().int().min(0).max(65535).default(7070),
    host: z.string().min(1).default("127.0.0.1"),
    dataDir: z.string().min(1).default(path.join(os.homedir(), ".edgepool", "coordinator")),
    /** Shards sent ahead of the ones running, per worker, so transfer hides behind compute. */
    prefetch: z.coerce.number().int().min(0).max(16).default(1),
    /** How often the throughput summary is logged while work runs. */
    statsIntervalMs: z.coerce.number().int().positive().default(5000),
    /** A connection that has not said hello by then is closed. */
    helloTimeoutMs: z.coerce.number().int().positive().default(10_000),
    /**
     * Largest WebSocket message (a shard or result frame), in MiB; a job whose fixed shards
     * cannot fit is refused. At least twice the adaptive shard cap, so adaptive shards always fit.
     */
    maxFrameMb: z.coerce
      .number()
      .min(MIN_FRAME_MB, `at least ${MIN_FRAME_MB} (adaptive shards move up to ${MAX_SHARD_BYTES / 2 ** 20} MiB)`)
      .max(4096)
      .default(256),
    /** Largest model upload, in MiB. */
    maxModelMb: z.coerce.number().positive().max(4096).default(2048),
    /** Largest input (.npy) upload, in GiB. */
    maxInputGb: z.coerce.number().positive().default(256),
    /** Queued or running jobs one client (token name) may have at once; an open pool counts as one client. */
    maxJobsPerClient: z.coerce.number().int().positive().default(16),
    /** WebSocket messages one connection may send per second (a burst of twice that is allowed). */
    maxMessagesPerSec: z.coerce.number().int().positive().default(2000),
    /** WebSocket connections at once, workers and handshakes together; more are refused with 503. */
    maxWorkers: z.coerce.number().int().positive().default(100_000),
    /** WebSocket connections that have not said hello yet; more are refused with 503. */
    maxHandshakes: z.coerce.number().int().positive().default(1000),
    /** An HTTP request whose headers have not all arrived by then is answered 408 and dropped. */
    headersTimeoutMs: z.coerce.number().int().min(100).default(10_000),
    /** A whole HTTP request, body included (uploads), must arrive within this. */
    requestTimeoutMs: z.coerce.number().int().min(100).default(3_600_000),
    /** An idle keep-alive HTTP connection is closed after this. */
    keepAliveTimeoutMs: z.coerce.number().int().min(100).default(5_000),
    /** Target duration of one shard on the worker that gets it; shard sizes follow from it. */
    targetShardMs: z.coerce.number().int().positive().default(500),
    /** Deadline for a shard on a worker not yet measured on its model. */
    probeTimeoutMs: z.coerce.number().int().positive().default(60_000),
    /** Slack added to every deadline predicted from a measured rate. */
    minShardTimeoutMs: z.coerce.number().int().positive().default(5_000),
    /** A worker silent this long (no message, no pong) is declared dead. */
    heartbeatTimeoutMs: z.coerce.number().int().min(500).default(10_000),
    /**
     * How long a close waits for requests in flight and worker sockets to finish before it
     * cuts them off (the second SIGINT/SIGTERM exits at once anyway).
     */
    closeGraceMs: z.coerce.number().int().min(0).default(5_000),
    /** Attempts per shard before its job fails. */
    maxShardAttempts: z.coerce.number().int().min(1).max(100).default(3),
    logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    logFormat: z.enum(["json", "pretty"]).default("json"),
    /** Tokens by role; any token at all turns authentication on (see auth.ts). */
    workerToken: TokenListSchema.default([]),
    clientToken: TokenListSchema.default([]),
    adminToken: TokenListSchema.default([]),
    tokensFile: TokensFilePathSchema.optional(),
    /** Allow an open pool (no tokens) on a non-loopback address. */
    insecure: z.boolean().default(false),
    /** Serve https and wss with this certificate chain and key (PEM files). */
    tlsCert: pemFileSchema("CERTIFICATE").optional(),
    tlsKey: pemFileSchema("PRIVATE KEY").optional(),
  })
  .transform((c, ctx) => {
    const { workerToken, clientToken, adminToken, tokensFile, tlsCert, tlsKey, ...rest } = c;
    // Tokens become digests here: the normalized config never holds a secret.
    const byDigest = new Map<string, TokenEntry>();
    const given: Array<{ token: string; role: Role; name?: string | undefined; flag: string }> = [
      ...workerToken.map((token) => ({ token, role: "worker" as const, flag: "workerToken" })),
      ...clientToken.map((token) => ({ token, role: "client" as const, flag: "clientToken" })),
      ...adminToken.map((token) => ({ token, role: "admin" as const, flag: "adminToken" })),
      ...(tokensFile ?? []).map((t) => ({ ...t, flag: "tokensFile" })),
    ];
    for (const g of given) {
      const digest = tokenDigest(g.token);
      const key = digest.toString("hex");
      const seen = byDigest.get(key);
      if (seen && seen.role !== g.role) {
        ctx.addIssue({ code: "custom", path: [g.flag], message: `one token is given for both the ${seen.role} and the ${g.role} role; give each role its own token` });
        return z.NEVER;
      }
      if (!seen) byDigest.set(key, { role: g.role, name: g.name ?? defaultTokenName(g.role, digest), digest });
    }
    const tokens = [...byDigest.values()];
    if (tokens.length > 0) {
      if (!tokens.some((t) => t.role === "worker")) {
        ctx.addIssue({ code: "custom", path: ["workerToken"], message: "tokens are configured but none for workers, so no worker could join; add --worker-token (or a worker entry in --tokens-file)" });
        return z.NEVER;
      }
      if (!tokens.some((t) => t.role !== "worker")) {
        ctx.addIssue({ code: "custom", path: ["clientToken"], message: "tokens are configured but none for clients or admins, so nobody could submit a job; add --client-token or --admin-token" });
        return z.NEVER;
      }
    } else if (!isLoopbackHost(rest.host) && !rest.insecure) {
      ctx.addIssue({
        code: "custom",
        path: ["host"],
        message:
          `${rest.host} is reachable from other machines and no tokens are configured, so anyone could join as a worker or read every job; ` +
          "give --worker-token and --client-token (or --tokens-file), or pass --insecure to run an open pool on a network you trust",
      });
      return z.NEVER;
    }
    if (rest.headersTimeoutMs > rest.requestTimeoutMs) {
      ctx.addIssue({ code: "custom", path: ["headersTimeoutMs"], message: `${rest.headersTimeoutMs} ms is longer than --request-timeout (${rest.requestTimeoutMs} ms); the headers are part of the request` });
      return z.NEVER;
    }
    if ((tlsCert === undefined) !== (tlsKey === undefined)) {
      ctx.addIssue({ code: "custom", path: [tlsCert ? "tlsKey" : "tlsCert"], message: "give --tls-cert and --tls-key together" });
      return z.NEVER;
    }
    const limits = {
      maxFrameBytes: Math.floor(rest.maxFrameMb * 2 ** 20),
      maxModelBytes: Math.floor(rest.maxModelMb * 2 ** 20),
      maxInputBytes: Math.floor(rest.maxInputGb * 2 ** 30),
    };
    return { ...rest, ...limits, tokens, tls: tlsCert && tlsKey ? { cert: tlsCert.pem, key: tlsKey.pem } : null };
  });

export type CoordinatorConfig = z.infer<typeof CoordinatorConfigSchema>;
export type CoordinatorOptions = z.input<typeof CoordinatorConfigSchema>;

/** Validates coordinator options; a bad value becomes an E_CONFIG error naming the flag. */
export function parseCoordinatorConfig(input: unknown): CoordinatorConfig {
  const config = parseConfig(CoordinatorConfigSchema, input);
  return { ...config, dataDir: path.resolve(config.dataDir) };
}
