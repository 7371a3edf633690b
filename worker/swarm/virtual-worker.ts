/**
 * One simulated worker of a swarm, kept lean: tens of thousands of them sit in one process,
 * so each is a handful of fields (no session object, no closures, no maps); the swarm
 * (swarm.ts) drives them all with the shared protocol helpers of worker/core/protocol.ts.
 *
 * State: `waiting` (queued to dial, or backing off) → `dialling` (socket opening, hello
 * sent) → `ready` (welcome received) → back to `waiting` when its connection drops (a
 * simulated dropout or a real failure), until the swarm closes: `closed`.
 *
 * Memory: an idle worker has no timer; a busy one has one timer for the shard it is
 * "running" (slots = 1, so the next shard waits in a short queue). Shard inputs are not
 * kept: only the header is.
 */
import type { WebSocket } from "ws";
import { resultHeader } from "../../shared/protocol/encode.js";
import { planFrame } from "../../shared/protocol/frame.js";
import type { ShardHeader } from "../../shared/protocol/messages.js";
import type { OutputSpec } from "./model-specs.js";
import type { TierName } from "./profiles.js";

export type VirtualState = "waiting" | "dialling" | "ready" | "closed";

export interface PendingShard {
  header: ShardHeader;
  rows: number;
  serviceMs: number;
  outputs: readonly OutputSpec[];
}

export class VirtualWorker {
  state: VirtualState = "waiting";
  socket: WebSocket | null = null;
  /** Consecutive failed dials, for the backoff. */
  attempt = 0;
  /** Set while a dropout is being simulated, so the close that follows is not a failure. */
  droppingOut = false;
  /** Dial deadline, or the wait before the next dial; never both, none while ready. */
  timer: NodeJS.Timeout | null = null;
  /** Shards held, the first one running; null while idle. */
  queue: PendingShard[] | null = null;
  /** Finishes the running shard. */
  runTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly index: number,
    readonly workerId: string,
    readonly tier: TierName,
    readonly flopsPerSec: number,
    readonly localAddress: string | undefined,
  ) {}

  get name(): string {
    return `virtual-${this.tier}-${this.index}`;
  }
}

/** Source address for the i-th connection: 127.0.a.b with b in 2..254, over 16 × 253 addresses. */
export function loopbackSourceAddress(i: number): string {
  const k = i % (16 * 253);
  return `127.0.${Math.floor(k / 253)}.${2 + (k % 253)}`;
}

/** True for a ws:// URL whose host is an IPv4 loopback address. */
export function isIpv4Loopback(url: string): boolean {
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(new URL(url).hostname);
}

/** A standard normal draw (Box-Muller). */
function gaussian(random: () => number): number {
  const u = Math.max(Number.MIN_VALUE, random());
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/** Milliseconds a device doing `flopsPerSec` needs for `flops`, times a mean-one lognormal factor exp(σZ − σ²/2). */
export function serviceMs(flops: number, flopsPerSec: number, sigma: number, random: () => number): number {
  const mean = (flops * 1000) / flopsPerSec;
  const factor = sigma > 0 ? Math.exp(sigma * gaussian(random) - (sigma * sigma) / 2) : 1;
  return mean * factor;
}

/** The `result` frame for a simulated shard: zero outputs of the model's shapes. */
export function simulatedResult(shard: PendingShard): Uint8Array {
  const header = resultHeader(shard.header.shardId, shard.header.jobId, Math.round(shard.serviceMs * 1000) / 1000, 0);
  // A fresh frame is zero-filled: the outputs need no writing.
  return planFrame(header, shard.outputs.map((o) => ({ name: o.name, dtype: o.dtype, dims: [shard.rows, ...o.tail] }))).frame;
}
