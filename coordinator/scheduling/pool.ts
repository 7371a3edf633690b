/**
 * The workers the scheduler may give shards to: who is connected, who is draining, who may
 * have free credit (`hungry`: only those are visited by a pump, so a result costs work in
 * proportion to what it freed, not to the size of the pool), who left with work done (for the
 * report), and which worker ids are quarantined (by persistent id, so a reconnect does not
 * clear it).
 */
import type { WorkerSession } from "../workers/session.js";

export class WorkerPool {
  readonly workers = new Set<WorkerSession>();
  /** Ready, unquarantined workers that may have free credit. */
  readonly hungry = new Set<WorkerSession>();
  /** Workers that have left, kept for the report (their work still counts). */
  readonly departed: WorkerSession[] = [];
  /** Quarantined worker ids and why. */
  readonly quarantine = new Map<string, string>();
  private draining = 0;
  private peak = 0;

  /** Most workers connected at once. */
  get peakWorkers(): number {
    return this.peak;
  }

  /** Workers that may take shards (connected and not draining). */
  get ready(): number {
    return this.workers.size - this.draining;
  }

  /** Takes a worker in; one whose id was quarantined before is quarantined again. */
  add(w: WorkerSession): void {
    const reason = this.quarantine.get(w.id);
    if (reason !== undefined && !w.quarantined) w.quarantine(reason);
    this.workers.add(w);
    this.freed(w);
    if (this.workers.size > this.peak) this.peak = this.workers.size;
  }

  /** Lets a worker go; false when it was not in the pool. */
  remove(w: WorkerSession): boolean {
    if (!this.workers.delete(w)) return false;
    this.hungry.delete(w);
    if (w.drained) this.draining -= 1;
    if (w.shardsDone > 0) this.departed.push(w);
    return true;
  }

  /** The worker said it is leaving; false when it had said so already (or was never ready). */
  startDraining(w: WorkerSession): boolean {
    if (w.state !== "ready") return false;
    w.startDraining();
    this.draining += 1;
    this.hungry.delete(w);
    return true;
  }

  /** Quarantines a worker: it takes no more work, now or when it reconnects. */
  quarantined(w: WorkerSession, reason: string): void {
    w.quarantine(reason);
    this.quarantine.set(w.id, reason);
    this.hungry.delete(w);
  }

  /** Marks a worker as possibly having free credit. */
  freed(w: WorkerSession): void {
    // A quarantined one never has any: left here it could still be picked for a straggler copy.
    if (w.state === "ready" && !w.quarantined && this.workers.has(w)) this.hungry.add(w);
  }

  /** True when a ready worker other than `w` passes `ok` (by id). */
  anotherReady(w: WorkerSession, ok: (id: string) => boolean): boolean {
    for (const x of this.workers) if (x !== w && x.state === "ready" && ok(x.id)) return true;
    return false;
  }

  /** Workers with something in flight. */
  busy(): number {
    let n = 0;
    for (const w of this.workers) if (w.inflight > 0) n++;
    return n;
  }
}
