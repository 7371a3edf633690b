/**
 * Binary frame codec. Tensors never travel as JSON; a frame is
 *
 *   [u32 LE header length][JSON header][zero padding to 8 bytes][tensor bytes, each 8-aligned]
 *
 * The header is a JSON object: the message fields plus `tensors`, a table of
 * { name, dtype, dims, offset, length } where offset is from the start of the frame. A
 * receiver builds typed-array views on the frame without copying (it copies once only when
 * the frame itself sits at an unaligned address in its buffer). No `node:` imports: the
 * browser worker uses this file too.
 */
import { z } from "zod";
import { EdgepoolError } from "../errors.js";
import { DTYPES, type DType, type Tensor, bytesPerElement, elementCount, viewOf, tensorBytes } from "../tensor/tensor.js";

/** The HTTP media type of a body that is one frame (an inline job, and the answer carrying its outputs). */
export const FRAME_MEDIA_TYPE = "application/vnd.edgepool.frame";

/** Largest JSON header accepted; a peer that claims more is sending garbage. */
export const MAX_HEADER_BYTES = 1 << 20;

const TensorEntrySchema = z.object({
  name: z.string().min(1).max(256),
  dtype: z.enum(DTYPES),
  dims: z.array(z.number().int().nonnegative()).max(16),
  offset: z.number().int().nonnegative(),
  length: z.number().int().nonnegative(),
});
const TensorTableSchema = z.array(TensorEntrySchema).max(256);

export type TensorEntry = z.infer<typeof TensorEntrySchema>;

export interface TensorSpec {
  name: string;
  dtype: DType;
  dims: number[];
}

export interface NamedTensor extends Tensor {
  name: string;
}

