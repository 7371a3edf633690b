/**
 * The project's error family. Every error carries a string `code` from one table, a
 * message that tells the reader what to do, and the original `cause`. Code that reacts to
 * errors branches on `code`, never on message text.
 */

export const ERROR_CODES = {
  E_PROTOCOL: { http: 400, ws: 1002 },
  E_VERSION: { http: 400, ws: 4001 },
  E_BAD_REQUEST: { http: 400, ws: 1008 },
  E_NOT_FOUND: { http: 404, ws: 1008 },
  E_MODEL_INVALID: { http: 422, ws: 1008 },
  E_MODEL_LOAD: { http: 500, ws: 1011 },
  E_MODEL_HASH: { http: 502, ws: 1011 },
  E_SHAPE: { http: 422, ws: 1008 },
  E_DTYPE: { http: 422, ws: 1008 },
  E_NPY: { http: 422, ws: 1008 },
  E_INFERENCE: { http: 500, ws: 1011 },
  E_CANCELLED: { http: 409, ws: 1000 },
  E_STATE: { http: 409, ws: 1008 },
  E_TIMEOUT: { http: 504, ws: 1011 },
  E_UNAVAILABLE: { http: 503, ws: 1013 },
  /** Over a size limit: an upload, a JSON body, a frame, or a shard that would not fit in one. */
  E_TOO_LARGE: { http: 413, ws: 1009 },
  /** Over a rate or count limit: messages per second, active jobs per client. */
  E_RATE_LIMIT: { http: 429, ws: 1008 },
  E_CONFIG: { http: 400, ws: 1008 },
  /** No token, or one the coordinator does not know. */
  E_AUTH: { http: 401, ws: 1008 },
  /** A known token whose role may not do this. */
  E_FORBIDDEN: { http: 403, ws: 1008 },
  /** The TLS handshake failed: an untrusted certificate, or TLS spoken to a plain port. */
  E_TLS: { http: 502, ws: 1011 },
  E_IO: { http: 500, ws: 1011 },
  E_INTERNAL: { http: 500, ws: 1011 },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class EdgepoolError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "EdgepoolError";
    this.code = code;
  }
  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

/** True for any known error code string (e.g. one that came over the wire). */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(ERROR_CODES, value);
}

/** HTTP status for an error code. */
export function httpStatusFor(code: ErrorCode): number {
  return ERROR_CODES[code].http;
}

/** WebSocket close code for an error code. */
export function wsCloseCodeFor(code: ErrorCode): number {
  return ERROR_CODES[code].ws;
}

/** Wraps anything thrown into an EdgepoolError, keeping the original as `cause`. */
export function toEdgepoolError(err: unknown, fallback: ErrorCode = "E_INTERNAL"): EdgepoolError {
  if (err instanceof EdgepoolError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new EdgepoolError(fallback, message, { cause: err });
}
