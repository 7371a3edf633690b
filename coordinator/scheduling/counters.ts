/**
 * The scheduler's running totals: what metrics, the status API and the report read. Every
 * part of scheduling that counts something counts it in this one object.
 */

export interface SchedulerCounters {
  dispatched: number;
  completed: number;
  failed: number;
  timedOut: number;
  requeued: number;
  duplicated: number;
  duplicatesCancelled: number;
  lateResults: number;
  bytesOut: number;
  bytesIn: number;
  /** Shards accepted after replicas agreed. */
  verified: number;
  /** Replicas that disagreed with the accepted answer. */
  replicaMismatches: number;
  quarantined: number;
  /** Canary shards answered right, and wrongly. */
  canariesPassed: number;
  canariesFailed: number;
}

/** Counters all at zero. */
export function zeroCounters(): SchedulerCounters {
  return {
    dispatched: 0, completed: 0, failed: 0, timedOut: 0, requeued: 0, duplicated: 0, duplicatesCancelled: 0, lateResults: 0, bytesOut: 0, bytesIn: 0,
    verified: 0, replicaMismatches: 0, quarantined: 0, canariesPassed: 0, canariesFailed: 0,
  };
}
