/**
 * A job in memory while it is active. Lifecycle: queued -> running -> done | failed |
 * cancelled (terminal states never change; any other move throws E_STATE). It owns the
 * readers of its input .npy files and the writers of its output .npy files, the rows not yet
 * cut into shards (from `nextRow`), and the cut shards waiting to be (re)sent (`pending`).
 * What is in flight is the scheduler's (scheduling/dispatch.ts). Each shard's result is
 * accepted exactly once: a shard is pending or in flight, then `writing` while its rows go to
 * disk, then done in the database. Everything needed to resume lives in the database and the
 * .npy files, a shard's failed attempts included.
 */
import path from "node:path";
import { mkdir, rm } from "node:fs/promises";
import { EdgepoolError } from "../../shared/errors.js";
import type { NamedTensor } from "../../shared/protocol/frame.js";
import { planFrame } from "../../shared/protocol/frame.js";
import { shardHeader } from "../../shared/protocol/encode.js";
import { safeFileName } from "../../shared/tensor/job-inputs.js";
import { NpyRowReader, NpyRowWriter } from "../../shared/node/npy-file.js";
import { concatRows } from "../../shared/tensor/tensor-ops.js";
import { rowBytes, type Tensor } from "../../shared/tensor/tensor.js";
import { MemoryRowReader, type RowReader } from "./memory-rows.js";
import type { JobDb, JobOutput, JobRow, JobState, ModelRow } from "./job-db.js";
import type { Canary } from "../scheduling/canary.js";
import { knownOutputRowBytes } from "../scheduling/planner.js";
import { ShardTask, type AttemptLog } from "../scheduling/shard-task.js";

const ALLOWED: Record<JobState, readonly JobState[]> = {
  queued: ["running", "failed", "cancelled"],
  running: ["done", "failed", "cancelled"],
  done: [],
  failed: [],
  cancelled: [],
};

export class Job {
  private stateValue: JobState;
  /** Cut shards waiting to be sent: retries, hand-backs, replicas wanted, and shards restored after a restart. */
  private readonly pending: ShardTask[] = [];
  /** First row not yet cut into a shard. */
  private nextRow: number;
  private nextIdx: number;
  private readonly writing = new Set<number>();
  private readers: RowReader[] = [];
  /**
   * Accepted results kept in memory for a client waiting on the job's answer (an inline job),
   * by first row, with their bytes; null when not kept, or dropped past the budget.
   */
  private kept: { results: Map<number, NamedTensor[]>; rows: number; bytes: number; budget: number } | null = null;
  private writers = new Map<string, NpyRowWriter>();
  private outputs: JobOutput[] | null;
  private outputsReady: Promise<void> | null = null;
  samplesDone: number;
  shardsDone: number;
  private virtualTouch = false;
  private readonly attemptLog: AttemptLog;

  private constructor(
    readonly row: JobRow,
    readonly model: ModelRow,
    readonly dir: string,
    private readonly db: JobDb,
  ) {
    this.stateValue = row.state;
    this.outputs = row.outputs;
    this.samplesDone = row.samplesDone;
    this.shardsDone = row.shardsDone;
    this.nextRow = row.nextRow;
    this.nextIdx = db.lastShardIdx(row.id) + 1;
    this.attemptLog = { record: (idx) => db.recordAttempt(row.id, idx) };
  }

  /**
   * Opens the job's inputs and queues its unfinished shards. Inputs given in `inMemory` (an
   * inline job's tensors, also written to its folder) are read from memory instead of disk.
   */
  static async open(row: JobRow, model: ModelRow, dir: string, db: JobDb, inMemory?: ReadonlyMap<string, Tensor>): Promise<Job> {
    const job = new Job(row, model, dir, db);
    try {
      // Readers in the model's input order, which is the order tensors go into a shard frame.
      for (const spec of model.info.inputs) {
        const input = row.inputs.find((i) => i.name === spec.name);
        if (!input) throw new EdgepoolError("E_INTERNAL", `job ${row.id} lacks input ${spec.name}`);
        const held = inMemory?.get(spec.name);
        job.readers.push(held ? new MemoryRowReader(held) : await NpyRowReader.open(path.join(dir, input.file)));
      }
    } catch (err) {
      await job.closeFiles();
      throw err;
    }
    // Attempts come back with the shards, so a restart does not give a failing shard a fresh count.
    for (const s of db.pendingShards(row.id)) job.pending.push(new ShardTask(s.idx, s.start, s.end, job.attemptLog, s.attempts));
    job.prepareOutputs();
    return job;
  }

