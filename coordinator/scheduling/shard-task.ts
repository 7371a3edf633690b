/**
 * A shard: rows [start, end) of a job, cut once (Job.cut) and sent until a result is
 * accepted. Its failed attempts change only through `fail`, which records each one durably,
 * so that a restart neither forgets them nor retries a shard without bound.
 */

const NO_CAUSES: readonly string[] = [];

/** Where a shard's failed attempts are recorded durably (the job's row in the database). */
export interface AttemptLog {
  record(idx: number): void;
}

export class ShardTask {
  private failures: number;
  /**
   * One line per failed attempt (this process's): which worker, which code, what it said.
   * This and the set below are made on the first failure: most shards never fail, and
   * thousands are cut a second.
   */
  private lines: string[] | null = null;
  /** Workers (by id) this shard failed or timed out on. */
  private failedWorkers: Set<string> | null = null;

  constructor(
    readonly idx: number,
    readonly start: number,
    readonly end: number,
    private readonly log: AttemptLog | null,
    attempts = 0,
  ) {
    this.failures = attempts;
  }

  get rows(): number {
    return this.end - this.start;
  }

  /** Failed attempts, those before a restart included. */
  get attempts(): number {
    return this.failures;
  }

  get causes(): readonly string[] {
    return this.lines ?? NO_CAUSES;
  }

  /** True when this shard failed on worker `workerId`: retries go elsewhere where possible. */
  failedOn(workerId: string): boolean {
    return this.failedWorkers?.has(workerId) ?? false;
  }

  /** Counts a failed attempt (on `workerId`, if a worker's), records it durably; returns the attempts so far. */
  fail(cause: string, workerId: string | null): number {
    this.failures += 1;
    (this.lines ??= []).push(cause);
    if (workerId !== null) (this.failedWorkers ??= new Set()).add(workerId);
    this.log?.record(this.idx);
    return this.failures;
  }
}
