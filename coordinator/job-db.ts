/**
 * Job state in SQLite (better-sqlite3) inside the data directory. Tensors are not stored
 * here: inputs and outputs stay .npy files beside the database. Writes are synchronous but
 * tiny (one row per shard completion) and WAL mode keeps them cheap.
 */
import Database from "better-sqlite3";
import { z } from "zod";
import { IoInfoSchema } from "../shared/onnx/model-info.js";
import { DTYPES } from "../shared/tensor.js";

export const JOB_STATES = ["queued", "running", "done", "failed", "cancelled"] as const;
export type JobState = (typeof JOB_STATES)[number];

/** An input or output tensor of a job: its .npy file, relative to the job's folder. */
export const TensorFileSchema = z.object({
  name: z.string(),
  file: z.string(),
  dtype: z.enum(DTYPES),
  shape: z.array(z.number().int().nonnegative()),
});
export type JobInput = z.infer<typeof TensorFileSchema>;
export type JobOutput = z.infer<typeof TensorFileSchema>;

export interface JobRow {
  id: string;
  model: string;
  state: JobState;
  rows: number;
  inputs: JobInput[];
  outputs: JobOutput[] | null;
  error: string | null;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  samplesDone: number;
  shardsDone: number;
  shardCount: number;
  nextRow: number;
  fixedShardSize: number | null;
  /** Result verification: each shard computed by `redundancy` workers and compared. */
  verification: Verification;
}

export const VerificationSchema = z.object({
  redundancy: z.number().int().min(1).max(9).default(1),
  /** Outputs agree when |a - b| <= atol + rtol * |b| element by element (floats); integers must be equal. */
  rtol: z.number().nonnegative().default(1e-4),
  atol: z.number().nonnegative().default(1e-5),
});
export type Verification = z.infer<typeof VerificationSchema>;

export interface ModelRow {
  sha256: string;
  bytes: number;
  info: z.infer<typeof ModelRecordSchema>;
}

export const ModelRecordSchema = z.object({
  inputs: z.array(IoInfoSchema),
  outputs: z.array(IoInfoSchema),
  opset: z.number(),
  fixedBatch: z.boolean(),
  flopsPerSample: z.number().nonnegative(),
});

const JobRecordSchema = z.object({
  id: z.string(),
  model: z.string(),
  state: z.enum(JOB_STATES),
  rows: z.number(),
  inputs: z.string(),
  outputs: z.string().nullable(),
  error: z.string().nullable(),
  created_at: z.number(),
  started_at: z.number().nullable(),
  finished_at: z.number().nullable(),
  samples_done: z.number(),
  shards_done: z.number(),
  shard_count: z.number(),
  next_row: z.number(),
  fixed_shard_size: z.number().nullable(),
  verification: z.string().nullable(),
});

const SCHEMA = `
CREATE TABLE IF NOT EXISTS models (
  sha256 TEXT PRIMARY KEY,
  bytes INTEGER NOT NULL,
  info TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY,
  model TEXT NOT NULL REFERENCES models(sha256),
  state TEXT NOT NULL,
  rows INTEGER NOT NULL,
  inputs TEXT NOT NULL,
  outputs TEXT,
  error TEXT,
  created_at INTEGER NOT NULL,
  started_at INTEGER,
  finished_at INTEGER,
  samples_done INTEGER NOT NULL DEFAULT 0,
  shards_done INTEGER NOT NULL DEFAULT 0,
  shard_count INTEGER NOT NULL DEFAULT 0,
  -- Rows before next_row have been cut into shards; shards are cut as workers ask, sized to them.
  next_row INTEGER NOT NULL DEFAULT 0,
  -- Rows per shard when the client fixed it; NULL lets shard sizes follow each worker's speed.
  fixed_shard_size INTEGER
);
CREATE TABLE IF NOT EXISTS shards (
  job_id TEXT NOT NULL REFERENCES jobs(id),
  idx INTEGER NOT NULL,
  start INTEGER NOT NULL,
  end INTEGER NOT NULL,
  done INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (job_id, idx)
);
`;

/** Columns of `jobs` added after its first schema: [name, type]. */
const MIGRATIONS: ReadonlyArray<readonly [string, string]> = [
  // JSON of VerificationSchema; NULL means no verification (redundancy 1).
  ["verification", "TEXT"],
];