export interface PlannedFrame {
  /** The whole frame; send this. */
  frame: Uint8Array;
  /** One writable byte view per tensor spec, in order, to be filled by the caller. */
  slots: Uint8Array[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Header bytes reserved on the first layout pass: the last frame's header length plus slack. */
let lastHeaderReserve = 0;
/** Padding after a header beyond which the layout is redone tighter. */
const MAX_HEADER_SLACK = 64;

function align8(n: number): number {
  return (n + 7) & ~7;
}

/**
 * Lays out a frame for the given header and tensor specs and returns writable views for the
 * tensor bytes, so a caller can read data straight into the frame (one buffer, no copies).
 */
export function planFrame(header: Record<string, unknown>, specs: readonly TensorSpec[], alloc?: (bytes: number) => Uint8Array): PlannedFrame {
  // Offsets depend on the header's length, which depends on the offsets' digits: lay out
  // with an estimate (the last header's length: frames in a stream look alike, so one pass
  // usually does), then redo it if the real header is longer, or much shorter.
  let reserve = lastHeaderReserve;
  const entries: TensorEntry[] = [];
  for (;;) {
    const probeStart = align8(4 + reserve);
    const total = layOut(specs, probeStart, entries);
    const headerLen = encodeHeader(JSON.stringify({ ...header, tensors: entries }));
    if (align8(4 + headerLen) > probeStart || probeStart - align8(4 + headerLen) > MAX_HEADER_SLACK) {
      reserve = headerLen + 16;
      lastHeaderReserve = reserve;
      continue;
    }
    if (headerLen > MAX_HEADER_BYTES) {
      throw new EdgepoolError("E_PROTOCOL", `frame header of ${headerLen} bytes exceeds ${MAX_HEADER_BYTES}`);
    }
    const frame = alloc ? alloc(total) : new Uint8Array(total);
    frame[0] = headerLen & 0xff;
    frame[1] = (headerLen >>> 8) & 0xff;
    frame[2] = (headerLen >>> 16) & 0xff;
    frame[3] = headerLen >>> 24;
    frame.set(headerScratch.subarray(0, headerLen), 4);
    // A fresh buffer is zero; a reused one gets its padding zeroed (the slots are the caller's to fill).
    if (alloc) {
      frame.fill(0, 4 + headerLen, probeStart);
      for (let i = 0; i < entries.length; i++) frame.fill(0, entries[i]!.offset + entries[i]!.length, entries[i + 1]?.offset ?? total);
    }
    const slots: Uint8Array[] = [];
    for (const e of entries) slots.push(frame.subarray(e.offset, e.offset + e.length));
    return { frame, slots };
  }
}

/** Fills `entries` with the tensors' places from `dataStart` on; returns the frame's total length. */
function layOut(specs: readonly TensorSpec[], dataStart: number, entries: TensorEntry[]): number {
  entries.length = 0;
  let off = dataStart;
  for (const s of specs) {
    const length = elementCount(s.dims) * bytesPerElement(s.dtype);
    entries.push({ name: s.name, dtype: s.dtype, dims: s.dims, offset: off, length });
    off = align8(off + length);
  }
  return off;
}

/** UTF-8 of the last header encoded, reused from frame to frame (a header is copied out at once). */
let headerScratch = new Uint8Array(4096);

/** Encodes `json` into headerScratch, growing it when needed; returns its length in bytes. */
function encodeHeader(json: string): number {
  // UTF-8 takes at most 3 bytes per UTF-16 unit.
  if (json.length * 3 > headerScratch.byteLength) headerScratch = new Uint8Array(json.length * 3);
  return encoder.encodeInto(json, headerScratch).written;
}

/** Size of the slabs small frames are cut from. */
const SLAB_BYTES = 256 * 1024;

/**
 * Frame buffers kept for reuse, by exact size, up to `maxBytes` in all. A stream of large
 * frames of one size (a job's shards) then allocates no new memory per frame: at a gigabyte a
 * second, fresh buffers kept V8's collector running a full collection every 50 ms or so.
 * A buffer must be given back only once nothing will read it again (its send has completed).
 */
export class FramePool {
  private readonly free = new Map<number, Uint8Array[]>();
  /** The buffers in `free`: one given back twice must not be handed out twice. */
  private readonly isFree = new WeakSet<Uint8Array>();
  private bytes = 0;

  /**
   * Frames under `minBytes` are neither kept nor reused: they are cut from a shared slab,
   * which spares a separate allocation (and its collection) per tiny frame; tens of
   * thousands a second cost the coordinator about a tenth of its time per shard.
   */
  constructor(
    private readonly maxBytes: number,
    readonly minBytes = 64 * 1024,
  ) {}

  private slab = new ArrayBuffer(0);
  private slabUsed = 0;

  private small(size: number): Uint8Array {
    const room = align8(size);
    if (this.slabUsed + room > this.slab.byteLength) {
      // The old slab lives on while a frame cut from it does (in a socket's queue, say).
      this.slab = new ArrayBuffer(Math.max(SLAB_BYTES, room));
      this.slabUsed = 0;
    }
    const view = new Uint8Array(this.slab, this.slabUsed, size);
    this.slabUsed += room;
    return view;
  }

  /** A buffer of exactly `size` bytes, with whatever bytes it last held. */
  readonly take = (size: number): Uint8Array => {
    if (size < this.minBytes) return this.small(size);
    const list = this.free.get(size);
    const buf = list?.pop();
    if (!buf) return new Uint8Array(size);
    this.isFree.delete(buf);
    this.bytes -= size;
    return buf;
  };

  give(buf: Uint8Array): void {
    if (buf.byteLength < this.minBytes || buf.byteOffset !== 0 || buf.byteLength !== buf.buffer.byteLength) return;
    if (this.isFree.has(buf) || this.bytes + buf.byteLength > this.maxBytes) return;
    this.isFree.add(buf);
    const list = this.free.get(buf.byteLength) ?? [];
    if (list.length === 0) this.free.set(buf.byteLength, list);
    list.push(buf);
    this.bytes += buf.byteLength;
  }
}

/** Encodes a header and tensors into one frame (one allocation, one copy of each tensor). */
export function encodeFrame(header: Record<string, unknown>, tensors: readonly NamedTensor[], alloc?: (bytes: number) => Uint8Array): Uint8Array {
  const { frame, slots } = planFrame(
    header,
    tensors.map((t) => ({ name: t.name, dtype: t.dtype, dims: t.dims })),
    alloc,
  );
  tensors.forEach((t, i) => slots[i]!.set(tensorBytes(t)));
  return frame;
}

export interface DecodedFrame {
  /** The JSON header without its tensor table, still unvalidated. */
  header: unknown;
  tensors: NamedTensor[];
}

/**
 * Decodes a frame into its header and zero-copy tensor views. Throws E_PROTOCOL with a
 * precise reason on any malformed input; never reads outside the frame.
 */
export function decodeFrame(input: Uint8Array): DecodedFrame {
  let bytes = input;
  // Uint8Array.prototype.slice copies, but Buffer#slice would only view: copy explicitly.
  if (bytes.byteOffset % 8 !== 0) bytes = new Uint8Array(bytes);
  if (bytes.byteLength < 4) throw new EdgepoolError("E_PROTOCOL", `binary frame of ${bytes.byteLength} bytes is too short`);
  const headerLen = (bytes[0]! | (bytes[1]! << 8) | (bytes[2]! << 16)) + bytes[3]! * 2 ** 24;
  if (headerLen > MAX_HEADER_BYTES || 4 + headerLen > bytes.byteLength) {
    throw new EdgepoolError("E_PROTOCOL", `binary frame header length ${headerLen} does not fit a ${bytes.byteLength}-byte frame`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(bytes.subarray(4, 4 + headerLen)));
  } catch (cause) {
    throw new EdgepoolError("E_PROTOCOL", "binary frame header is not valid UTF-8 JSON", { cause });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new EdgepoolError("E_PROTOCOL", "binary frame header must be a JSON object");
  }
  const { tensors: rawTable, ...header } = parsed as Record<string, unknown>;
  const table = TensorTableSchema.safeParse(rawTable ?? []);
  if (!table.success) {
    throw new EdgepoolError("E_PROTOCOL", `binary frame tensor table is malformed: ${table.error.issues[0]?.message ?? "invalid"}`);
  }
  const dataStart = align8(4 + headerLen);
  const tensors: NamedTensor[] = [];
  for (const e of table.data) {
    const size = bytesPerElement(e.dtype);
    const count = elementCount(e.dims);
    if (count * size !== e.length) {
      throw new EdgepoolError("E_PROTOCOL", `tensor ${e.name}: dims [${e.dims.join(",")}] ${e.dtype} need ${count * size} bytes, table says ${e.length}`);
    }
    if (e.offset < dataStart || e.offset + e.length > bytes.byteLength || e.offset % 8 !== 0) {
      throw new EdgepoolError("E_PROTOCOL", `tensor ${e.name}: bytes [${e.offset}, ${e.offset + e.length}) lie outside the frame or are unaligned`);
    }
    tensors.push({ name: e.name, dtype: e.dtype, dims: e.dims, data: viewOf(e.dtype, bytes.buffer, bytes.byteOffset + e.offset, count) });
  }
  return { header, tensors };
}
