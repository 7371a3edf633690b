/**
 * Tiny fakes for driving the scheduler without sockets or processes: a link that records
 * what the scheduler sends (parsed with the worker's own parsers), workers that answer on
 * their own or when the test says so, and jobs in a real JobDb on a temp dir whose input
 * rows are in memory. The model is y = x0 + x1 per row: x is [rows, 2] float32, y [rows, 1].
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { JobDb, VerificationSchema, type ModelRow } from "../../coordinator/jobs/job-db.js";
import { Job } from "../../coordinator/jobs/job.js";
import { CoordinatorEvents } from "../../coordinator/observe/events.js";
import { Throughput } from "../../coordinator/observe/throughput.js";
import { Scheduler, type SchedulerOptions } from "../../coordinator/scheduling/scheduler.js";
import { WorkerSession, type WorkerLink } from "../../coordinator/workers/session.js";
import { drainingMessage, resultHeader, shardErrorMessage } from "../../shared/protocol/encode.js";
import { encodeFrame } from "../../shared/protocol/frame.js";
import {
  HelloSchema,
  PROTOCOL_VERSION,
  parseCoordinatorText,
  parseResultFrame,
  parseShardFrame,
  parseWorkerText,
  type CoordinatorTextMessage,
  type ShardHeader,
} from "../../shared/protocol/messages.js";
import { readNpyFile } from "../../shared/node/npy-file.js";

export const MODEL: ModelRow = {
  sha256: "a".repeat(64),
  bytes: 1,
  info: {
    inputs: [{ name: "x", dtype: "float32", shape: ["N", 2] }],
    outputs: [{ name: "y", dtype: "float32", shape: ["N", 1] }],
    opset: 13,
    fixedBatch: false,
    flopsPerSample: 1000,
  },
};

/** The fake model's right answer for input rows `x`. */
export function modelOf(x: Float32Array): Float32Array {
  const y = new Float32Array(x.length / 2);
  for (let i = 0; i < y.length; i++) y[i] = x[2 * i]! + x[2 * i + 1]!;
  return y;
}

/** A shard frame as a worker received it. */
export interface Received {
  header: ShardHeader;
  /** Its input rows (a copy). */
  x: Float32Array;
}

/** The shard index inside a shard id (`job.idx.seq`); -1 for a canary. */
export function shardIdx(shardId: string): number {
  return Number(shardId.split(".")[1]);
}

/** Records every message the scheduler sends to one worker. */
export class FakeLink implements WorkerLink {
  readonly texts: CoordinatorTextMessage[] = [];
  readonly shards: Received[] = [];
  isOpen = true;
  onShard: ((r: Received) => void) | null = null;
  private waiters: Array<{ n: number; wake: () => void }> = [];

  send(data: string | Uint8Array, sent?: (err?: Error) => void): void {
    if (typeof data === "string") {
      this.texts.push(parseCoordinatorText(data));
    } else {
      const f = parseShardFrame(data);
      const r = { header: f.header, x: Float32Array.from(f.tensors[0]!.data as Float32Array) };
      this.shards.push(r);
      this.waiters = this.waiters.filter((w) => (this.shards.length >= w.n ? (w.wake(), false) : true));
      this.onShard?.(r);
    }
    sent?.();
  }

  close(): void {
    this.isOpen = false;
  }

  terminate(): void {
    this.isOpen = false;
  }

  ping(): void {}
  pause(): void {}

  /** Resolves once `n` shard frames have arrived in all. */
  received(n: number): Promise<Received[]> {
    if (this.shards.length >= n) return Promise.resolve(this.shards);
    return new Promise((resolve) => this.waiters.push({ n, wake: () => resolve(this.shards) }));
  }

  /** Shard ids the scheduler cancelled, in order. */
  get cancels(): string[] {
    return this.texts.flatMap((m) => (m.type === "cancel" ? [m.shardId] : []));
  }
}

/** How a fake worker answers: right, wrong (+100), with an E_MODEL_LOAD shard_error, or only when told (manual). */
export type Behaviour = "honest" | "liar" | "error" | "manual";

export class FakeWorker {
  readonly link = new FakeLink();
  readonly session: WorkerSession;

  constructor(
    private readonly scheduler: Scheduler,
    readonly id: string,
    behaviour: Behaviour,
    slots: number,
    prefetch: number,
  ) {
    this.session = new WorkerSession(`conn-${id}-${Math.random()}`, this.link, "test", prefetch);
    this.session.markReady(
      HelloSchema.parse({ type: "hello", protocol: PROTOCOL_VERSION, workerId: id, name: id, platform: "test", cpus: 1, memoryBytes: 0, runtime: { name: "fake", version: "0" }, threads: 1, slots }),
    );
    // Answers come a turn later, the way a socket would deliver them, not from inside a send.
    if (behaviour === "honest") this.link.onShard = (r) => setImmediate(() => this.answer(r));
    if (behaviour === "liar") this.link.onShard = (r) => setImmediate(() => this.answer(r, modelOf(r.x).map((v) => v + 100)));
    if (behaviour === "error") this.link.onShard = (r) => setImmediate(() => this.fail(r, "E_MODEL_LOAD", `${id} cannot load the model`));
  }

