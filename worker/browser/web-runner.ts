/**
 * onnxruntime-web sessions, one per model hash, and a shard's rows through them: the browser
 * twin of worker/runner.ts, with the same rules. Inputs are checked against the model's
 * signature with the same validateShardInputs (shared/tensor/job-inputs.ts); a model whose batch dim is fixed at 1 runs the shard one
 * row at a time on zero-copy row views; outputs must keep the rows as dim 0, and are copied
 * once, into the `result` frame that goes back to the coordinator.
 *
 * The model's signature comes from the session's own metadata rather than from parsing the
 * protobuf here: the protobuf library generates code with eval, which the page's
 * Content-Security-Policy forbids.
 *
 * At most `maxSessions` models stay loaded (a phone has little memory); the least recently
 * used is released first. Loads of one model share one download.
 */
import { EdgepoolError, toEdgepoolError } from "../../shared/errors.js";
import { planFrame, type NamedTensor, type TensorSpec } from "../../shared/protocol/frame.js";
import { type SignatureInput, validateShardInputs } from "../../shared/tensor/job-inputs.js";
import { resultHeader } from "../../shared/protocol/encode.js";
import type { ShardHeader } from "../../shared/protocol/messages.js";
import { sliceRows } from "../../shared/tensor/tensor-ops.js";
import { type DType, type Tensor, isDType } from "../../shared/tensor/tensor.js";
import type { Backend } from "./engine-messages.js";
import type { OrtModule } from "./ort-web.js";

type Session = Awaited<ReturnType<OrtModule["InferenceSession"]["create"]>>;
type OrtTensor = InstanceType<OrtModule["Tensor"]>;

interface Signature {
  inputs: SignatureInput[];
  /** Every input's batch dim is fixed at 1: the shard runs row by row. */
  fixedBatch: boolean;
}

interface Entry {
  sha256: string;
  session: Session;
  info: Signature;
  lastUsed: number;
}

export interface ShardOutput {
  frame: Uint8Array;
  computeMs: number;
  rows: number;
}

function short(sha256: string): string {
  return sha256.slice(0, 12);
}

function fmt(shape: readonly (number | string)[]): string {
  return `[${shape.join(",")}]`;
}

export class WebRunner {
  private readonly sessions = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<Entry>>();

  constructor(
    private readonly ort: OrtModule,
    private readonly backend: Backend,
    private readonly opts: { maxSessions: number; onLoaded?: (e: { sha256: string; bytes: number; ms: number; fixedBatch: boolean }) => void },
  ) {}

  /** Makes sure model `sha256` is loaded, fetching it with `fetchBytes` only when it is not. */
  async load(sha256: string, fetchBytes: () => Promise<Uint8Array>): Promise<void> {
    if (this.sessions.has(sha256)) return;
    let p = this.loading.get(sha256);
    if (!p) {
      p = this.create(sha256, fetchBytes).finally(() => this.loading.delete(sha256));
      this.loading.set(sha256, p);
    }
    await p;
  }

  /** Runs the shard's rows and returns its `result` frame. */
  async run(header: ShardHeader, inputs: readonly NamedTensor[]): Promise<ShardOutput> {
    const entry = this.sessions.get(header.model);
    if (!entry) throw new EdgepoolError("E_STATE", `model ${short(header.model)} is not loaded`);
    const rows = header.end - header.start;
    validateShardInputs(entry.info, inputs, rows);
    entry.lastUsed = performance.now();
    const started = performance.now();
    const perRow: OrtTensor[][] = [];
    const names = entry.session.outputNames;
    if (entry.info.fixedBatch && rows > 1) {
      for (let r = 0; r < rows; r++) perRow.push(await this.infer(entry, inputs.map((t) => ({ ...sliceRows(t, r, r + 1), name: t.name }))));
    } else {
      perRow.push(await this.infer(entry, inputs));
    }
    const computeMs = Math.round((performance.now() - started) * 1000) / 1000;
    const batched = perRow.length === 1;
    const specs = perRow[0]!.map((t, i): TensorSpec => {
      const name = names[i]!;
      const want = batched ? rows : 1;
      if (t.dims[0] !== want) {
        throw new EdgepoolError("E_SHAPE", `model output '${name}' has dims ${fmt(t.dims)}; edgepool needs dim 0 to be the ${want} input row(s)`);
      }
      return { name, dtype: outputDType(name, t), dims: [rows, ...t.dims.slice(1)] };
    });
    const { frame, slots } = planFrame(resultHeader(header.shardId, header.jobId, computeMs, 0), specs);
    specs.forEach((spec, i) => {
      const slot = slots[i]!;
      const rowLen = slot.byteLength / rows;
      perRow.forEach((outs, r) => {
        const bytes = ortBytes(outs[i]!);
        if (bytes.byteLength !== (batched ? slot.byteLength : rowLen)) {
          throw new EdgepoolError("E_SHAPE", `model output '${spec.name}' changed shape between rows (row ${r})`);
        }
        slot.set(bytes, batched ? 0 : r * rowLen);
      });
    });
    return { frame, computeMs, rows };
  }

