/**
 * A job as the API shows it (POST and GET /api/jobs, the inline answer's frame header, the
 * status): one schema, which the coordinator's builder is typed by and the client parses with.
 */
import { z } from "zod";
import { DTYPES } from "../../shared/tensor/tensor.js";
import type { JobRow } from "../jobs/job-db.js";

const UPLOAD_ID_RE = /^[0-9a-f-]{36}$/;

/** What a client sends to create a job (POST /api/jobs, JSON): the schema the server reads it with. */
export const CreateJobSchema = z.object({
  model: z.string().regex(/^[0-9a-f]{64}$/, "model must be the sha256 returned by POST /api/models"),
  inputs: z
    .record(z.string().min(1).max(256), z.string().regex(UPLOAD_ID_RE, "input values must be upload ids"))
    .refine((r) => Object.keys(r).length <= 1024, "at most 1024 inputs"),
  shardSize: z.number().int().positive().optional(),
  /** Workers that compute each shard independently; results must agree (default 1: no check). */
  redundancy: z.number().int().min(1).max(9).optional(),
  rtol: z.number().nonnegative().max(1).optional(),
  atol: z.number().nonnegative().optional(),
  canaries: z.number().int().min(0).max(64).optional(),
});

/** The header of an inline job's frame: the job's settings; its tensors are the inputs. */
export const InlineJobSchema = CreateJobSchema.omit({ inputs: true }).strict();

/** What a client sends to create a job, as the client writes it. */
export type CreateJobRequest = z.input<typeof CreateJobSchema>;
/** A job's settings without its inputs: the header of an inline job's frame. */
export type InlineJobSpec = z.input<typeof InlineJobSchema>;

export const TensorMetaSchema = z.object({ name: z.string(), dtype: z.enum(DTYPES), shape: z.array(z.number()) });

export const JobViewSchema = z.object({
  id: z.string(),
  state: z.enum(["queued", "running", "done", "failed", "cancelled"]),
  model: z.string(),
  rows: z.number(),
  /** Rows per shard when the client fixed it; null when shard sizes follow each worker. */
  shardSize: z.number().nullable(),
  nextRow: z.number(),
  shards: z.number(),
  shardsDone: z.number(),
  samplesDone: z.number(),
  progress: z.number(),
  samplesPerSec: z.number(),
  error: z.string().nullable(),
  inputs: z.array(TensorMetaSchema),
  outputs: z.array(TensorMetaSchema),
  createdAt: z.number(),
  startedAt: z.number().nullable(),
  finishedAt: z.number().nullable(),
  /** Defaulted for coordinators from before result verification. */
  redundancy: z.number().default(1),
});
export type JobView = z.infer<typeof JobViewSchema>;

/** GET /api/jobs. */
export const JobListViewSchema = z.object({ jobs: z.array(JobViewSchema) });
export type JobListView = z.infer<typeof JobListViewSchema>;

/** The header of the frame that answers an inline job done in time; its tensors are the outputs. */
export const InlineAnswerHeaderSchema = z.object({ job: JobViewSchema });
export type InlineAnswerHeader = z.infer<typeof InlineAnswerHeaderSchema>;

/** The public view of a job row. */
export function jobView(row: JobRow): JobView {
  const elapsedMs = row.startedAt ? (row.finishedAt ?? Date.now()) - row.startedAt : 0;
  return {
    id: row.id,
    state: row.state,
    model: row.model,
    rows: row.rows,
    shardSize: row.fixedShardSize,
    nextRow: row.nextRow,
    shards: row.shardCount,
    shardsDone: row.shardsDone,
    samplesDone: row.samplesDone,
    progress: row.rows > 0 ? row.samplesDone / row.rows : 0,
    samplesPerSec: elapsedMs > 0 ? (row.samplesDone * 1000) / elapsedMs : 0,
    error: row.error,
    inputs: row.inputs.map((i) => ({ name: i.name, dtype: i.dtype, shape: i.shape })),
    outputs: (row.outputs ?? []).map((o) => ({ name: o.name, dtype: o.dtype, shape: o.shape })),
    createdAt: row.createdAt,
    startedAt: row.startedAt,
    finishedAt: row.finishedAt,
    redundancy: row.verification.redundancy,
  };
}
