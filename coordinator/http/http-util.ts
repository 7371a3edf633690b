/** Small HTTP helpers: JSON bodies parsed from unknown with zod, errors as {error:{code,message}}. */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { z } from "zod";
import { EdgepoolError, httpStatusFor, toEdgepoolError } from "../../shared/errors.js";
import { errorBody } from "../api/errors.js";

const MAX_JSON_BODY = 1024 * 1024;

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/** How long a connection whose request body was refused unread keeps draining before it is cut. */
const LINGER_MS = 2000;

export function sendError(res: ServerResponse, err: unknown): void {
  const e = toEdgepoolError(err);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const req = res.req as IncomingMessage | undefined;
  if (req && !req.complete) {
    // The body was refused unread (too large, bad token). Closing a socket with unread bytes
    // resets it, and a reset can destroy the answer before the client reads it; so no
    // "Connection: close" (Node would close right after the answer): the rest of the body is
    // read and dropped after the answer, and a client still sending after LINGER_MS is cut off.
    res.once("finish", () => {
      req.resume();
      setTimeout(() => {
        if (!req.complete) req.socket.destroy();
      }, LINGER_MS).unref();
    });
  }
  sendJson(res, httpStatusFor(e.code), errorBody(e));
}

/** The request's URL and its decoded path segments; a malformed URL or escape is E_BAD_REQUEST. */
export function parseRequestUrl(raw: string | undefined): { url: URL; parts: string[] } {
  try {
    const url = new URL(raw ?? "/", "http://x");
    return { url, parts: url.pathname.split("/").filter(Boolean).map(decodeURIComponent) };
  } catch (cause) {
    throw new EdgepoolError("E_BAD_REQUEST", "malformed request URL", { cause });
  }
}

/** The E_TOO_LARGE error for a body over `limit` bytes; `flag` names the coordinator option that sets it. */
export function tooLarge(what: string, limit: number, flag?: string): EdgepoolError {
  const where = flag ? ` (the coordinator's ${flag})` : "";
  return new EdgepoolError("E_TOO_LARGE", `${what} exceeds the limit of ${limit} bytes${where}`);
}

/** Refuses a body whose declared Content-Length is over `limit` before reading any of it. */
export function checkContentLength(req: IncomingMessage, limit: number, what: string, flag?: string): void {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(`${what} of ${declared} bytes`, limit, flag);
}

/** Reads a whole request body, refusing one over `limit` bytes (declared or as it streams). */
export async function readBody(req: IncomingMessage, limit: number, what: string, flag?: string): Promise<Buffer> {
  checkContentLength(req, limit, what, flag);
  const chunks: Buffer[] = [];
  let size = 0;
  // Not destroyed on an early exit, so the 413 can still be answered on this connection.
  for await (const chunk of req.iterator({ destroyOnReturn: false })) {
    const b = chunk as Buffer;
    size += b.byteLength;
    if (size > limit) throw tooLarge(what, limit, flag);
    chunks.push(b);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

/** Reads a JSON body (at most 1 MiB) and validates it. */
export async function readJson<T>(req: IncomingMessage, schema: z.ZodType<T>): Promise<T> {
  const body = await readBody(req, MAX_JSON_BODY, "JSON body");
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8"));
  } catch (cause) {
    throw new EdgepoolError("E_BAD_REQUEST", "request body is not valid JSON", { cause });
  }
  const r = schema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new EdgepoolError("E_BAD_REQUEST", `invalid request body: ${issue?.path.join(".") ?? ""} ${issue?.message ?? ""}`.trim());
  }
  return r.data;
}
