/** The client side of tokens: the `--token` option and the header that carries it. */
import { z } from "zod";

/** `--token` / EDGEPOOL_TOKEN; an empty variable counts as absent. */
export const TokenOptionSchema = z
  .string()
  .max(4096)
  .regex(/^[\x21-\x7e]*$/, "a token is printable ASCII without spaces")
  .optional()
  .transform((v) => v || undefined);

/** `Authorization: Bearer <token>` when there is a token, nothing otherwise. */
export function authHeader(token: string | undefined): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}
