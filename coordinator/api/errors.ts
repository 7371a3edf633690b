/** The body of every error answer (HTTP, and a refused WebSocket upgrade): one schema for server and client. */
import { z } from "zod";
import type { EdgepoolError } from "../../shared/errors.js";

export const ErrorBodySchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

export function errorBody(e: EdgepoolError): ErrorBody {
  return { error: { code: e.code, message: e.message } };
}