  get id(): string {
    return this.row.id;
  }

  get state(): JobState {
    return this.stateValue;
  }

  get active(): boolean {
    return this.stateValue === "queued" || this.stateValue === "running";
  }

  /** Some shard of this job ran on a virtual worker: its figures are not about real devices. */
  get touchedByVirtual(): boolean {
    return this.virtualTouch;
  }

  markTouchedByVirtual(): void {
    this.virtualTouch = true;
  }

  get flopsPerSample(): number {
    return this.model.info.flopsPerSample;
  }

  /** Known answers for canary shards (canary.ts), when the job asked for them; set before the job is scheduled. */
  canaries: readonly Canary[] = [];

  /** The input rows [start, end) as tensors, in the model's input order. */
  async inputRows(start: number, end: number): Promise<NamedTensor[]> {
    return Promise.all(this.readers.map(async (r, i) => ({ name: this.model.info.inputs[i]!.name, ...(await r.readRows(start, end)) })));
  }

  /** True when each shard must be computed by several workers that agree (redundancy > 1). */
  get verifying(): boolean {
    return this.row.verification.redundancy > 1;
  }

  /** True while some shard is waiting to be sent or some rows are not cut yet. */
  get hasWork(): boolean {
    return this.active && (this.pending.length > 0 || this.nextRow < this.row.rows);
  }

  /** Rows not yet cut into shards. */
  get uncut(): number {
    return this.row.rows - this.nextRow;
  }

  /** Cuts the next `rows` uncut rows into a new shard, recorded durably before it is sent. */
  cut(rows: number): ShardTask | undefined {
    if (this.nextRow >= this.row.rows || rows < 1) return undefined;
    const start = this.nextRow;
    const end = Math.min(this.row.rows, start + rows);
    const idx = this.nextIdx++;
    this.db.cutShard(this.id, idx, start, end);
    this.nextRow = end;
    return new ShardTask(idx, start, end, this.attemptLog);
  }

  /** Shards cut and waiting to be sent. */
  get pendingCount(): number {
    return this.pending.length;
  }

  /** The shards waiting to be sent, front first (a view: take them with takePending). */
  pendingTasks(): readonly ShardTask[] {
    return this.pending;
  }

  /** True when `task` is waiting to be sent. */
  isPending(task: ShardTask): boolean {
    return this.pending.includes(task);
  }

  /** Takes the first waiting shard that `mayTake` accepts, for a worker to run. */
  takePending(mayTake: (task: ShardTask) => boolean): ShardTask | undefined {
    const i = this.pending.findIndex(mayTake);
    return i < 0 ? undefined : this.pending.splice(i, 1)[0];
  }

  /** Puts a shard back at the front, to be sent before anything else. */
  putBack(task: ShardTask): void {
    if (this.active) this.pending.unshift(task);
  }

  /** Queues a verified shard at the front for one more replica, unless it is queued already; true when queued now. */
  wantReplica(task: ShardTask): boolean {
    if (!this.active || this.pending.includes(task)) return false;
    this.pending.unshift(task);
    return true;
  }

  /** Takes a shard out of the queue (its replicas agreed: no more are wanted). */
  unqueue(task: ShardTask): void {
    const i = this.pending.indexOf(task);
    if (i >= 0) this.pending.splice(i, 1);
  }

  /** Forgets every waiting shard (the job is leaving scheduling). */
  clearPending(): void {
    this.pending.length = 0;
  }

  /** A waiting shard that has already failed `maxAttempts` times (before a restart), if any. */
  exhausted(maxAttempts: number): ShardTask | undefined {
    return this.pending.find((t) => t.attempts >= maxAttempts);
  }

  transition(to: JobState, error: string | null = null): void {
    if (!ALLOWED[this.stateValue].includes(to)) {
      throw new EdgepoolError("E_STATE", `job ${this.id} cannot go from ${this.stateValue} to ${to}`);
    }
    this.stateValue = to;
    this.db.setState(this.id, to, error);
    if (!this.active) this.settleWritten();
  }

  private writtenWaiters: Array<() => void> = [];

  /** Resolves once every row is written (complete) or the job has ended, whichever comes first. */
  whenWritten(): Promise<void> {
    if (this.complete || !this.active) return Promise.resolve();
    return new Promise((resolve) => this.writtenWaiters.push(resolve));
  }

