/**
 * Errors from .npy file I/O name the file once: fs errors become E_IO with a reason a person
 * can act on, and an EdgepoolError raised deeper gets the path prefixed, unless its message
 * already names the file.
 */
import { EdgepoolError } from "../errors.js";

/** Errors whose message already names the file, so they are not prefixed twice. */
const namesFile = new WeakSet<EdgepoolError>();

/** An EdgepoolError whose message already names the file. */
export function errorNamingFile(code: "E_NPY" | "E_SHAPE" | "E_IO" | "E_STATE", message: string): EdgepoolError {
  const err = new EdgepoolError(code, message);
  namesFile.add(err);
  return err;
}

/** Wraps an fs error as E_IO naming the path; other EdgepoolErrors get the path prefixed. */
export function fileError(file: string, err: unknown): EdgepoolError {
  if (err instanceof EdgepoolError) {
    if (namesFile.has(err)) return err;
    const wrapped = new EdgepoolError(err.code, `${file}: ${err.message}`, { cause: err });
    namesFile.add(wrapped);
    return wrapped;
  }
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const reason =
    code === "ENOENT"
      ? "no such file"
      : code === "EACCES" || code === "EPERM"
        ? "permission denied"
        : code === "EISDIR"
          ? "is a directory, not a file"
          : code === "ENOSPC"
            ? "no space left on the device"
            : err instanceof Error
              ? err.message
              : String(err);
  const wrapped = new EdgepoolError("E_IO", `${file}: ${reason}`, { cause: err });
  namesFile.add(wrapped);
  return wrapped;
}
