/**
 * Who may do what on a coordinator: bearer tokens with one of three roles.
 *
 * - `worker`: joins over WebSocket and downloads models (`GET /models/<sha>`, `GET /api/models/<sha>`).
 * - `client`: uploads models and inputs, creates jobs, and reads, cancels and downloads
 *   the outputs of its own jobs; status, report data and the dashboard feed show it only its jobs.
 * - `admin`: everything a client may, on every job, plus `/metrics`.
 *
 * With no tokens configured the pool is open (everything allowed, nothing filtered), which
 * the configuration only permits on loopback or with `--insecure`. Static pages (the
 * dashboard, the browser worker's page) and `/api/health` are public either way; everything
 * else under `/api`, `/models` and `/metrics` needs a token of the right role.
 *
 * Tokens are kept only as sha256 digests. A presented token is hashed and compared with
 * every known digest by `timingSafeEqual`, without stopping at a match, so neither the
 * token's length nor which entry matched shows in the timing. Tokens are never logged;
 * URLs that may carry one pass through `redactUrl` first.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { STATUS_CODES, type IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { z } from "zod";
import { EdgepoolError, httpStatusFor } from "../../shared/errors.js";
import { errorBody } from "../api/errors.js";

export const ROLES = ["worker", "client", "admin"] as const;
export type Role = (typeof ROLES)[number];

/** A configured token: its digest, never the token itself. */
export interface TokenEntry {
  role: Role;
  /** Owner name recorded on the jobs this token creates (its `name`, or a short hash id). */
  name: string;
  digest: Buffer;
}

export interface Principal {
  role: Role;
  name: string;
}

/** What a caller may see of the jobs: all of them, or one owner's. */
export interface Viewer {
  /** An admin, or anyone on an open pool. */
  seesAll: boolean;
  /** The caller's name, recorded as the owner of jobs it creates; null on an open pool. */
  owner: string | null;
}

/** An open pool (no tokens) or an admin: every job. */
export const SEES_ALL: Viewer = { seesAll: true, owner: null };

/** `Sec-WebSocket-Protocol` entries of this form carry a token (browsers cannot set headers on a WebSocket). */
export const TOKEN_PROTOCOL_PREFIX = "edgepool.token.";
/** The subprotocol the coordinator selects when a browser offers one. */
export const WS_PROTOCOL = "edgepool";

export const TokenSchema = z
  .string()
  .min(16, "a token must be at least 16 characters; make one with: openssl rand -hex 32")
  .max(1024, "a token must be at most 1024 characters")
  .regex(/^[\x21-\x7e]+$/, "a token must be printable ASCII without spaces");

export const TokensFileSchema = z
  .object({
    tokens: z.array(
      z
        .object({
          token: TokenSchema,
          role: z.enum(ROLES),
          name: z
            .string()
            .trim()
            .min(1)
            .max(64)
            .regex(/^[\x21-\x7e]+$/, "a name must be printable ASCII without spaces")
            .optional(),
        })
        .strict(),
    ),
  })
  .strict();

