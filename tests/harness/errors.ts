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

/** The EdgepoolError `promise` rejects with; fails the test if it resolves or rejects with anything else. */
export async function errorOf(promise: Promise<unknown>): Promise<EdgepoolError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof EdgepoolError) return err;
    throw new Error(`expected an EdgepoolError, got ${String(err)}`);
  }
  throw new Error("expected an error, none was thrown");
}