  private settleWritten(): void {
    for (const wake of this.writtenWaiters.splice(0)) wake();
  }

  /** The job's row as stored now (timestamps and counters as the API reports them). */
  stored(): JobRow {
    const row = this.db.getJob(this.id);
    if (!row) throw new EdgepoolError("E_INTERNAL", `job ${this.id} vanished from the database`);
    return row;
  }

  /** Builds the `shard` frame for a task, reading its input rows straight into the frame (from `alloc`, if given). */
  async buildShardFrame(task: ShardTask, shardId: string, alloc?: (bytes: number) => Uint8Array): Promise<Uint8Array> {
    const rows = task.end - task.start;
    const specs = this.model.info.inputs.map((spec, i) => {
      const h = this.readers[i]!.header;
      return { name: spec.name, dtype: h.dtype, dims: [rows, ...h.shape.slice(1)] };
    });
    const { frame, slots } = planFrame(shardHeader(shardId, this.id, this.model.sha256, task.start, task.end), specs, alloc);
    await Promise.all(this.readers.map((r, i) => r.readRowsInto(task.start, task.end, slots[i]!)));
    return frame;
  }

  /**
   * Checks a result against the model's outputs and the shapes fixed by the first result,
   * writes its rows at their offset, and records the shard done. Returns false when the
   * shard was already accepted (a late duplicate); throws E_SHAPE/E_DTYPE on a bad result.
   */
  async accept(task: ShardTask, tensors: NamedTensor[]): Promise<boolean> {
    if (this.writing.has(task.idx)) return false;
    const rows = task.end - task.start;
    const expected = this.model.info.outputs;
    if (tensors.length !== expected.length) {
      throw new EdgepoolError("E_SHAPE", `result has ${tensors.length} outputs, the model has ${expected.length}`);
    }
    tensors.forEach((t, i) => {
      const spec = expected[i]!;
      if (t.name !== spec.name) throw new EdgepoolError("E_SHAPE", `result output ${i} is '${t.name}', expected '${spec.name}'`);
      if (t.dtype !== spec.dtype) throw new EdgepoolError("E_DTYPE", `result output '${t.name}' is ${t.dtype}, expected ${spec.dtype}`);
      if (t.dims[0] !== rows) {
        throw new EdgepoolError("E_SHAPE", `result output '${t.name}' has ${t.dims[0] ?? 0} rows for a shard of ${rows}`);
      }
    });
    this.writing.add(task.idx);
    // Kept before it reaches the disk: a client waiting on the job is answered from memory
    // (its checks above are all a result needs; a failed write fails the job, with the reason).
    this.keep(task.start, rows, tensors);
    try {
      await this.ensureOutputs(tensors);
      const outputs = this.outputs!;
      tensors.forEach((t, i) => {
        const want = outputs[i]!.shape;
        if (t.dims.length !== want.length || t.dims.some((d, k) => k > 0 && d !== want[k])) {
          throw new EdgepoolError("E_SHAPE", `result output '${t.name}' has dims [${t.dims.join(",")}], other shards gave [${want.join(",")}]`);
        }
      });
      await Promise.all(
        tensors.map((t) =>
          this.writers.get(t.name)!.writeRows(task.start, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)),
        ),
      );
    } catch (err) {
      this.writing.delete(task.idx);
      throw err;
    }
    if (!this.active) return false;
    // `writing` admits each shard once per process, and a resumed job never holds a shard the
    // database has as done, so this is the first acceptance: count it, and record it.
    this.db.markShardDone(this.id, task.idx, rows);
    this.samplesDone += rows;
    this.shardsDone += 1;
    if (this.complete) this.settleWritten();
    return true;
  }

  /**
   * Keeps accepted results in memory, up to `budget` bytes, so the outputs can be answered
   * from memory when the job ends (keptOutputs). Past the budget nothing is kept; a budget
   * of 0 stops keeping and lets go of what was kept.
   */
  keepOutputs(budget: number): void {
    this.kept = budget > 0 ? { results: new Map(), rows: 0, bytes: 0, budget } : null;
  }

  private keep(start: number, rows: number, tensors: NamedTensor[]): void {
    const kept = this.kept;
    if (!kept) return;
    kept.bytes += tensors.reduce((n, t) => n + t.data.byteLength, 0);
    if (kept.bytes > kept.budget) {
      this.kept = null;
      return;
    }
    // A shard whose write failed is retried and kept again under the same first row.
    if (!kept.results.has(start)) kept.rows += rows;
    kept.results.set(start, tensors);
    if (kept.rows === this.row.rows) this.onAllKept?.();
  }

  /** True when a result for every row has been kept (keepOutputs). */
  get allKept(): boolean {
    return this.kept !== null && this.kept.rows === this.row.rows;
  }

  /** Called once a result for every row has been kept (keepOutputs). */
  onAllKept: (() => void) | undefined;

  /**
   * The whole outputs in row order, from the results kept in memory; null if not kept, not all
   * in yet, or not of one shape (the job then fails on the disk side too, saying so).
   */
  keptOutputs(): NamedTensor[] | null {
    const kept = this.kept;
    if (!kept || !this.allKept) return null;
    const parts = [...kept.results.entries()].sort((a, b) => a[0] - b[0]).map(([, ts]) => ts);
    try {
      return this.model.info.outputs.map((o, i) => {
        const pieces = parts.map((ts) => ts[i]!);
        return { ...(pieces.length === 1 ? pieces[0]! : concatRows(pieces)), name: o.name };
      });
    } catch {
      return null;
    }
  }

  /** True when every row has been accepted. */
  get complete(): boolean {
    return this.samplesDone === this.row.rows;
  }

  /** Output files are created on the first result, when the per-row output shape is known. */
  private ensureOutputs(first: ReadonlyArray<Pick<NamedTensor, "name" | "dtype" | "dims">>): Promise<void> {
    if (!this.outputsReady) {
      this.outputsReady = (async () => {
        // The folder exists (its inputs are in it) unless an inline job's are still on their way.
        await mkdir(this.dir, { recursive: true });
        const outputs =
          this.outputs ??
          first.map((t, i) => ({
            name: t.name,
            file: `out-${i}-${safeFileName(t.name)}.npy`,
            dtype: t.dtype,
            shape: [this.row.rows, ...t.dims.slice(1)],
          }));
        for (const o of outputs) {
          this.writers.set(o.name, await NpyRowWriter.create(path.join(this.dir, o.file), o.dtype, o.shape));
        }
        if (!this.outputs) {
          this.outputs = outputs;
          this.db.setOutputs(this.id, outputs);
        }
      })();
      this.outputsReady.catch(() => {
        this.outputsReady = null;
      });
    }
    return this.outputsReady;
  }

  /**
   * When the model declares every output dim but the batch, the output files can be made
   * while the first shard is still out, instead of after its result arrives: one job's
   * worth of file creation off the path from dispatch to done. A failure here is left for
   * the first result to meet again (ensureOutputs retries).
   */
  private prepareOutputs(): void {
    if (this.outputs || this.outputsReady) return;
    const declared = [];
    for (const o of this.model.info.outputs) {
      const rest = o.shape.slice(1);
      if (!rest.every((d): d is number => typeof d === "number" && d > 0)) return;
      declared.push({ name: o.name, dtype: o.dtype, dims: [this.row.rows, ...rest] });
    }
    this.ensureOutputs(declared).catch(() => undefined);
  }

  /**
   * Bytes one row moves, inputs plus outputs (for sizing shards). Output rows are known from
   * the first result, or from the model when its output dims are all fixed; else not counted.
   */
  bytesPerRow(): number {
    const inputs = this.readers.reduce((s, r) => s + rowBytes(r.header.dtype, r.header.shape), 0);
    return inputs + knownOutputRowBytes(this.outputs ?? this.model.info.outputs);
  }

  /** Closes input and output files; outputs are flushed and complete only when state is done. */
  async closeFiles(): Promise<void> {
    const results = await Promise.allSettled([...this.readers.map((r) => r.close()), ...[...this.writers.values()].map((w) => w.close())]);
    this.readers = [];
    this.writers.clear();
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
  }

  /** Removes partial outputs of a job that will never complete. */
  async discardOutputs(): Promise<void> {
    const files = (this.outputs ?? []).map((o) => path.join(this.dir, o.file));
    // Jobs recorded before outputs sat beside the inputs kept them in an outputs/ folder.
    await Promise.all([...files, path.join(this.dir, "outputs")].map((f) => rm(f, { recursive: true, force: true })));
  }
}
