/**
 * Creating, reading and cancelling jobs. Inputs arrive first as uploads (streamed to disk,
 * checked to be complete .npy files); a job then claims its uploads, which move into the
 * job's own folder, so no tensor ever sits in coordinator memory as a whole.
 */
import { computeCanaries } from "../scheduling/canary.js";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdir, rename, rm } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import path from "node:path";
import { z } from "zod";
import { EdgepoolError, toEdgepoolError } from "../../shared/errors.js";
import { safeFileName, validateJobInputs } from "../../shared/tensor/job-inputs.js";
import type { NamedTensor } from "../../shared/protocol/frame.js";
import { createNpyFile, readNpyFileHeader } from "../../shared/node/npy-file.js";
import { elementCount, bytesPerElement, rowBytes, type DType, type Tensor } from "../../shared/tensor/tensor.js";
import type { Viewer } from "../http/auth.js";
import { bodyToFile } from "./uploads.js";
import { Job } from "./job.js";
import { knownOutputRowBytes } from "../scheduling/planner.js";
import type { CreateJobSchema, InlineJobSchema } from "../api/jobs.js";
import { FRAME_HEADER_ALLOWANCE, checkShardsFitFrame } from "./frame-fit.js";
import { VerificationSchema, type JobDb, type JobRow, type ModelRow } from "./job-db.js";
import type { ModelStore } from "./model-store.js";
import type { Scheduler } from "../scheduling/scheduler.js";

const JOB_ID_RE = /^j_[0-9a-z]{16}$/;

type CreateJobRequest = z.infer<typeof CreateJobSchema>;
type InlineJobRequest = z.infer<typeof InlineJobSchema>;

type NewJob = Parameters<JobDb["insertJob"]>[0];

/** Inline jobs that may be answered while their rows are still on their way to the disk. */
const MAX_UNWRITTEN = 64;

/**
 * A job's files sit side by side in its folder (in-<i>-<name>.npy, out-<i>-<name>.npy): one
 * folder made per job, not three. Jobs recorded with inputs/ and outputs/ folders keep them,
 * since the database holds each file's path.
 */
function inputFileName(i: number, name: string): string {
  return `in-${i}-${safeFileName(name)}.npy`;
}

function newJobId(): string {
  return `j_${randomBytes(10).toString("hex").slice(0, 16)}`;
}

export interface JobLimits {
  /** Largest input upload (--max-input-gb). */
  maxInputBytes: number;
  /** Largest WebSocket frame (--max-frame-mb): every shard frame and result frame must fit. */
  maxFrameBytes: number;
  /** Queued or running jobs per owner (--max-jobs-per-client); an open pool is one owner. */
  maxJobsPerClient: number;
}

export class JobService {
  /** Active jobs by id; finished jobs are read from the database. */
  private readonly live = new Map<string, Job>();
  /** Long polls waiting for an active job to end, by job id. */
  private readonly waiters = new Map<string, Set<() => void>>();
  /** Inline jobs answered from memory whose rows are still being written. */
  private readonly unwritten = new Set<Job>();
  /** Jobs being created, by owner, counted against --max-jobs-per-client until they are live. */
  private readonly creating = new Map<string | null, number>();

  constructor(
    private readonly dataDir: string,
    private readonly db: JobDb,
    private readonly models: ModelStore,
    private readonly scheduler: Scheduler,
    private readonly limits: JobLimits,
  ) {}

  private get uploadsDir(): string {
    return path.join(this.dataDir, "uploads");
  }

  jobDir(id: string): string {
    if (!JOB_ID_RE.test(id)) throw new EdgepoolError("E_NOT_FOUND", `no job '${id.slice(0, 40)}'`);
    return path.join(this.dataDir, "jobs", id);
  }

  async init(): Promise<void> {
    await mkdir(this.uploadsDir, { recursive: true });
    await mkdir(path.join(this.dataDir, "jobs"), { recursive: true });
  }

  /** Picks up the jobs that were queued or running when the coordinator last stopped. */
  async resume(): Promise<number> {
    let resumed = 0;
    for (const row of this.db.unfinishedJobs()) {
      const model = this.models.get(row.model);
      try {
        if (!model) throw new EdgepoolError("E_NOT_FOUND", `its model ${row.model} is missing from the data directory`);
        const job = await Job.open(row, model, this.jobDir(row.id), this.db);
        await this.prepareCanaries(job);
        this.live.set(row.id, job);
        this.scheduler.addJob(job);
        resumed += 1;
      } catch (err) {
        this.db.setState(row.id, "failed", `cannot resume after a restart: ${toEdgepoolError(err).message}`);
      }
    }
    return resumed;
  }

