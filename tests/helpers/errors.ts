import { EdgepoolError } from "../../shared/errors.js";

/** The error code `fn` throws, or "no error". */
export function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof EdgepoolError ? err.code : `not an EdgepoolError: ${String(err)}`;
  }
  return "no error";
}
