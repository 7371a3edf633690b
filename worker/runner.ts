/**
 * ONNX Runtime sessions, one per model hash, and running a shard's rows through them.
 *
 * Inputs are handed to ONNX Runtime as views on the frame they arrived in (no copy). Outputs
 * are copied exactly once, into buffers the caller supplies (`OutputAllocator`), which lets
 * the daemon write them straight into the result frame. A model whose batch dim is fixed at 1
 * runs the shard one row at a time on zero-copy row views, and the per-row outputs land at
 * their row offset in the same caller-supplied buffer, so that path costs no extra copy either.
 *
 * onnxruntime-node runs a session synchronously on the JS thread, so nothing else (pong
 * replies, incoming frames, timers) happens during one `session.run`. The row-by-row path
 * gives the event loop a turn between rows, so a long sample-by-sample shard blocks it for
 * one row at a time, not for the whole shard.
 *
 * Sessions are reference-counted while a run uses them; the least recently used idle ones
 * are released once more than `maxSessions` are loaded.
 */
import { setImmediate as nextTurn } from "node:timers/promises";
import * as ort from "onnxruntime-node";
import type { Logger } from "pino";
import { EdgepoolError, toEdgepoolError } from "../shared/errors.js";
import type { NamedTensor, TensorSpec } from "../shared/protocol/frame.js";
import { validateShardInputs } from "../shared/tensor/job-inputs.js";
import { readModelInfo, type ModelInfo } from "../shared/onnx/model-info.js";
import { sliceRows } from "../shared/tensor/tensor-ops.js";
import { type DType, type Tensor, bytesPerElement, elementCount, isDType, viewOf } from "../shared/tensor/tensor.js";

export interface RunnerOptions {
  /** ONNX Runtime intra-op threads per session. */
  threads: number;
  log: Logger;
  /** Idle sessions beyond this many are released, least recently used first. */
  maxSessions?: number;
}

/**
 * Given the outputs' final names, dtypes and dims, returns one writable byte buffer per
 * output, each exactly `elementCount(dims) * bytesPerElement(dtype)` long and 8-byte aligned.
 */
export type OutputAllocator = (specs: TensorSpec[]) => Uint8Array[];

interface SessionEntry {
  sha256: string;
  session: ort.InferenceSession;
  info: ModelInfo;
  users: number;
  lastUsed: number;
  /** Evicted or closed while in use: released when the last run ends. */
  retired: boolean;
}

/** Fresh buffers, one per output: what `run` uses when the caller supplies none. */
export const allocateOutputs: OutputAllocator = (specs) =>
  specs.map((s) => new Uint8Array(elementCount(s.dims) * bytesPerElement(s.dtype)));

function fmt(shape: readonly (number | string)[]): string {
  return `[${shape.join(",")}]`;
}

function short(sha256: string): string {
  return sha256.slice(0, 12);
}

/** An ort.Tensor over the same memory as `t`. */
function toOrt(t: Tensor): ort.Tensor {
  const dims = t.dims;
  // The switch narrows the data type for ORT's overloads; each branch passes the typed array
  // itself, which ORT keeps by reference.
  switch (t.dtype) {
    case "float32":
      return new ort.Tensor("float32", t.data as Float32Array, dims);
    case "float16":
      return new ort.Tensor("float16", t.data as Uint16Array, dims);
    case "float64":
      return new ort.Tensor("float64", t.data as Float64Array, dims);
    case "int8":
      return new ort.Tensor("int8", t.data as Int8Array, dims);
    case "uint8":
      return new ort.Tensor("uint8", t.data as Uint8Array, dims);
    case "bool":
      return new ort.Tensor("bool", t.data as Uint8Array, dims);
    case "int32":
      return new ort.Tensor("int32", t.data as Int32Array, dims);
    case "int64":
      return new ort.Tensor("int64", t.data as BigInt64Array, dims);
  }
}