  /** Streams an .npy upload to disk and checks it is a complete, supported .npy file. */
  async upload(req: IncomingMessage): Promise<{ id: string; dtype: string; shape: number[]; bytes: number }> {
    const received = await bodyToFile(req, this.uploadsDir, this.limits.maxInputBytes, { hash: false, what: "input upload", flag: "--max-input-gb" });
    try {
      const header = await readNpyFileHeader(received.file);
      const expected = header.headerBytes + elementCount(header.shape) * bytesPerElement(header.dtype);
      if (received.bytes !== expected) {
        throw new EdgepoolError(
          "E_NPY",
          `the .npy upload has ${received.bytes} bytes but its header (${header.dtype} [${header.shape.join(",")}]) needs ${expected}; the file is truncated or corrupt`,
        );
      }
      const id = randomUUID();
      await rename(received.file, path.join(this.uploadsDir, `${id}.npy`));
      return { id, dtype: header.dtype, shape: header.shape, bytes: received.bytes };
    } finally {
      await rm(received.file, { force: true });
    }
  }

  /** Validates a job request against the model, claims its uploads and queues its shards for `owner`. */
  create(req: CreateJobRequest, owner: string | null = null): Promise<JobRow> {
    return this.counted(owner, () => this.createCounted(req, owner));
  }

