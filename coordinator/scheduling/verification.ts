/**
 * Result verification for workers nobody vouches for. With redundancy k, a shard is computed
 * by k different workers and their outputs compared within a tolerance. Results fall into
 * groups that agree with each other; a group is accepted once it has at least k members and
 * more than half of all results. Until then each disagreement asks for one more replica, up
 * to `maxReplicas` (2k + 1); past that the attempt fails. The workers outside the accepted
 * group returned wrong numbers, and their trust drops; one caught twice with trust under 0.5
 * is quarantined.
 *
 * `Verifier` holds the replicas of every shard being verified and returns decisions
 * (`ReplicaDecision`, `quarantineReason`); the scheduler acts on them.
 */
import type { NamedTensor } from "../../shared/protocol/frame.js";

export interface Tolerance {
  rtol: number;
  atol: number;
}

/**
 * True when two results have the same outputs, shapes and dtypes, and every element agrees:
 * floats within atol + rtol * |b| (NaN only with NaN), integers and booleans exactly.
 */
export function resultsAgree(a: readonly NamedTensor[], b: readonly NamedTensor[], tol: Tolerance): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.name !== y.name || x.dtype !== y.dtype || x.dims.length !== y.dims.length || x.dims.some((d, k) => d !== y.dims[k])) return false;
    const p = x.data;
    const q = y.data;
    if (p.length !== q.length) return false;
    if (p instanceof Float32Array || p instanceof Float64Array) {
      const qq = q as Float32Array | Float64Array;
      for (let j = 0; j < p.length; j++) {
        const u = p[j]!;
        const v = qq[j]!;
        if (Number.isNaN(u) || Number.isNaN(v)) {
          if (Number.isNaN(u) !== Number.isNaN(v)) return false;
        } else if (Math.abs(u - v) > tol.atol + tol.rtol * Math.abs(v)) return false;
      }
    } else if (x.dtype === "float16") {
      // Half floats are compared through their values, not their bits.
      const pp = p as Uint16Array;
      const qq = q as Uint16Array;
      for (let j = 0; j < pp.length; j++) {
        const u = halfToFloat(pp[j]!);
        const v = halfToFloat(qq[j]!);
        if (Number.isNaN(u) !== Number.isNaN(v) || Math.abs(u - v) > tol.atol + tol.rtol * Math.abs(v)) return false;
      }
    } else {
      for (let j = 0; j < p.length; j++) if (p[j] !== q[j]) return false;
    }
  }
  return true;
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** Whoever computed a replica; only its id is compared. */
export interface Answerer {
  readonly id: string;
}

export type Verdict<W extends Answerer = Answerer> =
  | { kind: "agreed"; tensors: NamedTensor[]; agree: W[]; disagree: W[] }
  /** Not decided yet: this many replicas beyond those received are wanted. */
  | { kind: "pending"; wanted: number }
  /** maxReplicas results and still no majority. */
  | { kind: "undecided"; groups: number };

interface Result<W> {
  by: W;
  tensors: NamedTensor[];
}

/** The replicas of one shard received so far. */
export class Replicas<W extends Answerer = Answerer> {
  private readonly groups: Array<Array<Result<W>>> = [];
  private count = 0;

  constructor(
    readonly redundancy: number,
    readonly maxReplicas: number,
    private readonly tol: Tolerance,
  ) {}

  get received(): number {
    return this.count;
  }

  /** True when `workerId` already answered this shard (replicas must come from different workers). */
  has(workerId: string): boolean {
    return this.groups.some((g) => g.some((r) => r.by.id === workerId));
  }

  /** Replicas wanted in all, given what has been received. */
  get target(): number {
    const best = Math.max(0, ...this.groups.map((g) => g.length));
    if (this.count < this.redundancy) return this.redundancy;
    // One more replica per round of disagreement, until a group can win.
    return best >= this.redundancy && best * 2 > this.count ? this.count : Math.min(this.maxReplicas, this.count + 1);
  }

  add(by: W, tensors: NamedTensor[]): Verdict<W> {
    const group = this.groups.find((g) => resultsAgree(g[0]!.tensors, tensors, this.tol));
    if (group) group.push({ by, tensors });
    else this.groups.push([{ by, tensors }]);
    this.count += 1;
    return this.verdict();
  }