export function tokenDigest(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

/** A name for a token given without one: role and a short hash, never the token. */
export function defaultTokenName(role: Role, digest: Buffer): string {
  return `${role}-${createHash("sha256").update(digest).digest("hex").slice(0, 8)}`;
}

/** Which roles may call a route; null for public routes. Admin may do anything a client may. */
function rolesFor(method: string, parts: readonly string[]): readonly Role[] | null {
  const [a, b, c] = parts;
  if (a === "models") return ["worker", "admin"];
  if (a === "metrics") return ["admin"];
  if (a !== "api") return null;
  // The health check, and the QR code of the public /join page (it encodes that page's URL).
  if (b === "health" || b === "join-qr.svg") return null;
  if (b === "models" && c && method === "GET") return ["worker", "client", "admin"];
  return ["client", "admin"];
}

const HOW = "pass --token <token> or set EDGEPOOL_TOKEN (over HTTP: an 'Authorization: Bearer <token>' header)";

function bearer(req: IncomingMessage): string | undefined {
  const h = req.headers.authorization;
  if (!h) return undefined;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(h);
  return m ? m[1] : "";
}

export class Authenticator {
  constructor(private readonly entries: readonly TokenEntry[]) {}

  /** False for an open pool: no tokens configured. */
  get enabled(): boolean {
    return this.entries.length > 0;
  }

  /** The principal whose token this is, or null. Constant time in the token and the matching entry. */
  identify(token: string): Principal | null {
    const d = tokenDigest(token);
    let found: TokenEntry | null = null;
    for (const e of this.entries) {
      if (timingSafeEqual(d, e.digest) && found === null) found = e;
    }
    return found ? { role: found.role, name: found.name } : null;
  }

  /**
   * Checks an HTTP request against its route's roles and says which jobs it may see.
   * Throws E_AUTH (no or unknown token) or E_FORBIDDEN (a role that may not do this).
   */
  httpAccess(req: IncomingMessage, url: URL, method: string, parts: readonly string[]): Viewer {
    if (!this.enabled) return SEES_ALL;
    const roles = rolesFor(method, parts);
    if (roles === null) return { seesAll: false, owner: null };
    // EventSource cannot send headers: the dashboard's feed may carry the token in the query.
    const fromQuery = parts[0] === "api" && parts[1] === "events" ? url.searchParams.get("token") ?? undefined : undefined;
    const token = bearer(req) || fromQuery;
    const p = this.require(token, `${method} ${url.pathname}`);
    if (!roles.includes(p.role)) {
      const need = roles.filter((r) => r !== "admin").join(" or ") || "admin";
      throw new EdgepoolError("E_FORBIDDEN", `a ${p.role} token may not ${method} ${url.pathname}; use a ${need} token`);
    }
    return { seesAll: p.role === "admin", owner: p.name };
  }

  /**
   * Checks a WebSocket upgrade: it must carry a worker token, in an `Authorization: Bearer`
   * header (Node), a `?token=` query parameter, or a `Sec-WebSocket-Protocol` entry
   * `edgepool.token.<token>` (browsers). Returns null for an open pool.
   */
  upgradeAccess(req: IncomingMessage, url: URL): Principal | null {
    if (!this.enabled) return null;
    const token = bearer(req) || url.searchParams.get("token") || protocolToken(req);
    const p = this.require(token, "joining as a worker");
    if (p.role !== "worker") throw new EdgepoolError("E_FORBIDDEN", `a ${p.role} token cannot join as a worker; give the worker a worker token`);
    return p;
  }

  private require(token: string | undefined | null, what: string): Principal {
    if (!token) throw new EdgepoolError("E_AUTH", `this coordinator requires a token for ${what}; ${HOW}`);
    const p = this.identify(token);
    if (!p) throw new EdgepoolError("E_AUTH", `the coordinator does not accept this token for ${what}; check the token you pass with --token or EDGEPOOL_TOKEN`);
    return p;
  }
}

function protocolToken(req: IncomingMessage): string | undefined {
  const h = req.headers["sec-websocket-protocol"];
  if (!h) return undefined;
  for (const p of h.split(",")) {
    const v = p.trim();
    if (v.startsWith(TOKEN_PROTOCOL_PREFIX)) return v.slice(TOKEN_PROTOCOL_PREFIX.length);
  }
  return undefined;
}

/**
 * ws `handleProtocols`: answer `edgepool` when offered, never a token entry (which would
 * echo the secret back). A browser that offers subprotocols fails the connection unless one
 * is selected, so it should offer `["edgepool", "edgepool.token.<token>"]`.
 */
export function selectProtocol(protocols: Set<string>): string | false {
  if (protocols.has(WS_PROTOCOL)) return WS_PROTOCOL;
  for (const p of protocols) if (!p.startsWith(TOKEN_PROTOCOL_PREFIX)) return p;
  return false;
}

/** Answers a refused WebSocket upgrade with a plain HTTP error before any WebSocket opens. */
export function refuseUpgrade(socket: Duplex, e: EdgepoolError): void {
  const status = httpStatusFor(e.code);
  const body = JSON.stringify(errorBody(e));
  const head = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Error"}`,
    "Connection: close",
    "Content-Type: application/json; charset=utf-8",
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...(status === 401 ? ['WWW-Authenticate: Bearer realm="edgepool"'] : []),
  ];
  if (socket.writable) socket.end(`${head.join("\r\n")}\r\n\r\n${body}`);
  // A peer that keeps its end open is cut off.
  setTimeout(() => socket.destroy(), 1000).unref();
}

/** A request URL safe to log: the value of any token-like query parameter replaced. */
export function redactUrl(url: string | undefined): string {
  return (url ?? "").replace(/([?&](?:access_)?token=)[^&#]*/gi, "$1[redacted]");
}