export class JobDb {
  private readonly db: Database.Database;
  private closed = false;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    this.db.exec(SCHEMA);
    this.migrate();
  }

  /** Columns added after the first release, so a data directory from an older version opens. */
  private migrate(): void {
    const have = new Set((this.db.prepare("PRAGMA table_info(jobs)").all() as Array<{ name: string }>).map((c) => c.name));
    for (const [column, type] of MIGRATIONS) {
      if (!have.has(column)) this.db.exec(`ALTER TABLE jobs ADD COLUMN ${column} ${type}`);
    }
  }

  putModel(sha256: string, bytes: number, info: ModelRow["info"]): void {
    this.db
      .prepare("INSERT OR IGNORE INTO models (sha256, bytes, info, created_at) VALUES (?, ?, ?, ?)")
      .run(sha256, bytes, JSON.stringify(info), Date.now());
  }

  getModel(sha256: string): ModelRow | undefined {
    const row = this.db.prepare("SELECT sha256, bytes, info FROM models WHERE sha256 = ?").get(sha256) as
      | { sha256: string; bytes: number; info: string }
      | undefined;
    if (!row) return undefined;
    return { sha256: row.sha256, bytes: row.bytes, info: ModelRecordSchema.parse(JSON.parse(row.info)) };
  }

  insertJob(job: { id: string; model: string; rows: number; inputs: JobInput[]; createdAt: number; fixedShardSize: number | null; verification: Verification }): void {
    this.db
      .prepare("INSERT INTO jobs (id, model, state, rows, inputs, created_at, fixed_shard_size, verification) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?)")
      .run(job.id, job.model, job.rows, JSON.stringify(job.inputs), job.createdAt, job.fixedShardSize, JSON.stringify(job.verification));
  }

  /** Records a newly cut shard [start, end) and moves the job's cut point to `end`, atomically. */
  cutShard(jobId: string, idx: number, start: number, end: number): void {
    this.db.transaction(() => {
      this.db.prepare("INSERT INTO shards (job_id, idx, start, end) VALUES (?, ?, ?, ?)").run(jobId, idx, start, end);
      this.db.prepare("UPDATE jobs SET next_row = ?, shard_count = shard_count + 1 WHERE id = ?").run(end, jobId);
    })();
  }

  getJob(id: string): JobRow | undefined {
    const raw = this.db.prepare("SELECT * FROM jobs WHERE id = ?").get(id);
    return raw === undefined ? undefined : toJobRow(raw);
  }

  listJobs(limit = 100): JobRow[] {
    return this.db.prepare("SELECT * FROM jobs ORDER BY created_at DESC LIMIT ?").all(limit).map(toJobRow);
  }

  /** Jobs that were queued or running, oldest first. */
  unfinishedJobs(): JobRow[] {
    return this.db.prepare("SELECT * FROM jobs WHERE state IN ('queued', 'running') ORDER BY created_at").all().map(toJobRow);
  }

  /** Highest shard index of a job so far (-1 when none). */
  lastShardIdx(jobId: string): number {
    const r = this.db.prepare("SELECT MAX(idx) AS m FROM shards WHERE job_id = ?").get(jobId) as { m: number | null };
    return r.m ?? -1;
  }

  /** Shards of a job that have not been accepted yet, in row order. */
  pendingShards(jobId: string): Array<{ idx: number; start: number; end: number; attempts: number }> {
    return this.db
      .prepare("SELECT idx, start, end, attempts FROM shards WHERE job_id = ? AND done = 0 ORDER BY idx")
      .all(jobId) as Array<{ idx: number; start: number; end: number; attempts: number }>;
  }

  setOutputs(jobId: string, outputs: JobOutput[]): void {
    this.db.prepare("UPDATE jobs SET outputs = ? WHERE id = ?").run(JSON.stringify(outputs), jobId);
  }

  setState(jobId: string, state: JobState, error: string | null = null): void {
    const now = Date.now();
    if (state === "running") {
      this.db.prepare("UPDATE jobs SET state = ?, started_at = COALESCE(started_at, ?) WHERE id = ?").run(state, now, jobId);
    } else if (state === "queued") {
      this.db.prepare("UPDATE jobs SET state = ? WHERE id = ?").run(state, jobId);
    } else {
      this.db.prepare("UPDATE jobs SET state = ?, error = ?, finished_at = ? WHERE id = ?").run(state, error, now, jobId);
    }
  }

  /** Records an accepted shard; returns false if it was already done (never counted twice). */
  markShardDone(jobId: string, idx: number, rows: number): boolean {
    return this.db.transaction(() => {
      const r = this.db.prepare("UPDATE shards SET done = 1 WHERE job_id = ? AND idx = ? AND done = 0").run(jobId, idx);
      if (r.changes !== 1) return false;
      this.db
        .prepare("UPDATE jobs SET samples_done = samples_done + ?, shards_done = shards_done + 1 WHERE id = ?")
        .run(rows, jobId);
      return true;
    })();
  }

  recordAttempt(jobId: string, idx: number): void {
    this.db.prepare("UPDATE shards SET attempts = attempts + 1 WHERE job_id = ? AND idx = ?").run(jobId, idx);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}

function toJobRow(raw: unknown): JobRow {
  const r = JobRecordSchema.parse(raw);
  return {
    id: r.id,
    model: r.model,
    state: r.state,
    rows: r.rows,
    inputs: z.array(TensorFileSchema).parse(JSON.parse(r.inputs)),
    outputs: r.outputs === null ? null : z.array(TensorFileSchema).parse(JSON.parse(r.outputs)),
    error: r.error,
    createdAt: r.created_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    samplesDone: r.samples_done,
    shardsDone: r.shards_done,
    shardCount: r.shard_count,
    nextRow: r.next_row,
    fixedShardSize: r.fixed_shard_size,
    verification: VerificationSchema.parse(r.verification === null ? {} : JSON.parse(r.verification)),
  };
}