  /** Forgets a worker's answer (it was quarantined: its word no longer counts). */
  drop(workerId: string): void {
    for (let i = this.groups.length - 1; i >= 0; i--) {
      const g = this.groups[i]!;
      const kept = g.filter((r) => r.by.id !== workerId);
      this.count -= g.length - kept.length;
      if (kept.length === 0) this.groups.splice(i, 1);
      else this.groups[i] = kept;
    }
  }

  verdict(): Verdict<W> {
    let best: Array<Result<W>> | undefined;
    for (const g of this.groups) if (!best || g.length > best.length) best = g;
    if (best && best.length >= this.redundancy && best.length * 2 > this.count) {
      return {
        kind: "agreed",
        tensors: best[0]!.tensors,
        agree: best.map((r) => r.by),
        disagree: this.groups.filter((g) => g !== best).flatMap((g) => g.map((r) => r.by)),
      };
    }
    if (this.count >= this.maxReplicas) return { kind: "undecided", groups: this.groups.length };
    return { kind: "pending", wanted: this.target - this.count };
  }
}

export interface VerifyOptions extends Tolerance {
  redundancy: number;
}

/** What to do with one replica's answer. */
export type ReplicaDecision<W extends Answerer> =
  /** This worker already answered this shard (after a reconnect): one vote each, this one is dropped. */
  | { kind: "repeat" }
  /** Not decided yet: more replicas are wanted. */
  | { kind: "wait" }
  /** The most replicas and no majority: the attempt failed, the shard starts over. */
  | { kind: "retry"; cause: string; groups: number }
  /** Agreed: write `tensors`; the workers in `agree` were right, those in `disagree` wrong. */
  | { kind: "accept"; tensors: NamedTensor[]; agree: W[]; disagree: W[] };

const REPEAT = { kind: "repeat" } as const;
const WAIT = { kind: "wait" } as const;

/**
 * The replicas received per shard (`K`, the scheduler's shard object), kept weakly: a shard
 * that leaves with its job takes its answers along, with nothing to clean up.
 */
export class Verifier<K extends object, W extends Answerer> {
  private readonly books = new WeakMap<K, Replicas<W>>();

  /** Replicas wanted for `shard` beyond those received, given `running` copies in flight: true when one more should be sent. */
  wantsMore(shard: K, running: number, redundancy: number): boolean {
    const r = this.books.get(shard);
    return (r?.received ?? 0) + running < (r?.target ?? redundancy);
  }

  /** True when `workerId` answered `shard` already: its replicas must come from other workers. */
  answered(shard: K, workerId: string): boolean {
    return this.books.get(shard)?.has(workerId) ?? false;
  }

  /** Takes `by`'s answer for `shard` and decides. */
  judge(shard: K, by: W, tensors: NamedTensor[], opts: VerifyOptions): ReplicaDecision<W> {
    let r = this.books.get(shard);
    if (!r) {
      r = new Replicas<W>(opts.redundancy, 2 * opts.redundancy + 1, opts);
      this.books.set(shard, r);
    }
    if (r.has(by.id)) return REPEAT;
    const verdict = r.add(by, tensors);
    if (verdict.kind === "pending") return WAIT;
    if (verdict.kind === "undecided") {
      this.books.delete(shard);
      return { kind: "retry", groups: verdict.groups, cause: `${r.maxReplicas} replicas gave ${verdict.groups} different answers` };
    }
    return { kind: "accept", tensors: verdict.tensors, agree: verdict.agree, disagree: verdict.disagree };
  }

  /** Forgets a quarantined worker's answer to `shard`: its word no longer counts. */
  drop(shard: K, workerId: string): void {
    this.books.get(shard)?.drop(workerId);
  }

  /** Forgets `shard`'s answers (its result is written). */
  forget(shard: K): void {
    this.books.delete(shard);
  }
}

/** What the quarantine decision reads of a worker, its last disagreement counted. */
export interface TrustRecord {
  readonly quarantined: boolean;
  readonly disagreements: number;
  readonly trust: number;
}

/** Why a worker that just disagreed should be quarantined, or null: caught twice and trusted less than even. */
export function quarantineReason(w: TrustRecord): string | null {
  if (w.quarantined || w.disagreements < 2 || w.trust >= 0.5) return null;
  return `${w.disagreements} results disagreed with the verified answer`;
}