  /**
   * Creates a job whose inputs came inline (one frame: small jobs in one request). Its shards
   * are cut from the tensors in memory, so the first one leaves at once, while the inputs are
   * written to the job's folder for a restart (`inputsWritten` settles once they are); if
   * that writing fails, so does the job. A coordinator stopped before they are on disk (a
   * millisecond or so) fails the job when it restarts, saying why. Accepted results are kept
   * in memory (up to one frame's worth) when `keepOutputs`, so the answer to the request can
   * carry the outputs (inlineAnswer).
   */
  createInline(req: InlineJobRequest, tensors: readonly NamedTensor[], owner: string | null = null, keepOutputs = true): Promise<{ job: Job; inputsWritten: Promise<void> }> {
    return this.counted(owner, async () => {
      const model = this.models.require(req.model);
      const given = tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.dims }));
      const rows = validateJobInputs(model.info.inputs, given);
      this.checkFits(model, given, req.shardSize ?? null, rows);
      const id = newJobId();
      const dir = this.jobDir(id);
      const inputs = tensors.map((t, i) => ({ name: t.name, file: inputFileName(i, t.name), dtype: t.dtype, shape: t.dims }));
      const written = (async () => {
        // Recursive only so that the output files' own mkdir may come first (Job.ensureOutputs).
        await mkdir(dir, { recursive: true });
        await Promise.all(tensors.map((t, i) => createNpyFile(path.join(dir, inputs[i]!.file), t)));
      })();
      let job: Job;
      try {
        job = await this.start({ id, model: model.sha256, rows, inputs, fixedShardSize: req.shardSize ?? null, verification: this.verification(req), owner }, dir, new Map(tensors.map((t) => [t.name, t])), keepOutputs);
      } catch (err) {
        await written.catch(() => undefined);
        await rm(dir, { recursive: true, force: true });
        throw err;
      }
      // Settles once the inputs are on disk, or once the job has failed for want of them.
      const inputsWritten = written.catch((err: unknown) => this.scheduler.failJob(job, new EdgepoolError("E_IO", `could not write its inputs: ${toEdgepoolError(err, "E_IO").message}`, { cause: err })));
      return { job, inputsWritten };
    });
  }

  private async counted<T>(owner: string | null, create: () => Promise<T>): Promise<T> {
    // Answers may run ahead of the disk only so far: past that, a new job waits for one to be written.
    while (this.unwritten.size >= MAX_UNWRITTEN) await Promise.race([...this.unwritten].map((j) => j.whenWritten()));
    let active = this.creating.get(owner) ?? 0;
    // A job answered, or with every row in, is only writing or closing its files: it no longer counts.
    for (const job of this.live.values()) if (job.active && !job.complete && !this.unwritten.has(job) && job.row.owner === owner) active += 1;
    if (active >= this.limits.maxJobsPerClient) {
      const who = owner === null ? "this pool" : `client '${owner}'`;
      throw new EdgepoolError(
        "E_RATE_LIMIT",
        `${who} already has ${active} queued or running jobs, the most allowed (--max-jobs-per-client ${this.limits.maxJobsPerClient}); wait for one to finish or cancel one`,
      );
    }
    this.creating.set(owner, (this.creating.get(owner) ?? 0) + 1);
    try {
      return await create();
    } finally {
      const n = (this.creating.get(owner) ?? 1) - 1;
      if (n > 0) this.creating.set(owner, n);
      else this.creating.delete(owner);
    }
  }

  private async createCounted(req: CreateJobRequest, owner: string | null): Promise<JobRow> {
    const model = this.models.require(req.model);
    const given = [];
    const claimed = new Set<string>();
    for (const [name, uploadId] of Object.entries(req.inputs)) {
      if (claimed.has(uploadId)) throw new EdgepoolError("E_BAD_REQUEST", `upload ${uploadId} is given for two inputs; upload each input on its own`);
      claimed.add(uploadId);
      const file = path.join(this.uploadsDir, `${uploadId}.npy`);
      let h: Awaited<ReturnType<typeof readNpyFileHeader>>;
      try {
        h = await readNpyFileHeader(file);
      } catch (err) {
        if ((err as { cause?: { code?: string } }).cause?.code === "ENOENT") {
          throw new EdgepoolError("E_NOT_FOUND", `upload ${uploadId} for input '${name}' does not exist; upload the .npy again`);
        }
        throw err;
      }
      given.push({ name, uploadId, file, dtype: h.dtype, shape: h.shape });
    }
    const rows = validateJobInputs(model.info.inputs, given);
    this.checkFits(model, given, req.shardSize ?? null, rows);
    const id = newJobId();
    const dir = this.jobDir(id);
    await mkdir(dir);
    const inputs = [];
    for (const [i, g] of given.entries()) {
      const rel = inputFileName(i, g.name);
      try {
        await rename(g.file, path.join(dir, rel));
      } catch (cause) {
        // Another job claimed this upload since it was checked above.
        await rm(dir, { recursive: true, force: true });
        throw new EdgepoolError("E_NOT_FOUND", `upload ${g.uploadId} for input '${g.name}' is gone (claimed by another job?); upload the .npy again`, { cause });
      }
      inputs.push({ name: g.name, file: rel, dtype: g.dtype, shape: g.shape });
    }
    const job = await this.start({ id, model: model.sha256, rows, inputs, fixedShardSize: req.shardSize ?? null, verification: this.verification(req), owner }, dir);
    return job.row;
  }

  private verification(req: InlineJobRequest) {
    return VerificationSchema.parse({ redundancy: req.redundancy, rtol: req.rtol, atol: req.atol, canaries: req.canaries });
  }

  /** Refuses a job whose shards could not travel in one frame (checkShardsFitFrame). */
  private checkFits(model: ModelRow, given: readonly { dtype: DType; shape: number[] }[], shardSize: number | null, rows: number): void {
    const inRow = given.reduce((sum, g) => sum + rowBytes(g.dtype, g.shape), 0);
    checkShardsFitFrame(inRow, knownOutputRowBytes(model.info.outputs), shardSize, this.limits.maxFrameBytes, rows);
  }

  /** Records a job, opens it (its inputs from `inMemory` where given, else from its folder) and hands it to the scheduler. */
  private async start(spec: Omit<NewJob, "createdAt">, dir: string, inMemory?: ReadonlyMap<string, Tensor>, keepOutputs = false): Promise<Job> {
    this.db.insertJob({ ...spec, createdAt: Date.now() });
    const full = this.db.getJob(spec.id)!;
    const model = this.models.require(spec.model);
    const job = await Job.open(full, model, dir, this.db, inMemory);
    try {
      await this.prepareCanaries(job);
    } catch (err) {
      await job.closeFiles();
      throw err;
    }
    if (keepOutputs) job.keepOutputs(this.limits.maxFrameBytes - FRAME_HEADER_ALLOWANCE);
    this.live.set(spec.id, job);
    this.scheduler.addJob(job);
    return job;
  }

  /** Computes the job's canary answers here, before any worker sees the job. */
  private async prepareCanaries(job: Job): Promise<void> {
    const n = job.row.verification.canaries;
    if (n > 0) {
      const rows = { id: job.id, rows: job.row.rows, read: (start: number, end: number) => job.inputRows(start, end) };
      job.canaries = await computeCanaries(rows, this.models.pathOf(job.model.sha256), n);
    }
  }

  /** Called when a job reaches a terminal state. */
  forget(job: Job): void {
    this.live.delete(job.id);
    const waiting = this.waiters.get(job.id);
    this.waiters.delete(job.id);
    for (const wake of waiting ?? []) wake();
  }

  /**
   * Resolves when job `id` has ended (done, failed or cancelled) or after `ms`, whichever
   * comes first: a long poll, so a client learns of the end at once without polling fast.
   */
  async waitForEnd(id: string, ms: number, viewer?: Viewer): Promise<JobRow> {
    const row = this.get(id, viewer);
    if (!this.live.has(id) || ms <= 0) return row;
    await new Promise<void>((resolve) => {
      const set = this.waiters.get(id) ?? new Set<() => void>();
      this.waiters.set(id, set);
      const wake = () => {
        clearTimeout(timer);
        set.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      timer.unref();
      set.add(wake);
    });
    return this.get(id, viewer);
  }

  /**
   * Waits up to `ms` for every row of a job made by createInline, and answers with its outputs
   * from memory as soon as they are all in and checked, while their rows are written, the
   * files flushed and the record closed right after (a client waiting on a small job need not
   * wait on the disk; should that fail, the job fails with the reason, though its client has
   * its answer; and at most MAX_UNWRITTEN answers run ahead of the disk). Without outputs
   * (not kept, the job failed or was cancelled, or it still runs after `ms`) it answers the
   * job as it is; a job still running stops keeping them (its client downloads them later).
   */
  async inlineAnswer(job: Job, ms: number): Promise<{ row: JobRow; outputs: NamedTensor[] | null }> {
    let allKept = (): void => undefined;
    const kept = new Promise<void>((resolve) => (allKept = resolve));
    job.onAllKept = allKept;
    if (job.allKept) allKept();
    await Promise.race([kept, this.waitForEnd(job.id, ms)]);
    job.onAllKept = undefined;
    const outputs = job.keptOutputs();
    job.keepOutputs(0);
    const row = this.get(job.id);
    if (!outputs || row.state === "failed" || row.state === "cancelled") return { row, outputs: null };
    if (!job.complete) {
      this.unwritten.add(job);
      void job.whenWritten().then(() => this.unwritten.delete(job));
    }
    // Every row is in: done as far as the client is concerned, whatever the record says yet.
    return { row: { ...row, state: "done", finishedAt: row.finishedAt ?? Date.now(), samplesDone: row.rows, shardsDone: Math.max(row.shardsDone, row.shardCount) }, outputs };
  }

  /**
   * A job by id. With a `viewer` that does not see everything, another owner's job is
   * reported exactly like a missing one: its existence is not revealed.
   */
  get(id: string, viewer?: Viewer): JobRow {
    this.jobDir(id);
    const row = this.db.getJob(id);
    if (!row || (viewer && !viewer.seesAll && row.owner !== viewer.owner)) {
      throw new EdgepoolError("E_NOT_FOUND", `no job '${id}' on this coordinator`);
    }
    return row;
  }

  /** The newest jobs, only the viewer's own unless it sees everything. */
  list(viewer?: Viewer): JobRow[] {
    if (viewer && !viewer.seesAll) return viewer.owner === null ? [] : this.db.listJobs(100, viewer.owner);
    return this.db.listJobs();
  }

  cancel(id: string, viewer?: Viewer): JobRow {
    const row = this.get(id, viewer);
    const job = this.live.get(id);
    if (!job) throw new EdgepoolError("E_STATE", `job ${id} is already ${row.state}`);
    this.scheduler.cancelJob(job);
    return this.get(id);
  }

  /** The file of a finished job's output, by output name. */
  outputFile(id: string, name: string, viewer?: Viewer): string {
    const row = this.get(id, viewer);
    if (row.state !== "done") {
      throw new EdgepoolError("E_STATE", `job ${id} is ${row.state}; outputs can be downloaded once it is done`);
    }
    const out = row.outputs?.find((o) => o.name === name);
    if (!out) {
      const names = row.outputs?.map((o) => o.name).join(", ") ?? "";
      throw new EdgepoolError("E_NOT_FOUND", `job ${id} has no output '${name}'; its outputs are: ${names}`);
    }
    return path.join(this.jobDir(id), out.file);
  }

  /** True when a live job has had shards on virtual workers. */
  isVirtual(id: string): boolean {
    return this.live.get(id)?.touchedByVirtual ?? false;
  }

  liveJobs(): Job[] {
    return [...this.live.values()];
  }

  async close(): Promise<void> {
    for (const set of this.waiters.values()) for (const wake of [...set]) wake();
    this.waiters.clear();
    await Promise.allSettled([...this.live.values()].map((j) => j.closeFiles()));
  }
}
