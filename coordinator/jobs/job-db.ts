/**
 * Job state in SQLite (better-sqlite3) inside the data directory. Tensors are not stored
 * here: inputs and outputs stay .npy files beside the database. Writes are synchronous but
 * tiny (one row per shard completion) and WAL mode keeps them cheap.
 */
import Database from "better-sqlite3";
import { EdgepoolError } from "../../shared/errors.js";
import { z } from "zod";
import { IoInfoSchema } from "../../shared/onnx/model-info.js";
import { DTYPES } from "../../shared/tensor/tensor.js";

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
  /** Name of the client token that created the job; null when the pool had no tokens. */
  owner: string | null;
}

export const VerificationSchema = z.object({
  redundancy: z.number().int().min(1).max(9).default(1),
  /** Outputs agree when |a - b| <= atol + rtol * |b| element by element (floats); integers must be equal. */
  rtol: z.number().nonnegative().default(1e-4),
  atol: z.number().nonnegative().default(1e-5),
  /** Rows whose answers the coordinator computes itself, sent to each worker first as canaries. */
  canaries: z.number().int().min(0).max(64).default(0),
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
  owner: z.string().nullable(),
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

interface JobDelta {
  /** The latest cut point and how many shards were cut since the last commit. */
  cut: { end: number; count: number } | null;
  samples: number;
  shards: number;
}

/** Longest a cut or done shard waits before its record is committed. */
const GROUP_COMMIT_MS = 10;

/** Columns of `jobs` added after its first schema: [name, type]. */
const MIGRATIONS: ReadonlyArray<readonly [string, string]> = [
  // JSON of VerificationSchema; NULL means no verification (redundancy 1).
  ["verification", "TEXT"],
  // Name of the client token that created the job; NULL for jobs of an open pool (no tokens).
  ["owner", "TEXT"],
];

export class JobDb {
  private readonly db: Database.Database;
  private closed = false;
  private queue: Array<() => void> = [];
  private readonly jobDeltas = new Map<string, JobDelta>();
  /** Shards cut but not committed yet, by "job/idx": one done before its cut is committed is never recorded. */
  private readonly uncommittedCuts = new Map<string, { done: boolean }>();
  private commitTimer: NodeJS.Timeout | null = null;
  private readonly statements = new Map<string, Database.Statement>();

  constructor(file: string) {
    // The lock is this process's alone (below), so there is nothing to wait for long.
    this.db = new Database(file, { timeout: 1000 });
    try {
      // One coordinator owns a data directory: the exclusive lock keeps a second one out, and
      // spares every transaction its file-lock calls (the WAL index lives in memory, not in a
      // shared -shm file); a small job made some twenty of them.
      this.db.pragma("locking_mode = EXCLUSIVE");
      this.db.pragma("journal_mode = WAL");
    } catch (cause) {
      this.db.close();
      if ((cause as { code?: string }).code === "SQLITE_BUSY") {
        throw new EdgepoolError("E_STATE", `another coordinator is using ${file}; stop it, or give this one its own --data-dir`, { cause });
      }
      throw cause;
    }
    this.db.pragma("synchronous = NORMAL");
    this.db.exec(SCHEMA);
    this.migrate();
  }

  /** Columns added after the first release, so a data directory from an older version opens. */
  private migrate(): void {
    const have = new Set((this.sql("PRAGMA table_info(jobs)").all() as Array<{ name: string }>).map((c) => c.name));
    for (const [column, type] of MIGRATIONS) {
      if (!have.has(column)) this.db.exec(`ALTER TABLE jobs ADD COLUMN ${column} ${type}`);
    }
    this.db.exec("CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, created_at)");
  }

  putModel(sha256: string, bytes: number, info: ModelRow["info"]): void {
    this.db
      .prepare("INSERT OR IGNORE INTO models (sha256, bytes, info, created_at) VALUES (?, ?, ?, ?)")
      .run(sha256, bytes, JSON.stringify(info), Date.now());
  }

  getModel(sha256: string): ModelRow | undefined {
    const row = this.sql("SELECT sha256, bytes, info FROM models WHERE sha256 = ?").get(sha256) as
      | { sha256: string; bytes: number; info: string }
      | undefined;
    if (!row) return undefined;
    return { sha256: row.sha256, bytes: row.bytes, info: ModelRecordSchema.parse(JSON.parse(row.info)) };
  }

  insertJob(job: { id: string; model: string; rows: number; inputs: JobInput[]; createdAt: number; fixedShardSize: number | null; verification: Verification; owner?: string | null }): void {
    this.flush();
    this.sql("INSERT INTO jobs (id, model, state, rows, inputs, created_at, fixed_shard_size, verification, owner) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?)")
      .run(job.id, job.model, job.rows, JSON.stringify(job.inputs), job.createdAt, job.fixedShardSize, JSON.stringify(job.verification), job.owner ?? null);
  }

  /** Records a newly cut shard [start, end) and moves the job's cut point to `end`, atomically (group-committed: see `later`). */
  cutShard(jobId: string, idx: number, start: number, end: number): void {
    const key = `${jobId}/${idx}`;
    const cut = { done: false };
    this.uncommittedCuts.set(key, cut);
    this.later(() => {
      this.uncommittedCuts.delete(key);
      // A shard done before its cut is committed needs no record: rows below the cut point that
      // no pending shard holds are done (a restart re-queues only the shards recorded not done).
      if (!cut.done) this.sql("INSERT INTO shards (job_id, idx, start, end) VALUES (?, ?, ?, ?)").run(jobId, idx, start, end);
      const d = this.jobDelta(jobId);
      d.cut = { end, count: (d.cut?.count ?? 0) + 1 };
    });
  }


  getJob(id: string): JobRow | undefined {
    this.flush();
    const raw = this.sql("SELECT * FROM jobs WHERE id = ?").get(id);
    return raw === undefined ? undefined : toJobRow(raw);
  }

  /** The newest jobs; only `owner`'s when an owner is given. */
  listJobs(limit = 100, owner?: string): JobRow[] {
    this.flush();
    if (owner !== undefined) {
      return this.sql("SELECT * FROM jobs WHERE owner = ? ORDER BY created_at DESC LIMIT ?").all(owner, limit).map(toJobRow);
    }
    return this.sql("SELECT * FROM jobs ORDER BY created_at DESC LIMIT ?").all(limit).map(toJobRow);
  }

  /** Jobs that were queued or running, oldest first. */
  unfinishedJobs(): JobRow[] {
    this.flush();
    return this.sql("SELECT * FROM jobs WHERE state IN ('queued', 'running') ORDER BY created_at").all().map(toJobRow);
  }

  /**
   * Highest recorded shard index of a job (-1 when none). Shards done before their record was
   * committed are not recorded, so after a restart their indexes may be given again: harmless,
   * as an index only names a shard within this table and within one process.
   */
  lastShardIdx(jobId: string): number {
    this.flush();
    const r = this.sql("SELECT MAX(idx) AS m FROM shards WHERE job_id = ?").get(jobId) as { m: number | null };
    return r.m ?? -1;
  }

  /** Shards of a job that have not been accepted yet, in row order. */
  pendingShards(jobId: string): Array<{ idx: number; start: number; end: number; attempts: number }> {
    this.flush();
    return this.db
      .prepare("SELECT idx, start, end, attempts FROM shards WHERE job_id = ? AND done = 0 ORDER BY idx")
      .all(jobId) as Array<{ idx: number; start: number; end: number; attempts: number }>;
  }

  setOutputs(jobId: string, outputs: JobOutput[]): void {
    this.flush();
    this.sql("UPDATE jobs SET outputs = ? WHERE id = ?").run(JSON.stringify(outputs), jobId);
  }

  setState(jobId: string, state: JobState, error: string | null = null): void {
    this.flush();
    const now = Date.now();
    if (state === "running") {
      this.sql("UPDATE jobs SET state = ?, started_at = COALESCE(started_at, ?) WHERE id = ?").run(state, now, jobId);
    } else if (state === "queued") {
      this.sql("UPDATE jobs SET state = ? WHERE id = ?").run(state, jobId);
    } else {
      this.sql("UPDATE jobs SET state = ?, error = ?, finished_at = ? WHERE id = ?").run(state, error, now, jobId);
    }
  }

  /**
   * Records a shard done, once its rows are written (group-committed: see `later`). The
   * caller decides freshness in memory; the `done = 0` guard keeps the counters right anyway.
   */
  markShardDone(jobId: string, idx: number, rows: number): void {
    // Cut and done within one commit (short shards): no statement at all, only the counters.
    const cut = this.uncommittedCuts.get(`${jobId}/${idx}`);
    if (cut && !cut.done) {
      cut.done = true;
      this.later(() => {
        const d = this.jobDelta(jobId);
        d.samples += rows;
        d.shards += 1;
      });
      return;
    }
    this.later(() => {
      const r = this.sql("UPDATE shards SET done = 1 WHERE job_id = ? AND idx = ? AND done = 0").run(jobId, idx);
      if (r.changes !== 1) return;
      const d = this.jobDelta(jobId);
      d.samples += rows;
      d.shards += 1;
    });
  }


  recordAttempt(jobId: string, idx: number): void {
    this.later(() => this.sql("UPDATE shards SET attempts = attempts + 1 WHERE job_id = ? AND idx = ?").run(jobId, idx));
  }

  /**
   * Group commit. Per-shard records (cuts, dones) are queued and committed together in one
   * transaction at most GROUP_COMMIT_MS later: with tiny shards, a transaction per shard was
   * the coordinator's largest cost. Every read and every other write commits the queue
   * first, so what the API shows is never behind. A crash loses at most the last few ms of
   * records: those shards are run again on resume and their rows rewritten in place.
   */
  private later(op: () => void): void {
    if (this.closed) return;
    this.queue.push(op);
    if (!this.commitTimer) {
      this.commitTimer = setTimeout(() => this.flush(), GROUP_COMMIT_MS);
      this.commitTimer.unref();
    }
  }

  /** Commits queued records now. */
  flush(): void {
    if (this.commitTimer) {
      clearTimeout(this.commitTimer);
      this.commitTimer = null;
    }
    if (this.queue.length === 0 || this.closed) return;
    const ops = this.queue;
    this.queue = [];
    this.db.transaction(() => {
      for (const op of ops) op();
      // A job's counters move once per commit, not once per shard.
      for (const [jobId, d] of this.jobDeltas) {
        if (d.cut) this.sql("UPDATE jobs SET next_row = ?, shard_count = shard_count + ? WHERE id = ?").run(d.cut.end, d.cut.count, jobId);
        if (d.shards > 0) this.sql("UPDATE jobs SET samples_done = samples_done + ?, shards_done = shards_done + ? WHERE id = ?").run(d.samples, d.shards, jobId);
      }
      this.jobDeltas.clear();
    })();
  }

  /** The counter changes of `jobId` gathered since the last commit. */
  private jobDelta(jobId: string): JobDelta {
    let d = this.jobDeltas.get(jobId);
    if (!d) {
      d = { cut: null, samples: 0, shards: 0 };
      this.jobDeltas.set(jobId, d);
    }
    return d;
  }


  /** A prepared statement, prepared once. */
  private sql(text: string): Database.Statement {
    let st = this.statements.get(text);
    if (!st) {
      st = this.db.prepare(text);
      this.statements.set(text, st);
    }
    return st;
  }

  close(): void {
    if (this.closed) return;
    this.flush();
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
    owner: r.owner,
  };
}
