/**
 * The worker's persistent id: a random UUID written once to `<stateDir>/worker-id` and reused
 * on every start, so the coordinator recognises a machine across restarts and reconnects.
 */
import { randomUUID } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import { z } from "zod";
import { EdgepoolError } from "../shared/errors.js";

const WorkerIdSchema = z.uuid();

export const WORKER_ID_FILE = "worker-id";

function errnoCode(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && "code" in err && typeof err.code === "string" ? err.code : undefined;
}

/** Returns the id stored in `stateDir`, creating it (and the directory) on first use. */
export async function loadWorkerId(stateDir: string, log: Logger): Promise<string> {
  const file = path.join(stateDir, WORKER_ID_FILE);
  let text: string | undefined;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if (errnoCode(err) !== "ENOENT") {
      throw new EdgepoolError("E_IO", `cannot read the worker id from ${file}; check the permissions of stateDir`, { cause: err });
    }
  }
  if (text !== undefined) {
    const parsed = WorkerIdSchema.safeParse(text.trim());
    if (parsed.success) return parsed.data;
    // A half-written or hand-edited file must not keep the worker from starting; the cost of
    // replacing it is only that the coordinator sees a new machine.
    log.warn({ file }, "worker id file is corrupt; replacing it with a new id");
  }
  const id = randomUUID();
  try {
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    // Written beside and renamed over, so a crash mid-write never leaves a torn id behind.
    const tmp = `${file}.${process.pid}.${randomUUID()}.tmp`;
    await writeFile(tmp, `${id}\n`, { mode: 0o600 });
    await rename(tmp, file);
  } catch (err) {
    throw new EdgepoolError("E_IO", `cannot write the worker id to ${file}; check that stateDir is writable`, { cause: err });
  }
  log.info({ workerId: id, file }, "new worker id");
  return id;
}
