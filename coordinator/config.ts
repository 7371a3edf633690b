/** Coordinator options: friendly input validated once into one normalized object. */
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { z } from "zod";
import { parseConfig } from "../shared/config.js";
import { pemFileSchema } from "../shared/tls.js";
import { TokenSchema, TokensFileSchema, defaultTokenName, tokenDigest, type Role, type TokenEntry } from "./auth.js";

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
    /** Target duration of one shard on the worker that gets it; shard sizes follow from it. */
    targetShardMs: z.coerce.number().int().positive().default(500),
    /** Deadline for a shard on a worker not yet measured on its model. */
    probeTimeoutMs: z.coerce.number().int().positive().default(60_000),
    /** Slack added to every deadline predicted from a measured rate. */
    minShardTimeoutMs: z.coerce.number().int().positive().default(5_000),
    /** A worker silent this long (no message, no pong) is declared dead. */
    heartbeatTimeoutMs: z.coerce.number().int().min(500).default(10_000),
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
    if ((tlsCert === undefined) !== (tlsKey === undefined)) {
      ctx.addIssue({ code: "custom", path: [tlsCert ? "tlsKey" : "tlsCert"], message: "give --tls-cert and --tls-key together" });
      return z.NEVER;
    }
    return { ...rest, tokens, tls: tlsCert && tlsKey ? { cert: tlsCert.pem, key: tlsKey.pem } : null };
  });

export type CoordinatorConfig = z.infer<typeof CoordinatorConfigSchema>;
export type CoordinatorOptions = z.input<typeof CoordinatorConfigSchema>;

/** Validates coordinator options; a bad value becomes an E_CONFIG error naming the flag. */
export function parseCoordinatorConfig(input: unknown): CoordinatorConfig {
  const config = parseConfig(CoordinatorConfigSchema, input);
  return { ...config, dataDir: path.resolve(config.dataDir) };
}
