/**
 * Models addressed by sha256. Uploaded bytes must parse as ONNX; their I/O signature and
 * FLOPs per sample are computed once and kept in the job database.
 */
import { mkdir, readFile, rename, rm, stat } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import path from "node:path";
import { EdgepoolError } from "../../shared/errors.js";
import { countFlops } from "../../shared/onnx/flops.js";
import { readModelInfo } from "../../shared/onnx/model-info.js";
import { bodyToFile } from "./uploads.js";
import { Limiter } from "../../shared/limiter.js";
import type { JobDb, ModelRow } from "./job-db.js";

export const SHA256_RE = /^[0-9a-f]{64}$/;

export class ModelStore {
  private readonly parsing = new Limiter(1);
  /** Records read so far: a model never changes (its id is its hash), so each is read once. */
  private readonly known = new Map<string, ModelRow>();

  constructor(
    private readonly dir: string,
    private readonly db: JobDb,
    private readonly maxModelBytes: number,
  ) {}

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
  }

  /** Path of a stored model file; ids are checked so no network string reaches a path unchecked. */
  pathOf(sha256: string): string {
    if (!SHA256_RE.test(sha256)) throw new EdgepoolError("E_BAD_REQUEST", `'${sha256.slice(0, 80)}' is not a sha256 model id`);
    return path.join(this.dir, `${sha256}.onnx`);
  }

  get(sha256: string): ModelRow | undefined {
    if (!SHA256_RE.test(sha256)) return undefined;
    const cached = this.known.get(sha256);
    if (cached) return cached;
    const row = this.db.getModel(sha256);
    if (row) this.known.set(sha256, row);
    return row;
  }

  require(sha256: string): ModelRow {
    const m = this.get(sha256);
    if (!m) throw new EdgepoolError("E_NOT_FOUND", `model ${sha256} is not on this coordinator; upload it first (POST /api/models)`);
    return m;
  }

  /** Stores an uploaded model body and returns its record. Idempotent for the same bytes. */
  async upload(req: IncomingMessage): Promise<ModelRow> {
    const received = await bodyToFile(req, this.dir, this.maxModelBytes, { hash: true, what: "model upload", flag: "--max-model-mb" });
    const sha256 = received.sha256!;
    try {
      const existing = this.db.getModel(sha256);
      if (existing) return existing;
      // The model must parse as ONNX before it is accepted (E_MODEL_INVALID otherwise). One
      // at a time: parsing holds the whole file in memory, and uploads may come in parallel.
      const record = await this.parsing.run(async () => {
        const bytes = new Uint8Array(await readFile(received.file));
        const info = readModelInfo(bytes);
        const flops = countFlops(bytes);
        return { ...info, flopsPerSample: flops.flopsPerSample };
      });
      await rename(received.file, this.pathOf(sha256));
      this.db.putModel(sha256, received.bytes, record);
      return { sha256, bytes: received.bytes, info: record };
    } finally {
      await rm(received.file, { force: true });
    }
  }

  /** Size of a stored model file, or undefined if it is missing on disk. */
  async sizeOf(sha256: string): Promise<number | undefined> {
    try {
      return (await stat(this.pathOf(sha256))).size;
    } catch {
      return undefined;
    }
  }
}