  /** Sends the result for `r`: right, or `y` when given. */
  answer(r: Received, y = modelOf(r.x), computeMs = 1): void {
    if (this.session.state === "closed") return;
    const rows = r.header.end - r.header.start;
    const frame = encodeFrame(resultHeader(r.header.shardId, r.header.jobId, computeMs, 0), [{ name: "y", dtype: "float32", dims: [rows, 1], data: y }]);
    this.scheduler.onResult(this.session, parseResultFrame(frame), frame.byteLength);
  }

  /** Sends a shard_error for `r`. */
  fail(r: Received, code: string, message: string): void {
    if (this.session.state === "closed") return;
    const msg = parseWorkerText(shardErrorMessage(r.header.shardId, r.header.jobId, code, message));
    if (msg.type === "shard_error") this.scheduler.onShardError(this.session, msg);
  }

  /** Says it is leaving and will not run `released`. */
  drain(released: string[]): void {
    const msg = parseWorkerText(drainingMessage(released));
    if (msg.type === "draining") this.scheduler.onDraining(this.session, msg);
  }

  /** Its connection went. */
  leave(): void {
    this.session.close();
    this.scheduler.removeWorker(this.session);
  }
}

export interface JobSpec {
  rows: number;
  /** Rows per shard (default 1). */
  shardSize?: number;
  redundancy?: number;
  /** Rows to use as canaries (their answers computed here). */
  canaries?: number[];
}

/** A scheduler with its events and database on a temp dir; close() removes it all. */
export class Harness {
  readonly events = new CoordinatorEvents(pino({ level: "silent" }));
  readonly scheduler: Scheduler;
  readonly finished: Job[] = [];
  db: JobDb;
  private jobs = 0;

  private constructor(
    readonly dir: string,
    opts: Partial<SchedulerOptions>,
  ) {
    this.db = new JobDb(path.join(dir, "edgepool.sqlite"));
    this.db.putModel(MODEL.sha256, MODEL.bytes, MODEL.info);
    this.scheduler = this.newScheduler(opts);
  }

  static async create(opts: Partial<SchedulerOptions> = {}): Promise<Harness> {
    return new Harness(await mkdtemp(path.join(os.tmpdir(), "edgepool-sched-")), opts);
  }

  /** Another scheduler on the same events and database (a restarted coordinator). */
  newScheduler(opts: Partial<SchedulerOptions> = {}): Scheduler {
    return new Scheduler(
      pino({ level: "silent" }),
      this.events,
      { real: new Throughput(), virtual: new Throughput() },
      { maxShardAttempts: 3, targetShardMs: 100, probeTimeoutMs: 60_000, minShardTimeoutMs: 1000, ...opts },
      { jobFinished: (job) => this.finished.push(job) },
    );
  }

  /** Closes the database and opens it again, as a restart would. */
  reopenDb(): JobDb {
    this.db.close();
    this.db = new JobDb(path.join(this.dir, "edgepool.sqlite"));
    return this.db;
  }

  /** The input rows of a job of `rows` rows: x[i] = [2i, 2i + 1]. */
  static inputs(rows: number): Float32Array {
    return Float32Array.from({ length: rows * 2 }, (_, i) => i);
  }

  /** Records a job and opens it with its inputs in memory (not handed to the scheduler yet). */
  async job(spec: JobSpec): Promise<Job> {
    const id = `j_${String(++this.jobs).padStart(16, "0")}`;
    this.db.insertJob({
      id,
      model: MODEL.sha256,
      rows: spec.rows,
      inputs: [{ name: "x", file: "in-0-x.npy", dtype: "float32", shape: [spec.rows, 2] }],
      createdAt: Date.now(),
      fixedShardSize: spec.shardSize ?? 1,
      verification: VerificationSchema.parse({ redundancy: spec.redundancy }),
    });
    const job = await this.open(id, spec.rows);
    const x = Harness.inputs(spec.rows);
    job.canaries = (spec.canaries ?? []).map((row) => ({ row, outputs: [{ name: "y", dtype: "float32", dims: [1, 1], data: modelOf(x.subarray(2 * row, 2 * row + 2)) }] }));
    return job;
  }

  /** Opens job `id` from the database as it is now (as a restart would). */
  open(id: string, rows: number): Promise<Job> {
    const x = Harness.inputs(rows);
    return Job.open(this.db.getJob(id)!, MODEL, path.join(this.dir, id), this.db, new Map([["x", { dtype: "float32" as const, dims: [rows, 2], data: x }]]));
  }

  worker(id: string, behaviour: Behaviour, opts: { slots?: number; prefetch?: number; scheduler?: Scheduler } = {}): FakeWorker {
    const scheduler = opts.scheduler ?? this.scheduler;
    const w = new FakeWorker(scheduler, id, behaviour, opts.slots ?? 1, opts.prefetch ?? 1);
    scheduler.addWorker(w.session);
    return w;
  }

  /** The output y of a finished job, as written to its file. */
  async output(job: Job): Promise<number[]> {
    const out = job.stored().outputs![0]!;
    const t = await readNpyFile(path.join(this.dir, job.id, out.file));
    return [...(t.data as Float32Array)];
  }

  async close(): Promise<void> {
    this.db.close();
    await rm(this.dir, { recursive: true, force: true });
  }
}
