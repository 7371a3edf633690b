/** Small HTTP helpers: JSON bodies parsed from unknown with zod, errors as {error:{code,message}}. */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { z } from "zod";
import { EdgepoolError, httpStatusFor, toEdgepoolError } from "../shared/errors.js";

const MAX_JSON_BODY = 1024 * 1024;

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

export function sendError(res: ServerResponse, err: unknown): void {
  const e = toEdgepoolError(err);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, httpStatusFor(e.code), { error: { code: e.code, message: e.message } });
}

/** Reads a JSON body (at most 1 MiB) and validates it. */
export async function readJson<T>(req: IncomingMessage, schema: z.ZodType<T>): Promise<T> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const b = chunk as Buffer;
    size += b.byteLength;
    if (size > MAX_JSON_BODY) throw new EdgepoolError("E_BAD_REQUEST", `JSON body exceeds ${MAX_JSON_BODY} bytes`);
    chunks.push(b);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString("utf8"));
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
