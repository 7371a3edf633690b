/**
 * TLS on the client side (workers, swarm, CLI): a `--ca` file read and checked once while
 * options are validated, and TLS failures turned into one E_TLS error that says what to do.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { EdgepoolError } from "../errors.js";

/** A PEM file read while options are validated: its path (for messages and units) and its text. */
export interface PemFile {
  file: string;
  pem: string;
}

/** Reads a PEM file of the given kind ("CERTIFICATE", "PRIVATE KEY"); a problem is a zod issue. */
export function pemFileSchema(kind: "CERTIFICATE" | "PRIVATE KEY") {
  return z
    .string()
    .min(1)
    .transform((raw, ctx): PemFile => {
      const file = path.resolve(raw);
      let pem: string;
      try {
        pem = readFileSync(file, "utf8");
      } catch (err) {
        const code = typeof err === "object" && err !== null && "code" in err ? String(err.code) : "unreadable";
        ctx.addIssue({ code: "custom", message: `cannot read ${file} (${code})` });
        return z.NEVER;
      }
      // "PRIVATE KEY" also matches "RSA PRIVATE KEY" and "EC PRIVATE KEY".
      if (!new RegExp(`-----BEGIN [A-Z ]*${kind}-----`).test(pem)) {
        ctx.addIssue({ code: "custom", message: `${file} is not a PEM ${kind.toLowerCase()} file (no -----BEGIN ... ${kind}----- line)` });
        return z.NEVER;
      }
      return { file, pem };
    });
}

/** `--ca <file>`: extra certificate authorities to trust, for a coordinator with a self-signed certificate. */
export const CaFileSchema = pemFileSchema("CERTIFICATE");

/** OpenSSL verification failures, as Node reports them in `err.code`. */
const UNTRUSTED = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "CERT_SIGNATURE_FAILURE",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "INVALID_CA",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

function errCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 4; depth++) {
    if (typeof e === "object" && "code" in e && typeof e.code === "string") return e.code;
    e = typeof e === "object" && "cause" in e ? e.cause : undefined;
  }
  return undefined;
}

/**
 * An E_TLS error for a failed TLS handshake with `origin`, or null when `err` is something
 * else. The message names the cause and the fix (`--ca` or the right scheme).
 */
export function tlsError(err: unknown, origin: string): EdgepoolError | null {
  const code = errCode(err);
  if (!code) return null;
  const reason = err instanceof Error ? err.message : code;
  if (UNTRUSTED.has(code)) {
    return new EdgepoolError(
      "E_TLS",
      `the TLS certificate of ${origin} is not trusted (${reason}); for a self-signed certificate pass its CA with --ca <file.pem> or set EDGEPOOL_CA`,
      { cause: err },
    );
  }
  // EPROTO: OpenSSL found no TLS on the other end (a plain HTTP port answers in clear text).
  if (code === "EPROTO" || code === "ERR_SSL_WRONG_VERSION_NUMBER" || code === "ERR_SSL_PACKET_LENGTH_TOO_LONG") {
    return new EdgepoolError(
      "E_TLS",
      `${origin} does not speak TLS on that port (TLS handshake failed: ${code}); use http:// or ws:// for a coordinator started without --tls-cert`,
      { cause: err },
    );
  }
  return null;
}
