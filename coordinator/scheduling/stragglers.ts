/**
 * Stragglers: when no job has anything left to send and workers sit idle, the shards most
 * behind what their workers' rates predicted are copied onto the idle workers. The first
 * result accepted wins and the other copies are cancelled (the scheduler does both). This
 * file only decides which shard goes onto which worker, and how often that is looked at.
 */
import type { Dispatch } from "./dispatch.js";
import type { WorkerSession } from "../workers/session.js";

/** A shard this many times later than predicted may be copied onto an idle worker. */
const STRAGGLER_FACTOR = 1.5;
/** At most this share of in-flight shards (or 2) may have a second copy running. */
const MAX_COPIED_FRACTION = 0.1;
/**
 * Stragglers are looked for at most this often. A scan costs a step per shard in flight, and
 * once a job is fully cut every result would trigger one: with tens of thousands of workers
 * that was most of the coordinator's CPU. A shard is only "late" after 1.5x its predicted
 * time, so looking a few times a second loses nothing.
 */
export const STRAGGLER_SCAN_MS = 100;

/** A decision: run a copy of `of`'s shard on `onto`. */
export interface StragglerCopy {
  readonly of: Dispatch;
  readonly onto: WorkerSession;
}

export class StragglerPolicy {
  private lastScan = Number.NEGATIVE_INFINITY;

  constructor(private readonly targetShardMs: number) {}

  /** 0 when a scan may run now (and it is counted as run), else the ms until one may. */
  scanWait(now: number): number {
    const wait = this.lastScan + STRAGGLER_SCAN_MS - now;
    if (wait > 0) return wait;
    this.lastScan = now;
    return 0;
  }

  /**
   * Picks copies: shards in flight (each shard's copies, from the dispatch table) that are
   * behind their prediction, most behind first, each onto one idle worker from `workers`.
   * Candidates are ranked once per call and workers visited only while there are copies to
   * place, so the cost follows the shards in flight, not the size of the pool.
   */
  plan(inflight: Iterable<readonly Dispatch[]>, workers: Iterable<WorkerSession>, now: number): StragglerCopy[] {
    const late: Array<{ d: Dispatch; score: number }> = [];
    let shards = 0;
    let copied = 0;
    for (const copies of inflight) {
      const first = copies[0];
      // A verified shard already runs on several workers, and a copy must not count twice.
      if (!first || first.job.verifying) continue;
      shards += 1;
      if (copies.length > 1) copied += 1;
      if (copies.length !== 1) continue;
      // A shard may wait behind the others its worker holds, so "behind" allows for credit.
      const expected = (first.expectedMs > 0 ? first.expectedMs : this.targetShardMs) * first.worker.credit;
      const elapsed = now - first.sentAt;
      if (elapsed > STRAGGLER_FACTOR * expected + 50) late.push({ d: first, score: elapsed / expected });
    }
    const picks: StragglerCopy[] = [];
    // Copies are insurance against a few slow devices; when many shards look late, the
    // coordinator itself is the bottleneck and copies would only add to its load.
    let budget = Math.max(2, Math.ceil(shards * MAX_COPIED_FRACTION)) - copied;
    if (late.length === 0 || budget <= 0) return picks;
    late.sort((a, b) => b.score - a.score);
    let next = 0;
    // Idle workers are found lazily: with a large pool most are idle, and a visit costs a step.
    for (const w of workers) {
      if (!w.idle) continue;
      if (budget-- <= 0) break;
      while (next < late.length && late[next]!.d.worker === w) next++;
      const pick = late[next++];
      if (!pick) break;
      picks.push({ of: pick.d, onto: w });
    }
    return picks;
  }
}