  private async create(sha256: string, fetchBytes: () => Promise<Uint8Array>): Promise<Entry> {
    const started = performance.now();
    const bytes = await fetchBytes();
    let session: Session;
    try {
      session = await this.ort.InferenceSession.create(bytes, { executionProviders: [this.backend], graphOptimizationLevel: "all" });
    } catch (err) {
      throw new EdgepoolError("E_MODEL_LOAD", `onnxruntime-web (${this.backend}) cannot load model ${short(sha256)}: ${toEdgepoolError(err).message}`, { cause: err });
    }
    let info: Signature;
    try {
      info = signatureOf(session);
    } catch (err) {
      await session.release().catch(() => undefined);
      throw err;
    }
    const entry: Entry = { sha256, session, info, lastUsed: performance.now() };
    this.sessions.set(sha256, entry);
    this.opts.onLoaded?.({ sha256, bytes: bytes.byteLength, ms: Math.round(performance.now() - started), fixedBatch: info.fixedBatch });
    await this.evict(sha256);
    return entry;
  }

  /** Releases the least recently used sessions beyond the limit (never the one just loaded). */
  private async evict(keep: string): Promise<void> {
    while (this.sessions.size > this.opts.maxSessions) {
      let victim: Entry | undefined;
      for (const e of this.sessions.values()) if (e.sha256 !== keep && (!victim || e.lastUsed < victim.lastUsed)) victim = e;
      if (!victim) return;
      this.sessions.delete(victim.sha256);
      await victim.session.release().catch(() => undefined);
    }
  }

  private async infer(entry: Entry, inputs: readonly NamedTensor[]): Promise<OrtTensor[]> {
    const feeds: Record<string, OrtTensor> = {};
    for (const t of inputs) feeds[t.name] = this.toOrt(t);
    let result: Record<string, OrtTensor>;
    try {
      result = (await entry.session.run(feeds)) as Record<string, OrtTensor>;
    } catch (err) {
      throw new EdgepoolError("E_INFERENCE", `onnxruntime-web failed on model ${short(entry.sha256)}: ${toEdgepoolError(err).message}`, { cause: err });
    }
    return entry.session.outputNames.map((name) => {
      const t = result[name];
      if (!t) throw new EdgepoolError("E_INFERENCE", `model ${short(entry.sha256)} returned no tensor named '${name}'`);
      return t;
    });
  }

  private toOrt(t: Tensor): OrtTensor {
    const T = this.ort.Tensor;
    switch (t.dtype) {
      case "float32":
        return new T("float32", t.data as Float32Array, t.dims);
      case "float16":
        return new T("float16", t.data as Uint16Array, t.dims);
      case "float64":
        return new T("float64", t.data as Float64Array, t.dims);
      case "int8":
        return new T("int8", t.data as Int8Array, t.dims);
      case "uint8":
        return new T("uint8", t.data as Uint8Array, t.dims);
      case "bool":
        return new T("bool", t.data as Uint8Array, t.dims);
      case "int32":
        return new T("int32", t.data as Int32Array, t.dims);
      case "int64":
        return new T("int64", t.data as BigInt64Array, t.dims);
    }
  }
}

/** The model's tensor inputs as shared/tensor/job-inputs.ts wants them, as readModelInfo would give. */
function signatureOf(session: Session): Signature {
  const inputs = session.inputMetadata.map((m): SignatureInput => {
    if (!m.isTensor) throw new EdgepoolError("E_DTYPE", `model input '${m.name}' is not a tensor; edgepool only serves tensor inputs`);
    if (!isDType(m.type)) throw new EdgepoolError("E_DTYPE", `model input '${m.name}' is ${m.type}, which edgepool does not support`);
    return { name: m.name, dtype: m.type, shape: [...m.shape] };
  });
  return { inputs, fixedBatch: inputs.length > 0 && inputs.every((i) => i.shape[0] === 1) };
}

function ortBytes(t: OrtTensor): Uint8Array {
  const data: unknown = t.data;
  if (!ArrayBuffer.isView(data)) throw new EdgepoolError("E_INFERENCE", `output of type ${t.type} has no numeric data; edgepool only returns numeric tensors`);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function outputDType(name: string, t: OrtTensor): DType {
  if (!isDType(t.type)) throw new EdgepoolError("E_DTYPE", `model output '${name}' is ${t.type}, which edgepool cannot return; export it as float32`);
  return t.type;
}