function ortBytes(t: ort.Tensor): Uint8Array {
  const data = t.data;
  if (!ArrayBuffer.isView(data)) {
    throw new EdgepoolError("E_INFERENCE", `output of type ${t.type} has no numeric data; edgepool only returns numeric tensors`);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function outputDType(name: string, t: ort.Tensor): DType {
  if (!isDType(t.type)) {
    throw new EdgepoolError("E_DTYPE", `model output '${name}' is ${t.type}, which edgepool cannot return; export it as float32`);
  }
  return t.type;
}

export class Runner {
  private readonly sessions = new Map<string, SessionEntry>();
  private readonly loading = new Map<string, Promise<SessionEntry>>();
  private readonly maxSessions: number;
  private closed = false;

  constructor(private readonly opts: RunnerOptions) {
    this.maxSessions = opts.maxSessions ?? 4;
  }

  /** True when a session for this model is loaded. */
  has(sha256: string): boolean {
    return this.sessions.has(sha256);
  }

  /** The loaded model's signature, if loaded. */
  info(sha256: string): ModelInfo | undefined {
    return this.sessions.get(sha256)?.info;
  }

  /**
   * Makes sure a session for `sha256` is loaded, calling `fetchBytes` only when it is not;
   * concurrent calls for one model share one load.
   */
  async load(sha256: string, fetchBytes: () => Promise<Uint8Array>): Promise<ModelInfo> {
    this.assertOpen();
    const have = this.sessions.get(sha256);
    if (have) return have.info;
    let p = this.loading.get(sha256);
    if (!p) {
      p = this.create(sha256, fetchBytes).finally(() => this.loading.delete(sha256));
      this.loading.set(sha256, p);
    }
    return (await p).info;
  }

  /**
   * Runs `rows` rows through model `sha256` (already loaded) and returns its outputs in the
   * model's output order, each with `rows` as dim 0, written into buffers from `alloc`.
   */
  async run(sha256: string, inputs: readonly NamedTensor[], rows: number, alloc: OutputAllocator = allocateOutputs): Promise<NamedTensor[]> {
    this.assertOpen();
    const entry = this.sessions.get(sha256);
    if (!entry) throw new EdgepoolError("E_STATE", `model ${short(sha256)} is not loaded; call load() first`);
    validateShardInputs(entry.info, inputs, rows);
    entry.users += 1;
    entry.lastUsed = performance.now();
    try {
      return entry.info.fixedBatch && rows > 1
        ? await this.runRowByRow(entry, inputs, rows, alloc)
        : await this.runBatch(entry, inputs, rows, alloc);
    } finally {
      entry.users -= 1;
      entry.lastUsed = performance.now();
      if (entry.retired && entry.users === 0) await this.release(entry);
    }
  }

  /** Releases every session (those in use when their run ends). Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.loading.values()]);
    const entries = [...this.sessions.values()];
    this.sessions.clear();
    for (const e of entries) {
      e.retired = true;
      if (e.users === 0) await this.release(e);
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new EdgepoolError("E_STATE", "the runner is closed");
  }

  private async create(sha256: string, fetchBytes: () => Promise<Uint8Array>): Promise<SessionEntry> {
    const bytes = await fetchBytes();
    const info = readModelInfo(bytes);
    const started = performance.now();
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, {
        intraOpNumThreads: this.opts.threads,
        // One graph branch at a time: parallelism comes from intra-op threads and from slots.
        interOpNumThreads: 1,
        executionProviders: ["cpu"],
        // ONNX Runtime's own warnings (unused initializers and the like) go to stderr
        // unstructured; errors still surface as exceptions from create/run.
        logSeverityLevel: 3,
      });
    } catch (err) {
      throw new EdgepoolError("E_MODEL_LOAD", `ONNX Runtime cannot load model ${short(sha256)}: ${toEdgepoolError(err).message}`, { cause: err });
    }
    const entry: SessionEntry = { sha256, session, info, users: 0, lastUsed: performance.now(), retired: false };
    if (this.closed) {
      await this.release(entry);
      throw new EdgepoolError("E_STATE", "the runner closed while the model was loading");
    }
    this.sessions.set(sha256, entry);
    this.opts.log.info(
      { model: sha256, inputs: info.inputs.map((i) => `${i.name}:${i.dtype}${fmt(i.shape)}`), fixedBatch: info.fixedBatch, ms: Math.round(performance.now() - started) },
      "model loaded",
    );
    await this.evict();
    return entry;
  }

  private async evict(): Promise<void> {
    while (this.sessions.size > this.maxSessions) {
      let victim: SessionEntry | undefined;
      for (const e of this.sessions.values()) {
        if (e.users === 0 && (!victim || e.lastUsed < victim.lastUsed)) victim = e;
      }
      if (!victim) return;
      this.sessions.delete(victim.sha256);
      victim.retired = true;
      await this.release(victim);
    }
  }

  private async release(e: SessionEntry): Promise<void> {
    try {
      await e.session.release();
      this.opts.log.debug({ model: e.sha256 }, "model session released");
    } catch (err) {
      this.opts.log.warn({ model: e.sha256, err: toEdgepoolError(err).message }, "cannot release model session");
    }
  }

  private async infer(entry: SessionEntry, inputs: readonly Tensor[], names: readonly string[]): Promise<ort.InferenceSession.OnnxValueMapType> {
    const feeds: Record<string, ort.Tensor> = {};
    names.forEach((name, i) => {
      feeds[name] = toOrt(inputs[i]!);
    });
    try {
      return await entry.session.run(feeds);
    } catch (err) {
      throw new EdgepoolError("E_INFERENCE", `ONNX Runtime failed on model ${short(entry.sha256)}: ${toEdgepoolError(err).message}`, { cause: err });
    }
  }

  private outputOf(entry: SessionEntry, result: ort.InferenceSession.OnnxValueMapType, name: string): ort.Tensor {
    const t = result[name];
    if (!(t instanceof ort.Tensor)) {
      throw new EdgepoolError("E_INFERENCE", `model ${short(entry.sha256)} returned no tensor named '${name}'`);
    }
    return t;
  }

  private async runBatch(entry: SessionEntry, inputs: readonly NamedTensor[], rows: number, alloc: OutputAllocator): Promise<NamedTensor[]> {
    const result = await this.infer(entry, inputs, inputs.map((t) => t.name));
    const names = entry.session.outputNames;
    const outs = names.map((name) => this.outputOf(entry, result, name));
    const specs = outs.map((t, i): TensorSpec => {
      const name = names[i]!;
      const dims = [...t.dims];
      if (dims[0] !== rows) {
        // Rows are reassembled by dim 0 on the coordinator; an output without it cannot be.
        throw new EdgepoolError("E_SHAPE", `model output '${name}' has dims ${fmt(dims)}; edgepool needs dim 0 to be the ${rows} input rows`);
      }
      return { name, dtype: outputDType(name, t), dims };
    });
    const slots = this.allocate(alloc, specs);
    outs.forEach((t, i) => slots[i]!.set(ortBytes(t)));
    return this.wrap(specs, slots);
  }

  private async runRowByRow(entry: SessionEntry, inputs: readonly NamedTensor[], rows: number, alloc: OutputAllocator): Promise<NamedTensor[]> {
    const names = entry.session.outputNames;
    const inputNames = inputs.map((t) => t.name);
    const perRow: ort.Tensor[][] = [];
    for (let r = 0; r < rows; r++) {
      // Its own turn, whether or not the binding defers the run (1.x happens to, via
      // setImmediate): socket reads and pongs between rows must not depend on that.
      if (r > 0) await nextTurn();
      const result = await this.infer(entry, inputs.map((t) => sliceRows(t, r, r + 1)), inputNames);
      perRow.push(names.map((name) => this.outputOf(entry, result, name)));
    }
    const first = perRow[0]!;
    const specs = first.map((t, i): TensorSpec => {
      const name = names[i]!;
      if (t.dims[0] !== 1) {
        throw new EdgepoolError("E_SHAPE", `model output '${name}' has dims ${fmt(t.dims)} for one row; edgepool needs dim 0 to be 1`);
      }
      return { name, dtype: outputDType(name, t), dims: [rows, ...t.dims.slice(1)] };
    });
    const slots = this.allocate(alloc, specs);
    specs.forEach((spec, i) => {
      const rowLen = slots[i]!.byteLength / rows;
      for (let r = 0; r < rows; r++) {
        const bytes = ortBytes(perRow[r]![i]!);
        if (bytes.byteLength !== rowLen) {
          throw new EdgepoolError("E_SHAPE", `model output '${spec.name}' changed shape between rows (row ${r} gives ${bytes.byteLength} bytes, row 0 gives ${rowLen})`);
        }
        slots[i]!.set(bytes, r * rowLen);
      }
    });
    return this.wrap(specs, slots);
  }

  private allocate(alloc: OutputAllocator, specs: TensorSpec[]): Uint8Array[] {
    const slots = alloc(specs);
    specs.forEach((s, i) => {
      const want = elementCount(s.dims) * bytesPerElement(s.dtype);
      if (slots[i]?.byteLength !== want) {
        throw new EdgepoolError("E_INTERNAL", `output buffer for '${s.name}' is ${slots[i]?.byteLength ?? "missing"} bytes, needs ${want}`);
      }
    });
    return slots;
  }

  private wrap(specs: readonly TensorSpec[], slots: readonly Uint8Array[]): NamedTensor[] {
    return specs.map((s, i) => {
      const slot = slots[i]!;
      return { name: s.name, dtype: s.dtype, dims: s.dims, data: viewOf(s.dtype, slot.buffer, slot.byteOffset, elementCount(s.dims)) };
    });
  }
}
